"""save/load (safetensors + JSON) and the SAELens / sparsify readers."""

import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sparsecode import (
    DictionaryLearning,
    MiniBatchDictionaryLearning,
    SparseAutoencoder,
    SparseCoder,
    load,
    save,
)
from sparsecode.io import load_saelens, load_sparsify
from sparsecode.nn import ACTIVATIONS

RNG = np.random.RandomState(0)
X = RNG.randn(200, 6).astype(np.float32)


def _sae(activation, **kw):
    return SparseAutoencoder(n_components=12, activation=activation, k=3, max_iter=2,
                             batch_size=64, random_state=0, device="cpu",
                             **kw).fit(X)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_save_load_transform_identical(tmp_path, activation):
    est = _sae(activation)
    save(est, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json", "model.safetensors"]
    back = load(tmp_path / "m")
    assert type(back) is SparseAutoencoder and back.get_params() == est.get_params()
    np.testing.assert_array_equal(back.transform(X), est.transform(X))
    np.testing.assert_array_equal(back.components_, est.components_)
    np.testing.assert_array_equal(back.inverse_transform(back.transform(X)),
                                  est.inverse_transform(est.transform(X)))
    assert back.history_ == est.history_ and back.n_steps_ == est.n_steps_
    assert back.module_.W_dec.device.type == "cpu"
    back.partial_fit(X)  # a loaded model keeps training (fresh Adam state)
    assert back.n_steps_ == est.n_steps_ + 4


def test_cuda_trained_state_loads_on_cpu(tmp_path):
    est = _sae("topk")
    state = est.__getstate__()
    assert all(t.device.type == "cpu" for t in state["_state"].__getstate__()[
        "model"].state_dict().values())
    state["_device"] = "cuda:0"  # as pickled on a GPU machine
    clone = SparseAutoencoder.__new__(SparseAutoencoder)
    clone.__setstate__(pickle.loads(pickle.dumps(state)))
    expected_device = "cuda" if torch.cuda.is_available() else "cpu"
    assert clone._device.type == expected_device
    if expected_device == "cpu":
        np.testing.assert_array_equal(clone.transform(X), est.transform(X))
    save(est, tmp_path / "m")
    assert load(tmp_path / "m").module_.W_enc.device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            load(tmp_path / "m", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_real_cuda_model_loads_on_cpu(tmp_path):
    est = SparseAutoencoder(n_components=12, k=3, max_iter=2, batch_size=64,
                            random_state=0, device="cuda").fit(X)
    save(est, tmp_path / "m")
    back = load(tmp_path / "m")
    np.testing.assert_allclose(back.transform(X), est.transform(X), atol=1e-5)
    unpickled = pickle.loads(pickle.dumps(est))
    assert unpickled.module_.W_dec.is_cuda == torch.cuda.is_available()


@pytest.mark.parametrize("est", [
    DictionaryLearning(n_components=4, max_iter=3, random_state=0, device="cpu"),
    MiniBatchDictionaryLearning(n_components=4, max_iter=2, random_state=0,
                                device="cpu"),
    SparseCoder(RNG.randn(4, 6), transform_algorithm="lasso_lars", device="cpu"),
])
def test_classic_estimators_round_trip(tmp_path, est):
    est.fit(X.astype(np.float64))
    save(est, tmp_path / "c")
    back = load(tmp_path / "c")
    assert type(back) is type(est)
    np.testing.assert_array_equal(back.transform(X), est.transform(X))
    for name in ("components_", "n_iter_", "n_features_in_"):
        if hasattr(est, name):
            np.testing.assert_array_equal(getattr(back, name), getattr(est, name))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_minibatch_partial_fit_continues_after_save_load(tmp_path, dtype):
    # a saved MiniBatchDictionaryLearning goes on learning exactly as if it had
    # never been saved: online statistics, step count, early-stopping state and
    # the generator (used to resample unused atoms) all survive the round trip
    Xb = RNG.randn(120, 6).astype(dtype)

    def make():
        return MiniBatchDictionaryLearning(n_components=10, alpha=0.3,
                                           random_state=0, device="cpu")

    ref, est = make(), make()
    for lo in (0, 40):
        ref.partial_fit(Xb[lo:lo + 40])
        est.partial_fit(Xb[lo:lo + 40])
    save(est, tmp_path / "m")
    back = load(tmp_path / "m")
    ref.partial_fit(Xb[80:])
    back.partial_fit(Xb[80:])
    assert back.n_steps_ == ref.n_steps_ == 3
    assert back.components_.dtype == dtype
    np.testing.assert_array_equal(back.components_, ref.components_)
    np.testing.assert_array_equal(back._A.numpy(), ref._A.numpy())
    # and a generator draw after loading equals the one without the round trip
    assert torch.equal(torch.rand(3, generator=back._gen),
                       torch.rand(3, generator=ref._gen))


def test_load_validates_files(tmp_path):
    est = _sae("relu")
    path = save(est, tmp_path / "m")
    cfg = json.loads((path / "config.json").read_text())
    good = json.dumps(cfg)

    def rewrite(change):
        c = json.loads(good)
        change(c)
        (path / "config.json").write_text(json.dumps(c))

    rewrite(lambda c: c["tensors"]["module.W_enc"][0].__setitem__(0, 99))
    with pytest.raises(ValueError, match="shape"):
        load(path)
    rewrite(lambda c: c.__setitem__("class", "Popen"))
    with pytest.raises(ValueError, match="not a sparsecode estimator"):
        load(path)
    rewrite(lambda c: c["tensors"].pop("module.b_pre"))
    with pytest.raises(ValueError, match="do not match"):
        load(path)
    rewrite(lambda c: c["module"].__setitem__("n_components", 13))
    with pytest.raises(ValueError, match="shape"):
        load(path)
    rewrite(lambda c: c.__setitem__("format", "pickle"))
    with pytest.raises(ValueError, match="not a sparsecode model"):
        load(path)
    with pytest.raises(TypeError):
        save(object(), tmp_path / "x")
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        save(est, tmp_path / "user")
    rewrite(lambda c: None)
    save(_sae("topk"), path)  # replacing a saved model is fine and leaves no temp
    assert load(path).activation == "topk"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "user"]


# ------------------------------------------------------------------ SAELens
def _saelens_files(path, arch, d=6, m=10, seed=0, cfg_extra=None, drop=()):
    g = torch.Generator().manual_seed(seed)
    w = {"W_enc": torch.randn(d, m, generator=g) * 0.5,
         "W_dec": torch.randn(m, d, generator=g), "b_dec": torch.randn(d, generator=g),
         "b_enc": torch.randn(m, generator=g) * 0.3}
    if arch == "jumprelu":
        w["threshold"] = torch.rand(m, generator=g) * 0.5
    if arch == "gated":
        w.pop("b_enc")
        w.update({k: torch.randn(m, generator=g) * 0.3
                  for k in ("b_gate", "r_mag", "b_mag")})
    for k in drop:
        w.pop(k)
    cfg = {"d_in": d, "d_sae": m, "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": True, "normalize_activations": "none",
           "reshape_activations": "none", "architecture": arch,
           "metadata": {"sae_lens_version": "6.5.0"}, **(cfg_extra or {})}
    path.mkdir()
    save_file(w, str(path / "sae_weights.safetensors"))
    (path / "cfg.json").write_text(json.dumps(cfg))
    return {k: v.numpy().astype(np.float64) for k, v in w.items()}


def _saelens_reference(w, arch, x, k=None):
    xc = x.astype(np.float64) - w["b_dec"]
    if arch == "gated":
        gate = xc @ w["W_enc"] + w["b_gate"] > 0
        mag = xc @ (w["W_enc"] * np.exp(w["r_mag"])) + w["b_mag"]
        return gate * np.maximum(mag, 0)
    pre = xc @ w["W_enc"] + w["b_enc"]
    if arch == "topk":
        out = np.zeros_like(pre)
        idx = np.argsort(-pre, axis=1)[:, :k]
        np.put_along_axis(out, idx, np.maximum(np.take_along_axis(pre, idx, 1), 0), 1)
        return out
    if arch == "jumprelu":
        return np.maximum(pre, 0) * (pre > w["threshold"])
    return np.maximum(pre, 0)


@pytest.mark.parametrize("arch, extra", [
    ("standard", {}), ("topk", {"k": 3}), ("jumprelu", {}), ("gated", {}),
    ("standard", {"apply_b_dec_to_input": False}),
])
def test_load_saelens_layout(tmp_path, arch, extra):
    w = _saelens_files(tmp_path / "sae", arch, cfg_extra=extra)
    est = load_saelens(tmp_path / "sae")
    assert est.source_format_ == "saelens" and est.n_features_in_ == 6
    if extra.get("apply_b_dec_to_input") is False:
        ref = np.maximum(X @ w["W_enc"] + w["b_enc"], 0)
    else:
        ref = _saelens_reference(w, arch, X, extra.get("k"))
    np.testing.assert_allclose(est.transform(X), ref, atol=2e-5)
    np.testing.assert_allclose(est.inverse_transform(ref.astype(np.float32)),
                               ref @ w["W_dec"] + w["b_dec"], atol=2e-5)


def test_load_saelens_pre_v6_topk_config(tmp_path):
    w = _saelens_files(tmp_path / "sae", "standard", cfg_extra={
        "architecture": None, "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": 2}})
    est = load_saelens(tmp_path / "sae")
    assert est.activation == "topk" and est.k == 2
    np.testing.assert_allclose(est.transform(X), _saelens_reference(w, "topk", X, 2),
                               atol=2e-5)


