"""SAE checkpoints under faults, and training that fails loudly.

Another run's checkpoint is refused (each differing parameter named, nothing
touched) or replaced on request; a damaged newest checkpoint is passed over
with a warning for the one before, and replaying from it gives the weights of
an uninterrupted run (the loop is deterministic on the CPU); a run killed with
SIGKILL resumes to those weights too; temporary files of killed writes are
removed; a checkpoint_dir that cannot be written fails before any step; a
diverging run raises instead of ending with NaN weights; and the weights do
not depend on log_every with AuxK at work.
"""

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from sparsecode import SparseAutoencoder
from sparsecode.data.toy import make_superposition
from sparsecode.nn import SparseAutoencoderModule
from sparsecode.sae import TensorBatches, TrainConfig, TrainState, fit_loop

WORKER = Path(__file__).with_name("_kill_worker.py")
KW = dict(n_components=16, k=2, max_iter=3, batch_size=64, log_every=4,
          checkpoint_every=5, random_state=0, device="cpu")  # 30 steps


@pytest.fixture(scope="module")
def toy():
    X, _ = make_superposition(640, 8, 16, mean_active=3, random_state=0)
    return X.astype(np.float32)


@pytest.fixture(scope="module")
def full(toy):
    """The uninterrupted run."""
    return SparseAutoencoder(**KW).fit(toy)


class _Stop(Exception):
    pass


def _stop_at(step):
    def callback(entry):
        if entry["step"] >= step:
            raise _Stop

    return callback


@pytest.fixture(scope="module")
def interrupted(toy, tmp_path_factory):
    """A folder with the checkpoints of steps 5 and 10 of a run stopped at 12."""
    folder = tmp_path_factory.mktemp("interrupted")
    with pytest.raises(_Stop):
        SparseAutoencoder(**KW, checkpoint_dir=folder, callback=_stop_at(12)).fit(toy)
    return folder


def _copy(folder, tmp_path):
    return Path(shutil.copytree(folder, tmp_path / "ckpt"))


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}


def _assert_same_run(a, b):
    wa, wb = a.module_.state_dict(), b.module_.state_dict()
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    strip = [{k: v for k, v in h.items() if k != "time"} for h in a.history_]
    assert strip == [{k: v for k, v in h.items() if k != "time"} for h in b.history_]
    assert a.n_steps_ == b.n_steps_


# ------------------------------------------------------ another run's folder
def test_checkpoint_of_other_parameters_is_refused_untouched(toy, tmp_path):
    SparseAutoencoder(**{**KW, "k": 8}, checkpoint_dir=tmp_path).fit(toy)
    (tmp_path / ".checkpoint.json.left.tmp").write_text("{")  # even this stays
    before = _files(tmp_path)
    with pytest.raises(ValueError) as err:
        SparseAutoencoder(**{**KW, "k": 4, "learning_rate": 1e-3},
                          checkpoint_dir=tmp_path).fit(toy)
    message = str(err.value)
    assert str(tmp_path) in message and "resume='restart'" in message
    assert "k: 8 in the checkpoint, 4 in this fit" in message
    assert "learning_rate: None in the checkpoint, 0.001 in this fit" in message
    with pytest.raises(ValueError, match=r"data n_samples: 640 in the checkpoint, "
                       r"320 in this fit"):
        SparseAutoencoder(**{**KW, "k": 8}, checkpoint_dir=tmp_path).fit(toy[:320])
    assert _files(tmp_path) == before


def test_restart_replaces_the_other_run(toy, tmp_path):
    SparseAutoencoder(**{**KW, "k": 8}, checkpoint_dir=tmp_path).fit(toy)
    restarted = SparseAutoencoder(**KW, checkpoint_dir=tmp_path,
                                  resume="restart").fit(toy)
    _assert_same_run(restarted, SparseAutoencoder(**KW).fit(toy))
    index = json.loads((tmp_path / "checkpoint.json").read_text())
    assert index["fingerprint"]["params"]["k"] == 2 and index["step"] == 30
    assert sorted(p.name for p in tmp_path.glob("step_*")) == [
        "step_000000025.safetensors", "step_000000030.safetensors"]
    with pytest.raises(ValueError, match="k: 2 in the checkpoint, 8 in this fit"):
        SparseAutoencoder(**{**KW, "k": 8}, checkpoint_dir=tmp_path).fit(toy)


