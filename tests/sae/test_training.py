"""The training loop: AuxK, dead tracking, schedules, data sources, checkpoints."""

import json

import numpy as np
import pytest
import torch

from sparsecode import SparseAutoencoder
from sparsecode.data.toy import make_superposition
from sparsecode.nn import SparseAutoencoderModule
from sparsecode.sae import (
    IterableBatches,
    TensorBatches,
    TrainConfig,
    TrainState,
    clip_gradients,
    fit_loop,
    lr_factor,
)


@pytest.fixture(scope="module")
def toy():
    X, _ = make_superposition(640, 8, 16, mean_active=3, random_state=0)
    return X.astype(np.float32)


def _kw(**kw):
    base = dict(n_components=16, max_iter=3, batch_size=64, log_every=4,
                random_state=0, device="cpu")
    return {**base, **kw}


def _state_dict(est):
    return {k: v.clone() for k, v in est.module_.state_dict().items()}


# ------------------------------------------------------------------- AuxK
def _half_dead_module(X):
    """16 live latents, and 16 whose tiny encoder rows never win the top-k."""
    mod = SparseAutoencoderModule(8, 32, "topk", {"k": 2})
    mod.reset_parameters_(X, torch.Generator().manual_seed(0))
    with torch.no_grad():
        mod.W_enc[16:] *= 1e-3
        mod.b_enc[16:] = 1e-3  # positive but always below the live latents
    return mod


def _fired(mod, X):
    with torch.no_grad():
        return (mod.encode(X) > 0).any(0)


def _train_half_dead(X, k_aux):
    mod = _half_dead_module(X)
    assert not _fired(mod, X)[16:].any()  # dead at initialisation
    state = TrainState(mod, seed=0)
    config = TrainConfig(learning_rate=3e-3, max_passes=8, k_aux=k_aux,
                         aux_coef=1.0, dead_window=128, log_every=2)
    fit_loop(state, TensorBatches(X, 64), config)
    return state


def test_auxk_revives_latents_dead_at_initialisation(toy):
    X = torch.as_tensor(toy)
    without = _train_half_dead(X, k_aux=0)
    assert not _fired(without.model, X)[16:].any()
    # dead tracking is counted in samples: never fired -> every sample seen
    assert (without.since_fired[16:] == without.samples).all()
    assert without.history[-1]["dead_fraction"] >= 0.5
    assert min(h["dead_fraction"] for h in without.history) >= 0.5
    revived = _train_half_dead(X, k_aux=4)
    assert int(_fired(revived.model, X)[16:].sum()) >= 3
    # with 16 true features some revived latents are redundant and fade again;
    # the dead fraction (over the last 128 samples) shows the revival
    assert min(h["dead_fraction"] for h in revived.history) < 0.4
    assert any(h.get("auxk", 0) > 0 for h in revived.history)


# ----------------------------------------------------------- checkpoints
class _Stop(Exception):
    pass


def _stop_at(step):
    def callback(entry):
        if entry["step"] >= step:
            raise _Stop

    return callback


@pytest.mark.parametrize("activation", ["topk", "batchtopk", "jumprelu"])
def test_resume_from_checkpoint_equals_uninterrupted(toy, tmp_path, activation):
    kw = _kw(activation=activation, k=2, checkpoint_every=5)
    full = SparseAutoencoder(**kw).fit(toy)
    with pytest.raises(_Stop):
        SparseAutoencoder(**kw, checkpoint_dir=tmp_path, callback=_stop_at(12)).fit(toy)
    assert json.loads((tmp_path / "checkpoint.json").read_text())["step"] == 10
    # the last two checkpoints are kept (a damaged newest one has a fallback)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".safetensors"
                  ) == ["step_000000005.safetensors", "step_000000010.safetensors"]
    resumed = SparseAutoencoder(**kw, checkpoint_dir=tmp_path).fit(toy)
    a, b = _state_dict(full), _state_dict(resumed)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    strip = [{k: v for k, v in h.items() if k != "time"} for h in full.history_]
    assert strip == [{k: v for k, v in h.items() if k != "time"}
                     for h in resumed.history_]
    assert resumed.n_steps_ == full.n_steps_ == 30