def test_load_saelens_rejects_what_it_cannot_read(tmp_path):
    _saelens_files(tmp_path / "a", "jumprelu", drop=("threshold",))
    with pytest.raises(ValueError, match="threshold"):
        load_saelens(tmp_path / "a")
    _saelens_files(tmp_path / "b", "standard",
                   cfg_extra={"normalize_activations": "layer_norm"})
    with pytest.raises(ValueError, match="normalize_activations"):
        load_saelens(tmp_path / "b")
    _saelens_files(tmp_path / "c", "standard", cfg_extra={"d_in": 7})
    with pytest.raises(ValueError, match="shape"):
        load_saelens(tmp_path / "c")
    with pytest.raises(FileNotFoundError):
        load_saelens(tmp_path / "missing")


def test_load_saelens_matches_saelens_itself(tmp_path):
    saes = pytest.importorskip("sae_lens.saes")
    for i, (name, kw) in enumerate([("Standard", {}), ("TopK", {"k": 3}),
                                    ("JumpReLU", {}), ("Gated", {})]):
        cfg = getattr(saes, f"{name}SAEConfig")(d_in=6, d_sae=10, **kw)
        sae = getattr(saes, f"{name}SAE")(cfg)
        with torch.no_grad():
            for p in sae.parameters():
                p.copy_(torch.randn_like(p) * 0.5)
            if hasattr(sae, "threshold"):
                sae.threshold.copy_(torch.rand(10) * 0.5)
        sae.save_model(tmp_path / str(i))
        with torch.no_grad():
            ref = sae.encode(torch.as_tensor(X)).numpy()
        np.testing.assert_allclose(load_saelens(tmp_path / str(i)).transform(X), ref,
                                   atol=1e-5, err_msg=name)


