"""Reading SAELens and sparsify files (sparsecode.sae.exchange), checked against
hand-written references and, when installed, SAELens itself."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sparsecode import load, save
from sparsecode.io import load_saelens, load_sparsify

RNG = np.random.RandomState(0)
X = RNG.randn(200, 6).astype(np.float32)


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