def test_checkpoint_of_other_parameters_is_refused_then_restarted(toy, tmp_path):
    SparseAutoencoder(**_kw(random_state=1, checkpoint_dir=tmp_path)).fit(toy)
    with pytest.raises(ValueError, match="random_state: 1 in the checkpoint, 0 in"):
        SparseAutoencoder(**_kw(checkpoint_dir=tmp_path)).fit(toy)
    fresh = SparseAutoencoder(**_kw()).fit(toy)
    other = SparseAutoencoder(**_kw(checkpoint_dir=tmp_path, resume="restart")
                              ).fit(toy)
    np.testing.assert_array_equal(fresh.components_, other.components_)


# ------------------------------------------------------------ determinism
def test_deterministic_with_random_state_and_sources_agree(toy, tmp_path):
    a = SparseAutoencoder(**_kw()).fit(toy)
    b = SparseAutoencoder(**_kw()).fit(torch.as_tensor(toy))
    path = tmp_path / "x.dat"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=toy.shape)
    mm[:] = toy
    mm.flush()
    c = SparseAutoencoder(**_kw()).fit(np.memmap(path, dtype=np.float32, mode="r",
                                                 shape=toy.shape))
    for est in (b, c):
        np.testing.assert_array_equal(a.components_, est.components_)
    d = SparseAutoencoder(**_kw(random_state=1)).fit(toy)
    assert not np.array_equal(a.components_, d.components_)