# ----------------------------------------------------------------- sparsify
def _sparsify_files(path, d=6, m=10, k=3, **cfg_extra):
    g = torch.Generator().manual_seed(1)
    w = {"encoder.weight": torch.randn(m, d, generator=g) * 0.5,
         "encoder.bias": torch.randn(m, generator=g) * 0.3,
         "W_dec": torch.randn(m, d, generator=g), "b_dec": torch.randn(d, generator=g)}
    cfg = {"activation": "topk", "expansion_factor": 32, "normalize_decoder": True,
           "num_latents": m, "k": k, "multi_topk": False, "skip_connection": False,
           "transcode": False, "d_in": d, **cfg_extra}
    path.mkdir()
    save_file(w, str(path / "sae.safetensors"))
    (path / "cfg.json").write_text(json.dumps(cfg))
    return {k: v.numpy().astype(np.float64) for k, v in w.items()}


def test_load_sparsify_layout(tmp_path):
    w = _sparsify_files(tmp_path / "s")
    est = load_sparsify(tmp_path / "s")
    pre = np.maximum((X - w["b_dec"]) @ w["encoder.weight"].T + w["encoder.bias"], 0)
    idx = np.argsort(-pre, axis=1)[:, :3]  # sparsify: top-k of ReLU(pre)
    ref = np.zeros_like(pre)
    np.put_along_axis(ref, idx, np.take_along_axis(pre, idx, 1), 1)
    np.testing.assert_allclose(est.transform(X), ref, atol=2e-5)
    np.testing.assert_allclose(est.inverse_transform(ref.astype(np.float32)),
                               ref @ w["W_dec"] + w["b_dec"], atol=2e-5)
    assert est.k == 3 and est.source_format_ == "sparsify"
    save(est, tmp_path / "ours")  # external models save in our format too
    np.testing.assert_array_equal(load(tmp_path / "ours").transform(X),
                                  est.transform(X))


@pytest.mark.parametrize("extra, match", [
    ({"transcode": True}, "transcode"), ({"skip_connection": True}, "skip"),
    ({"activation": "groupmax"}, "groupmax"), ({"num_latents": 11}, "shape"),
])
def test_load_sparsify_rejects_unsupported(tmp_path, extra, match):
    _sparsify_files(tmp_path / "s")
    cfg = json.loads((tmp_path / "s" / "cfg.json").read_text())
    (tmp_path / "s" / "cfg.json").write_text(json.dumps({**cfg, **extra}))
    with pytest.raises(ValueError, match=match):
        load_sparsify(tmp_path / "s")
