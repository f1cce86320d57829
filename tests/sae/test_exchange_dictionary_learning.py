"""Reading dictionary_learning's saved SAEs (``ae.pt`` + ``config.json``), checked
against dictionary_learning's own classes: codes equal their ``encode``,
reconstructions their ``decode`` and ``forward``."""

import importlib.util
import json
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from sparsecode import load, save
from sparsecode.sae.exchange import load_dictionary_learning

if importlib.util.find_spec("dictionary_learning") is None:
    pytest.skip("dictionary_learning is not installed", allow_module_level=True)

_STUB = None
try:
    import nnsight  # noqa: F401
except ImportError:
    # dictionary_learning's package __init__ imports its activation buffer,
    # which imports nnsight's LanguageModel. nnsight cannot be installed here
    # (it pulls a CUDA build of torch) and nothing tested uses it, so a stub
    # stands in while dictionary_learning is imported (then it is removed).
    _STUB = types.ModuleType("nnsight")
    _STUB.LanguageModel = type("LanguageModel", (), {})
    sys.modules["nnsight"] = _STUB
try:
    from dictionary_learning.dictionary import AutoEncoderNew
    from dictionary_learning.trainers.batch_top_k import BatchTopKTrainer
    from dictionary_learning.trainers.gdm import GatedSAETrainer
    from dictionary_learning.trainers.jumprelu import JumpReluTrainer
    from dictionary_learning.trainers.matryoshka_batch_top_k import (
        MatryoshkaBatchTopKTrainer,
    )
    from dictionary_learning.trainers.standard import (
        StandardTrainer,
        StandardTrainerAprilUpdate,
    )
    from dictionary_learning.trainers.top_k import TopKTrainer
finally:
    if _STUB is not None and sys.modules.get("nnsight") is _STUB:
        del sys.modules["nnsight"]

D, M, K = 12, 40, 4
STEPS = 5000  # (their trainers want steps > warmup_steps and sparsity warmup)
LM = {"layer": 3, "lm_name": "EleutherAI/pythia-70m-deduped", "device": "cpu",
      "submodule_name": "resid_post_layer_3"}
BUFFER = {"d_submodule": D, "io": "out", "n_ctxs": 30000, "ctx_len": 128,
          "refresh_batch_size": 512, "out_batch_size": 8192, "device": "cpu"}
X = (np.random.RandomState(0).randn(300, D) * 1.5 + 0.4).astype(np.float32)


def _trainer(kind):
    """One of their trainers (which builds its dictionary), weights randomised."""
    if kind == "AutoEncoder":
        tr = StandardTrainer(STEPS, D, M, **LM)
    elif kind == "AutoEncoderNew":  # (its config says dict_class="AutoEncoder")
        tr = StandardTrainerAprilUpdate(STEPS, D, M, dict_class=AutoEncoderNew, **LM)
    elif kind == "GatedAutoEncoder":
        tr = GatedSAETrainer(STEPS, D, M, **LM)
    elif kind == "JumpReluAutoEncoder":
        tr = JumpReluTrainer(STEPS, D, M, **LM)
    elif kind in ("AutoEncoderTopK", "BatchTopKSAE", "BatchTopKSAE-unset"):
        cls = TopKTrainer if kind == "AutoEncoderTopK" else BatchTopKTrainer
        tr = cls(STEPS, D, M, K, **LM)
    else:
        tr = MatryoshkaBatchTopKTrainer(STEPS, D, M, K,
                                        group_fractions=[0.25, 0.25, 0.5], **LM)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in tr.ae.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.dim() == 1 else 0.5))
            if name == "threshold":  # JumpReLU: positive, one latent below 0
                p.copy_(torch.rand(p.shape, generator=g) * 0.8)
                p[0] = -0.2
        if kind in ("BatchTopKSAE", "MatryoshkaBatchTopKSAE"):
            tr.ae.threshold = torch.tensor(0.35)
        elif kind == "AutoEncoderTopK":
            tr.ae.threshold = torch.tensor(0.5)  # (used with use_threshold only)
    return tr