def test_memmap_with_nan_raises_clearly(toy, tmp_path):
    path = tmp_path / "bad.dat"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=toy.shape)
    mm[:] = toy
    mm[300, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SparseAutoencoder(**_kw()).fit(mm)


# ----------------------------------------------------------- iterables
class _Chunks:
    """A re-iterable source of uneven chunks (like a DataLoader)."""

    def __init__(self, X):
        self.X = X

    def __iter__(self):
        for lo, hi in [(0, 50), (50, 300), (300, 333), (333, 640)]:
            yield self.X[lo:hi]


def test_iterable_of_batches_is_streamed_and_deterministic(toy):
    est = SparseAutoencoder(**_kw()).fit(_Chunks(toy))
    again = SparseAutoencoder(**_kw()).fit(_Chunks(toy))
    np.testing.assert_array_equal(est.components_, again.components_)
    assert est.n_iter_ == 3 and est.n_features_in_ == 8
    assert est.score(toy) > -0.9
    one_shot = SparseAutoencoder(**_kw()).fit(iter(list(_Chunks(toy))))
    assert one_shot.n_iter_ == 1 and one_shot.n_steps_ == 10


def test_bounded_shuffle_buffer_emits_every_row_once():
    X = torch.arange(1000, dtype=torch.float64)[:, None].repeat(1, 3)
    pulled = []

    def chunks():
        for i in range(0, 1000, 70):
            pulled.append(i)
            yield X[i:i + 70]

    src = IterableBatches(chunks(), 32, torch.device("cpu"), buffer_size=128)
    src.sample(10)  # peeking must not lose rows of a one-shot iterator
    stream = src.batches(torch.Generator().manual_seed(0))
    batches = [next(stream)]
    assert len(pulled) <= 3  # streamed: the buffer holds ~128 rows, not all 1000
    batches += list(stream)
    rows = torch.cat(batches)[:, 0]
    assert sorted(rows.tolist()) == list(range(1000))
    assert not torch.equal(rows, torch.arange(1000, dtype=torch.float64))
    assert all(len(b) == 32 for b in batches[:-1])


def test_bad_batches_raise(toy):
    with pytest.raises(ValueError, match="features"):
        SparseAutoencoder(**_kw()).fit(iter([toy[:100], toy[:100, :5]]))
    with pytest.raises(ValueError, match="2-D"):
        SparseAutoencoder(**_kw()).fit(iter([toy[0]]))
    with pytest.raises(ValueError, match="NaN"):
        SparseAutoencoder(**_kw()).fit(iter([np.full((10, 8), np.nan)]))


# ----------------------------------------------------- loop mechanics
def test_schedules():
    cfg = TrainConfig(learning_rate=1.0, n_steps=100, lr_warmup_steps=10,
                      lr_decay_steps=20)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(50, cfg) == 1.0
    assert lr_factor(90, cfg) == pytest.approx(0.5)
    assert lr_factor(99, cfg) == pytest.approx(0.05)


def test_history_sparsity_warmup_and_clipping(toy, monkeypatch):
    import sparsecode.sae.training as training

    calls = []
    real = training.clip_gradients
    monkeypatch.setattr(training, "clip_gradients",
                        lambda p, o, m: calls.append(m) or real(p, o, m))
    est = SparseAutoencoder(**_kw(activation="relu", sparsity_warmup=0.5,
                                  max_grad_norm=0.5)).fit(toy)
    assert len(calls) == est.n_steps_ == 30 and set(calls) == {0.5}
    assert [h["step"] for h in est.history_] == [4, 8, 12, 16, 20, 24, 28, 30]
    keys = {"step", "samples", "lr", "loss", "mse", "l1", "fvu", "l0",
            "dead_fraction", "time"}
    assert keys <= set(est.history_[0])
    assert est.history_[0]["l1"] / est.history_[0]["l0"] < (
        est.history_[-1]["l1"] / est.history_[-1]["l0"])  # alpha warms up
    assert est.history_[-1]["fvu"] < est.history_[0]["fvu"]


@pytest.mark.parametrize("fused", [True, False])
def test_clip_gradients_equals_clip_grad_norm(fused):
    g = torch.Generator().manual_seed(0)
    init = [torch.randn(40, 6, generator=g), torch.randn(6, generator=g)]
    ours = [torch.nn.Parameter(t.clone()) for t in init]
    ref = [torch.nn.Parameter(t.clone()) for t in init]
    opt = torch.optim.Adam(ours, lr=0.05, fused=fused)
    opt_ref = torch.optim.Adam(ref, lr=0.05)
    for step, (scale, max_norm) in enumerate([(5.0, 1.0), (0.01, 1.0), (3.0, None),
                                              (4.0, 0.5)]):
        grads = [scale * torch.randn(t.shape, generator=g) for t in init]
        for p, q, gr in zip(ours, ref, grads, strict=True):
            p.grad, q.grad = gr.clone(), gr.clone()
        clip_gradients(ours, opt, max_norm)
        opt.step()
        if max_norm:
            norm = torch.nn.utils.clip_grad_norm_(ref, max_norm)
        opt_ref.step()
        for p, q in zip(ours, ref, strict=True):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(p.grad, q.grad)  # stored clipped
        if max_norm and norm > max_norm:  # a clipped step: could fail
            assert abs(float(torch.nn.utils.get_total_norm(
                [p.grad for p in ours])) - max_norm) < 1e-5, step
    assert not torch.equal(ours[0].detach(), init[0])


def test_partial_fit_continues(toy):
    est = SparseAutoencoder(**_kw(activation="batchtopk", k=2))
    est.partial_fit(toy[:320])
    first = est.components_.copy()
    est.partial_fit(toy[320:])
    assert est.n_steps_ == 10 and est.n_iter_ == 2
    assert not np.array_equal(first, est.components_)
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(toy[:, :5])


def test_bf16_autocast_trains(toy):
    est = SparseAutoencoder(**_kw(autocast="bf16", max_iter=2)).fit(toy)
    assert est.module_.W_dec.dtype == torch.float32
    assert np.isfinite(est.score(toy)) and est.history_[-1]["fvu"] < 1.0


def test_verbose_progress(toy, capfd):
    SparseAutoencoder(**_kw(verbose=1, max_iter=1)).fit(toy)
    captured = capfd.readouterr()
    assert "SparseAutoencoder" in captured.err + captured.out


def test_input_scale_is_folded_into_the_weights(toy):
    a = SparseAutoencoder(**_kw(max_iter=1)).fit(toy)
    b = SparseAutoencoder(**_kw(max_iter=1)).fit(toy * 100.0)
    np.testing.assert_allclose(b.components_, a.components_, atol=2e-3)
    np.testing.assert_allclose(b.transform(toy * 100.0), 100.0 * a.transform(toy),
                               rtol=2e-2, atol=2e-2)
    assert b.score(toy * 100.0) == pytest.approx(a.score(toy), abs=1e-3)


@pytest.mark.parametrize("field, value, message", [
    ("learning_rate", 0.0, "learning_rate"),
    ("max_passes", 0, "max_passes"),
    ("lr_decay_steps", 10, "lr_decay_steps needs n_steps"),
    ("dead_window", 0, "dead_window"),
    ("max_grad_norm", -1.0, "max_grad_norm"),
    ("autocast", "fp8", "autocast"),
    ("checkpoint_every", 0, "checkpoint_every"),
])
def test_train_config_rules_live_in_one_place(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{"learning_rate": 1e-3, field: value})
    cfg = TrainConfig(learning_rate=1e-3)
    setattr(cfg, field, value)  # a field changed later: check() says so
    with pytest.raises(ValueError, match=message):
        cfg.check()