_IN_FINGERPRINT = {  # a changed value of every parameter that changes training
    "n_components": 24, "activation": "batchtopk", "k": 3, "alpha": 0.5,
    "max_iter": 4, "batch_size": 32, "learning_rate": 1e-3, "lr_warmup": 0.1,
    "lr_decay": 0.5, "sparsity_warmup": 0.2, "dead_window": 100, "k_aux": 3,
    "aux_coef": 0.1, "normalize_input": False, "b_pre_init": "mean",
    "max_grad_norm": 0.5, "activation_params": {"threshold_lr": 0.02},
    "random_state": 1, "input_noise": 0.1,
    "dtype": "float64", "autocast": "bf16",
}
_NOT_IN_FINGERPRINT = {  # what is printed, logged, saved, or where it runs
    "log_every": 7, "checkpoint_every": 3, "verbose": 1, "resume": "auto",
    "callback": lambda entry: None, "distributed": False,
    "distributed_timeout": 60.0, "device": "auto", "checkpoint_dir": None,
}


@pytest.fixture(scope="module")
def done(toy, tmp_path_factory):
    """A folder holding the final checkpoint of the run ``KW``."""
    folder = tmp_path_factory.mktemp("done")
    return folder, SparseAutoencoder(**KW, checkpoint_dir=folder).fit(toy)


def test_every_parameter_is_classified():
    assert set(_IN_FINGERPRINT) | set(_NOT_IN_FINGERPRINT) == set(
        SparseAutoencoder().get_params())


@pytest.mark.parametrize("name", sorted(_IN_FINGERPRINT))
def test_a_training_parameter_changed_is_refused(toy, done, name):
    folder, _ = done
    changed = {**KW, name: _IN_FINGERPRINT[name]}
    if name == "activation_params":  # (the TopK activation takes only k)
        changed["activation"] = "batchtopk"
    with pytest.raises(ValueError, match=f"\n  {name}: "):
        SparseAutoencoder(**changed, checkpoint_dir=folder).fit(toy)


def test_other_parameters_resume(toy, done):
    folder, first = done
    for name, value in _NOT_IN_FINGERPRINT.items():
        if name != "checkpoint_dir":
            again = SparseAutoencoder(**{**KW, name: value},
                                      checkpoint_dir=folder).fit(toy)
            assert again.n_steps_ == 30, name  # resumed at the end: no step
            np.testing.assert_array_equal(again.components_, first.components_)


# -------------------------------------------------------- damaged checkpoints
def _rewrite(path, change):
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _set(key, value):
    def change(tensors):
        tensors[key] = tensors[key].clone()
        tensors[key].view(-1)[3] = value

    return change


def _garbage(tensors):
    g = torch.Generator().manual_seed(0)
    for key, t in tensors.items():
        if key.startswith("model."):  # finite, of the right shapes and dtypes
            tensors[key] = torch.randn(t.shape, generator=g, dtype=t.dtype)