def _save(path, trainer, state=None, config=None):
    """As dictionary_learning's training.py writes a trained dictionary."""
    path.mkdir(parents=True, exist_ok=True)
    cfg = {"trainer": trainer.config, "buffer": BUFFER} if config is None else config
    with open(path / "config.json", "w") as f:
        json.dump(cfg, f, indent=4)
    if state is None:
        state = {k: v.cpu() for k, v in trainer.ae.state_dict().items()}
    torch.save(state, path / "ae.pt")
    return path


CLASSES = [("AutoEncoder", "relu"), ("AutoEncoderNew", "relu"),
           ("GatedAutoEncoder", "gated"), ("JumpReluAutoEncoder", "jumprelu"),
           ("AutoEncoderTopK", "topk"), ("BatchTopKSAE", "batchtopk"),
           ("BatchTopKSAE-unset", "batchtopk"),
           ("MatryoshkaBatchTopKSAE", "matryoshka")]


@pytest.mark.parametrize("kind, activation", CLASSES)
def test_codes_and_reconstructions_equal_theirs(tmp_path, kind, activation):
    tr = _trainer(kind)
    ae = tr.ae.eval()
    est = load_dictionary_learning(_save(tmp_path / "trainer_0", tr))
    assert est.activation == activation
    assert est.source_format_ == "dictionary_learning"
    assert est.components_.shape == (M, D)
    x = torch.from_numpy(X)
    with torch.no_grad():
        ref_codes = ae.encode(x).numpy()
        ref_decode = ae.decode(torch.from_numpy(ref_codes)).numpy()
        ref_forward = ae(x).numpy()
    active = (ref_codes > 0).mean()
    assert 0.02 < active < 0.9  # non-trivial codes: some on, most off
    codes = est.transform(X)
    np.testing.assert_allclose(codes, ref_codes, rtol=1e-5, atol=1e-5)
    assert np.array_equal(codes > 0, ref_codes > 0)  # the same support
    np.testing.assert_allclose(est.inverse_transform(ref_codes), ref_decode,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(est.inverse_transform(codes), ref_forward,
                               rtol=1e-5, atol=1e-5)


def test_batchtopk_threshold_is_kept_and_k_read(tmp_path):
    tr = _trainer("BatchTopKSAE")
    est = load_dictionary_learning(_save(tmp_path / "b", tr))
    assert est.k == K
    assert float(est.module_.activation.threshold) == pytest.approx(0.35)
    codes = est.transform(X)
    assert codes[codes > 0].min() > 0.35
    # a threshold never set (-1): codes are relu(pre); it starts from 0, not -1
    unset_dir = _save(tmp_path / "u", _trainer("BatchTopKSAE-unset"))
    unset = load_dictionary_learning(unset_dir)
    assert float(unset.module_.activation.threshold) == 0.0
    assert float(unset.module_.activation.threshold_num) == 0.0


def test_matryoshka_prefixes_from_group_sizes(tmp_path):
    tr = _trainer("MatryoshkaBatchTopKSAE")
    est = load_dictionary_learning(_save(tmp_path / "m", tr))
    assert est.module_.activation.prefixes == [10, 20, 40]
    assert est.activation_params == {"prefixes": [10, 20, 40]}


def test_device_argument(tmp_path):
    est = load_dictionary_learning(_save(tmp_path / "a", _trainer("AutoEncoder")),
                                   device="cpu")
    assert est.module_.W_dec.device.type == "cpu"


def test_metadata_survives_save_and_load(tmp_path):
    tr = _trainer("AutoEncoderTopK")
    src = _save(tmp_path / "trainer_0", tr)
    est = load_dictionary_learning(src)
    cfg = json.loads((src / "config.json").read_text())
    assert est.metadata_ == cfg
    assert est.metadata_["trainer"]["lm_name"] == LM["lm_name"]
    assert est.metadata_["trainer"]["layer"] == 3
    assert est.metadata_["buffer"]["ctx_len"] == 128
    est2 = load(save(est, tmp_path / "saved"))
    assert est2.metadata_ == cfg
    assert est2.source_format_ == "dictionary_learning"
    np.testing.assert_array_equal(est2.transform(X), est.transform(X))


# ------------------------------------------------------------- malformed files
@pytest.fixture
def good(tmp_path):
    """A valid BatchTopK dictionary's folder, its trainer and its state dict."""
    tr = _trainer("BatchTopKSAE")
    path = _save(tmp_path / "sae", tr)
    return path, tr, {k: v.clone() for k, v in tr.ae.state_dict().items()}


_DROP = object()  # (a trainer key to leave out)


def _config(tr, **trainer_changes):
    trainer = {**tr.config, **trainer_changes}
    return {"trainer": {k: v for k, v in trainer.items() if v is not _DROP},
            "buffer": BUFFER}


def test_missing_files(good):
    path, _, _ = good
    (path / "ae.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"ae\.pt not found"):
        load_dictionary_learning(path)
    (path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"config\.json not found"):
        load_dictionary_learning(path)


@pytest.mark.parametrize("text, match", [
    ("{not json", r"config\.json is not a valid JSON file"),
    ("[1, 2]", r"config\.json must hold a JSON object"),
    ('{"buffer": {}}', r'config\.json has no "trainer" object'),
    ('{"trainer": [1]}', r'config\.json has no "trainer" object'),
])
def test_bad_config_json(good, text, match):
    path, _, _ = good
    (path / "config.json").write_text(text)
    with pytest.raises(ValueError, match=match):
        load_dictionary_learning(path)


@pytest.mark.parametrize("changes, match", [
    ({"dict_class": _DROP}, r'config\.json: "trainer" lacks the key "dict_class"'),
    ({"dict_class": 3}, r'config\.json: trainer "dict_class" must be a str'),
    ({"dict_class": "CrossCoder"},
     r"config\.json: dict_class 'CrossCoder' is not supported; supported: "
     r"AutoEncoder, AutoEncoderNew, GatedAutoEncoder, JumpReluAutoEncoder, "
     r"AutoEncoderTopK, BatchTopKSAE, MatryoshkaBatchTopKSAE"),
    ({"activation_dim": _DROP}, r'config\.json: "trainer" lacks the key '
                                r'"activation_dim"'),
    ({"activation_dim": "12"}, r'config\.json: trainer "activation_dim" must be a '
                               r"positive int, got '12'"),
    ({"activation_dim": 12.0}, r'"activation_dim" must be a positive int, got 12\.0'),
    ({"dict_size": True}, r'config\.json: trainer "dict_size" must be a positive int'),
    ({"dict_size": 0}, r'config\.json: trainer "dict_size" must be a positive int'),
    ({"k": "4"}, r'config\.json: trainer "k" must be a positive int'),
    ({"k": K + 1}, rf"ae\.pt has k={K} but config\.json says k={K + 1}"),
    ({"dict_size": M + 1}, rf"ae\.pt: decoder\.weight has shape \({D}, {M}\), "
                           rf"expected \({D}, {M + 1}\)"),
    ({"activation_dim": D - 1}, r"ae\.pt: .* has shape"),
])
def test_bad_trainer_config(good, changes, match):
    path, tr, state = good
    _save(path, tr, state, _config(tr, **changes))
    with pytest.raises(ValueError, match=match):
        load_dictionary_learning(path)


def test_bad_weights_missing_unexpected_dtype_values(good):
    path, tr, state = good

    def check(new_state, match):
        _save(path, tr, new_state)
        with pytest.raises(ValueError, match=match):
            load_dictionary_learning(path)

    check({k: v for k, v in state.items() if k != "encoder.bias"},
          r"ae\.pt lacks the weights \['encoder\.bias'\]")
    check({**state, "W_skip": torch.zeros(D)},
          r"ae\.pt holds weights \['W_skip'\] that this architecture does not "
          r"have")
    check({**state, "encoder.weight": torch.ones(M, D, dtype=torch.int64)},
          r"ae\.pt: weight 'encoder\.weight' has dtype int64, expected a "
          r"floating-point dtype")
    check({**state, "k": torch.tensor(4.0)},
          r"ae\.pt: buffer 'k' has dtype float32, expected an integer dtype")
    check({**state, "k": torch.tensor(M + 1, dtype=torch.int32)},
          rf"ae\.pt: k={M + 1} must be in \[1, dict_size={M}\]")
    for bad in (float("nan"), float("inf")):
        b = state["b_dec"].clone()
        b[2] = bad
        check({**state, "b_dec": b},
              r"ae\.pt: weight 'b_dec' holds NaN or infinite values")
    check({**state, "threshold": torch.tensor(float("nan"))},
          r"ae\.pt: weight 'threshold' holds NaN or infinite values")


def test_bad_matryoshka_group_sizes(tmp_path):
    tr = _trainer("MatryoshkaBatchTopKSAE")
    state = dict(tr.ae.state_dict())
    path = _save(tmp_path / "m", tr, {**state, "group_sizes": torch.tensor([10, 10])})
    with pytest.raises(ValueError, match=r"ae\.pt: group_sizes \[10, 10\] must be "
                                         r"positive sizes summing to dict_size=40"):
        load_dictionary_learning(path)
    _save(path, tr, state, _config(tr, group_sizes=[20, 10, 10]))
    with pytest.raises(ValueError, match=r"ae\.pt has group_sizes \[10, 10, 20\] but "
                                         r"config\.json says \[20, 10, 10\]"):
        load_dictionary_learning(path)


def test_unreadable_ae_pt(good):
    path, _, _ = good
    ae = path / "ae.pt"
    data = ae.read_bytes()
    match = r"ae\.pt is not a readable torch state dict"
    for content in (data[: len(data) // 2], b"", b"hello, not a torch file\n"):
        ae.write_bytes(content)
        with pytest.raises(ValueError, match=match):
            load_dictionary_learning(path)
    torch.save([torch.zeros(3)], ae)  # readable, but not a state dict
    with pytest.raises(ValueError, match=r"ae\.pt must hold a state dict"):
        load_dictionary_learning(path)
    torch.save({"encoder.weight": 3}, ae)
    with pytest.raises(ValueError, match=r"ae\.pt must hold a state dict"):
        load_dictionary_learning(path)


class _Payload:
    """Unpickling it would create the file ``target``."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_pickled_objects_are_refused_and_never_run(good):
    path, tr, state = good
    ae = path / "ae.pt"
    match = r"ae\.pt is not a readable torch state dict .*pickle"
    marker = path.parent / "payload_ran"
    for write in (lambda: torch.save({**state, "x": _Payload(marker)}, ae),
                  lambda: ae.write_bytes(pickle.dumps(_Payload(marker), 2)),
                  lambda: torch.save(tr.ae, ae)):  # a whole module, not its state
        write()
        with pytest.raises(ValueError, match=match):
            load_dictionary_learning(path)
        assert not marker.exists()
    # (the payload does run when unpickled: the check above can fail)
    pickle.loads(pickle.dumps(_Payload(marker))).close()
    assert marker.exists()


def test_autoencoder_new_named_explicitly(tmp_path):
    """``dict_class="AutoEncoderNew"`` (e.g. a hand-written config) reads too."""
    tr = _trainer("AutoEncoderNew")
    path = _save(tmp_path / "n", tr, config=_config(tr, dict_class="AutoEncoderNew"))
    est = load_dictionary_learning(path)
    with torch.no_grad():
        ref = tr.ae.encode(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(est.transform(X), ref, rtol=1e-5, atol=1e-5)
    # an AutoEncoder's state named AutoEncoderNew: its bias is not a decoder bias
    ae_tr = _trainer("AutoEncoder")
    _save(path, ae_tr, config=_config(ae_tr, dict_class="AutoEncoderNew"))
    with pytest.raises(ValueError, match=r"ae\.pt lacks the weights "
                                         r"\['decoder\.bias'\]"):
        load_dictionary_learning(path)