DAMAGES = {
    "truncated": (_truncate, "not a readable safetensors"),
    "nan": (lambda p: _rewrite(p, _set("model.W_dec", float("nan"))),
            "model.W_dec holds non-finite values"),
    "huge": (lambda p: _rewrite(p, _set("model.W_dec", 1e30)),
             "model.W_dec differs from the tensor written"),
    "float16": (lambda p: _rewrite(p, lambda t: t.update(
        {"model.W_dec": t["model.W_dec"].half()})), "model.W_dec is torch.float16"),
    "garbage": (lambda p: _rewrite(p, _garbage), "differs from the tensor written"),
    "no_optimizer_tensor": (lambda p: _rewrite(p, lambda t: t.pop("opt.0.exp_avg")),
                            r"lacks the tensors \['opt.0.exp_avg'\]"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_newest_checkpoint_falls_back_to_the_previous(
        toy, full, interrupted, tmp_path, damage):
    folder = _copy(interrupted, tmp_path)
    assert sorted(p.name for p in folder.glob("step_*")) == [
        "step_000000005.safetensors", "step_000000010.safetensors"]
    spoil, reason = DAMAGES[damage]
    spoil(folder / "step_000000010.safetensors")
    steps = []
    with pytest.warns(UserWarning, match=reason) as record:
        resumed = SparseAutoencoder(**KW, checkpoint_dir=folder, callback=lambda e:
                                    steps.append(e["step"])).fit(toy)
    message = next(str(w.message) for w in record if "unusable" in str(w.message))
    assert str(folder) in message
    assert "step 10 (step_000000010.safetensors) is unusable" in message
    assert "Resuming from the checkpoint of step 5" in message
    assert steps[0] == 8  # replayed from step 5 (logged every 4 steps) ...
    _assert_same_run(resumed, full)  # ... to the uninterrupted weights
    assert sorted(p.name for p in folder.glob("step_*")) == [
        "step_000000025.safetensors", "step_000000030.safetensors"]


def test_no_good_checkpoint_raises_or_restarts(toy, full, interrupted, tmp_path):
    folder = _copy(interrupted, tmp_path)
    _rewrite(folder / "step_000000010.safetensors", _set("model.W_dec", float("nan")))
    _truncate(folder / "step_000000005.safetensors")
    before = _files(folder)
    with pytest.raises(ValueError, match="holds no usable checkpoint") as err:
        SparseAutoencoder(**KW, checkpoint_dir=folder).fit(toy)
    assert str(folder) in str(err.value) and "non-finite" in str(err.value)
    assert "not a readable safetensors" in str(err.value)
    assert _files(folder) == before
    restarted = SparseAutoencoder(**KW, checkpoint_dir=folder, resume="restart")
    _assert_same_run(restarted.fit(toy), full)


def test_train_state_checks_a_checkpoint(toy):
    X = torch.as_tensor(toy)
    model = SparseAutoencoderModule(8, 16, "topk", {"k": 2})
    model.reset_parameters_(X, torch.Generator().manual_seed(0))
    state = fit_loop(TrainState(model, seed=0), TensorBatches(X, 64),
                     TrainConfig(learning_rate=1e-3, log_every=5))
    tensors, meta = state.to_checkpoint()
    meta["step"] = state.step
    state.check_checkpoint(tensors, meta)  # a good one passes
    bad = [
        ({"model.W_dec": tensors["model.W_dec"].half()}, {}, "float16"),
        ({"model.W_dec": tensors["model.W_dec"][:8]}, {}, "shape"),
        ({"model.b_pre": tensors["model.b_pre"] * np.inf}, {}, "non-finite"),
        ({"opt.1.exp_avg": None}, {}, r"lacks \['opt.1.exp_avg'\]"),
        ({"opt.0.exp_avg_sq": -tensors["opt.0.exp_avg_sq"] - 1}, {}, "negative"),
        ({"rng.data": tensors["rng.data"][:10]}, {}, "rng.data"),
        ({}, {"samples": None}, "samples"),
        ({}, {"param_groups": []}, "parameter groups"),
    ]
    for change, meta_change, message in bad:
        spoiled = {k: v for k, v in {**tensors, **change}.items() if v is not None}
        with pytest.raises(ValueError, match=message):
            state.check_checkpoint(spoiled, {**meta, **meta_change})


# ------------------------------------------------------------- killed runs
@pytest.mark.parametrize("kill_at, left", [
    (21, ".step_000000011.safetensors."),  # before its weights are in place
    (22, ".checkpoint.json."),  # weights in place, not yet named by the index
])
def test_sigkill_in_a_checkpoint_write_then_resume_equals_uninterrupted(
        toy, tmp_path, kill_at, left):
    kw = {**KW, "max_iter": 2}  # 20 steps
    folder = tmp_path / "ckpt"
    np.save(tmp_path / "x.npy", toy)
    (tmp_path / "params.json").write_text(json.dumps(
        {**kw, "checkpoint_dir": str(folder), "checkpoint_every": 1,
         "threads": torch.get_num_threads(), "kill_at": kill_at}))
    proc = subprocess.run([sys.executable, str(WORKER), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:] + proc.stderr
    temporary = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert len(temporary) == 1 and temporary[0].startswith(left)
    assert json.loads((folder / "checkpoint.json").read_text())["step"] == 10
    steps = []
    resumed = SparseAutoencoder(**kw, checkpoint_dir=folder, callback=lambda e:
                                steps.append(e["step"])).fit(toy)
    assert steps[0] == 12  # resumed from step 10 (logged every 4 steps)
    _assert_same_run(resumed, SparseAutoencoder(**kw).fit(toy))
    assert sorted(p.name for p in folder.iterdir()) == [  # no temporary file left
        "checkpoint.json", "step_000000015.safetensors",
        "step_000000020.safetensors"]


def test_temporary_files_of_killed_writes_are_removed(toy, done):
    folder, _ = done
    ours = [".step_000000030.safetensors.k2j4x9.tmp", ".checkpoint.json.a8d7.tmp"]
    others = ["notes.tmp", ".other.json.a8d7.tmp", "step_notes.txt"]
    for name in ours + others:
        (folder / name).write_text("left over")
    SparseAutoencoder(**KW, checkpoint_dir=folder).fit(toy)
    names = {p.name for p in folder.iterdir()}
    assert not names & set(ours) and set(others) <= names
    for name in others:
        (folder / name).unlink()


# ---------------------------------------------------- unwritable checkpoint_dir
def test_checkpoint_dir_that_cannot_be_written_fails_before_any_step(toy, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    steps = []
    for where, message in [(a_file, "is a file, not a folder"),
                           (a_file / "sub", "cannot be created or written to")]:
        est = SparseAutoencoder(**{**KW, "log_every": 1}, checkpoint_dir=where,
                                callback=lambda entry: steps.append(entry["step"]))
        with pytest.raises(ValueError, match=message) as err:
            est.fit(toy)
        assert str(where) in str(err.value)
    assert steps == []
    assert a_file.read_text() == "not a folder"
    with pytest.raises(ValueError, match="is a file"):  # fit_loop itself too
        fit_loop(TrainState(SparseAutoencoderModule(8, 16, "topk", {"k": 2}), 0),
                 TensorBatches(torch.as_tensor(toy), 64),
                 TrainConfig(learning_rate=1e-3, checkpoint_dir=str(a_file)))


# ---------------------------------------------------------------- divergence
@pytest.mark.parametrize("activation", ["gated", "jumprelu"])
def test_diverging_training_raises(toy, activation):
    est = SparseAutoencoder(**{**KW, "activation": activation,
                               "learning_rate": 1e6})
    with pytest.raises(FloatingPointError, match=r"diverged at step \d+") as err:
        est.fit(toy)
    message = str(err.value)
    assert "learning_rate (now 1e+06" in message and activation in message
    assert "max_grad_norm" in message
    assert not hasattr(est, "components_")


def test_a_diverged_run_is_never_checkpointed(toy, tmp_path):
    est = SparseAutoencoder(**{**KW, "activation": "gated", "learning_rate": 1e6,
                               "log_every": 1000, "checkpoint_every": 1},
                            checkpoint_dir=tmp_path)
    with pytest.raises(FloatingPointError, match="at the checkpoint of step"):
        est.fit(toy)
    for path in tmp_path.glob("step_*.safetensors"):
        for key, t in load_file(str(path)).items():
            assert not t.is_floating_point() or torch.isfinite(t).all(), key


# ------------------------------------------------------------------- AuxK
def test_weights_do_not_depend_on_log_every_with_auxk(toy):
    kw = dict(n_components=48, k=2, max_iter=3, batch_size=64, dead_window=64,
              random_state=0, device="cpu")
    a = SparseAutoencoder(**kw, log_every=5).fit(toy)
    b = SparseAutoencoder(**kw, log_every=7).fit(toy)
    assert max(h["dead_fraction"] for h in a.history_) > 0  # AuxK at work
    assert max(h["auxk"] for h in a.history_) > 0
    for key, val in a.module_.state_dict().items():
        assert torch.equal(val, b.module_.state_dict()[key]), key
