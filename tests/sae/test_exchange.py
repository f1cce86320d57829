"""Reading SAELens and sparsify files (sparsecode.sae.exchange), checked against
hand-written references of each library's rule (no library needed); the real
libraries are compared in test_exchange_saelens.py / test_exchange_sparsify.py."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sparsecode import load, save
from sparsecode.io import load_saelens, load_sparsify, save_saelens

RNG = np.random.RandomState(0)
X = RNG.randn(200, 6).astype(np.float32)


def _saelens_files(path, arch, d=6, m=10, seed=0, cfg_extra=None, drop=(),
                   w_extra=None):
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
    w.update(w_extra or {})
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


def test_load_saelens_pre_v6_topk_config_and_metadata(tmp_path):
    w = _saelens_files(tmp_path / "sae", "standard", cfg_extra={
        "architecture": None, "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": 2}, "metadata": None,
        "hook_point": "blocks.2.hook_resid_pre", "hook_point_layer": 2,
        "model_name": "gpt2-small", "context_size": 128, "prepend_bos": True,
        "dataset_path": "Skylion007/openwebtext"})
    est = load_saelens(tmp_path / "sae")
    assert est.activation == "topk" and est.k == 2
    np.testing.assert_allclose(est.transform(X), _saelens_reference(w, "topk", X, 2),
                               atol=2e-5)
    assert est.metadata_ == {  # (renamed as SAELens 6 renames them)
        "hook_name": "blocks.2.hook_resid_pre", "hook_point_layer": 2,
        "model_name": "gpt2-small", "context_size": 128, "prepend_bos": True,
        "dataset_path": "Skylion007/openwebtext"}


def test_legacy_scaling_factor_is_folded_or_refused(tmp_path):
    sf = torch.linspace(0.5, 2.0, 10)
    w = _saelens_files(tmp_path / "a", "standard", w_extra={"scaling_factor": sf},
                       cfg_extra={"finetuning_scaling_factor": True})
    est = load_saelens(tmp_path / "a")
    codes = _saelens_reference(w, "standard", X)
    np.testing.assert_allclose(est.transform(X), codes, atol=2e-5)
    # SAELens 5 decodes (codes * scaling_factor) @ W_dec + b_dec
    np.testing.assert_allclose(est.inverse_transform(codes.astype(np.float32)),
                               (codes * w["scaling_factor"]) @ w["W_dec"] + w["b_dec"],
                               atol=2e-5)
    _saelens_files(tmp_path / "b", "standard", w_extra={"scaling_factor": sf},
                   cfg_extra={"finetuning_scaling_factor": False})
    with pytest.raises(ValueError, match=r"sae_weights\.safetensors.*scaling_factor"):
        load_saelens(tmp_path / "b")
    w = _saelens_files(tmp_path / "c", "standard",
                       w_extra={"scaling_factor": torch.ones(10)})
    np.testing.assert_allclose(load_saelens(tmp_path / "c").inverse_transform(
        codes.astype(np.float32)), codes @ w["W_dec"] + w["b_dec"], atol=2e-5)


def test_expected_average_norm_is_folded_or_refused(tmp_path):
    s = 2.5
    w = _saelens_files(tmp_path / "a", "standard", cfg_extra={
        "normalize_activations": "expected_average_only_in", "norm_scaling_factor": s})
    est = load_saelens(tmp_path / "a")
    codes = _saelens_reference(w, "standard", s * X)  # the SAE sees s * x ...
    np.testing.assert_allclose(est.transform(X), codes, atol=5e-5)
    np.testing.assert_allclose(  # ... and its reconstruction is divided by s
        est.inverse_transform(codes.astype(np.float32)),
        (codes @ w["W_dec"] + w["b_dec"]) / s, atol=5e-5)
    _saelens_files(tmp_path / "b", "standard",
                   cfg_extra={"normalize_activations": "expected_average_only_in"})
    with pytest.raises(ValueError, match=r"cfg\.json.*norm_scaling_factor"):
        load_saelens(tmp_path / "b")


@pytest.mark.parametrize("cfg_extra, match", [
    ({"architecture": "abstopk", "k": 3}, "abstopk.*sign"),
    ({"architecture": "temporal"}, "temporal"),
    ({"architecture": "matching_pursuit"}, "matching_pursuit"),
    # (a transcoder's b_dec is its output bias: SAELens refuses centring too)
    ({"architecture": "jumprelu_skip_transcoder"}, "apply_b_dec_to_input"),
    ({"architecture": "topk_transcoder"}, "topk_transcoder"),
    ({"architecture": "something_new"}, "something_new"),
    ({"normalize_activations": "covariance_whitening"}, "covariance_whitening"),
    ({"reshape_activations": "hook_q"}, "hook_q"),
    ({"activation_fn": "tanh-relu"}, "tanh-relu"),
])
def test_load_saelens_refuses_what_it_cannot_express(tmp_path, cfg_extra, match):
    _saelens_files(tmp_path / "s", "standard", cfg_extra=cfg_extra)
    with pytest.raises(ValueError, match=rf"cfg\.json.*{match}"):
        load_saelens(tmp_path / "s")


def test_load_saelens_refuses_missing_and_unknown_weights(tmp_path):
    _saelens_files(tmp_path / "a", "jumprelu", drop=("threshold",))
    with pytest.raises(ValueError, match=r"sae_weights\.safetensors.*threshold"):
        load_saelens(tmp_path / "a")
    _saelens_files(tmp_path / "b", "standard", w_extra={"W_skip": torch.zeros(6, 6)})
    with pytest.raises(ValueError, match=r"sae_weights\.safetensors.*W_skip"):
        load_saelens(tmp_path / "b")
    with pytest.raises(FileNotFoundError):
        load_saelens(tmp_path / "missing")


def test_hook_z_sae_round_trips_its_option(tmp_path):
    _saelens_files(tmp_path / "z", "standard", cfg_extra={
        "reshape_activations": "hook_z",
        "metadata": {"sae_lens_version": "6.5.0", "hook_name": "blocks.0.attn.hook_z"}})
    est = load_saelens(tmp_path / "z")
    assert est.metadata_["reshape_activations"] == "hook_z"
    cfg = json.loads((save_saelens(est, tmp_path / "out") / "cfg.json").read_text())
    assert cfg["reshape_activations"] == "hook_z"
    assert cfg["metadata"]["hook_name"] == "blocks.0.attn.hook_z"
    assert "reshape_activations" not in cfg["metadata"]


def test_pre_v6_hook_z_default(tmp_path):
    # before version 6, SAELens reshaped every SAE whose hook name has hook_z
    _saelens_files(tmp_path / "z", "standard", cfg_extra={
        "metadata": None, "reshape_activations": None,
        "hook_name": "blocks.0.attn.hook_z"})
    assert load_saelens(tmp_path / "z").metadata_["reshape_activations"] == "hook_z"


def test_metadata_survives_sparsecode_save_load(tmp_path):
    _saelens_files(tmp_path / "s", "topk", cfg_extra={"k": 3, "metadata": {
        "sae_lens_version": "6.5.0", "hook_name": "blocks.4.hook_resid_post",
        "hook_head_index": None, "model_name": "gpt2", "neuronpedia_id": "gpt2/4-x",
        "context_size": 1024, "prepend_bos": False,
        "model_from_pretrained_kwargs": {"center_writing_weights": False}}})
    est = load_saelens(tmp_path / "s")
    back = load(save(est, tmp_path / "ours"))
    assert back.metadata_ == est.metadata_
    assert back.metadata_["neuronpedia_id"] == "gpt2/4-x"
    assert back.metadata_["model_from_pretrained_kwargs"] == {
        "center_writing_weights": False}
    np.testing.assert_array_equal(back.transform(X), est.transform(X))


# ----------------------------------------------------------------- sparsify
def _sparsify_files(path, d=6, m=10, k=3, **cfg_extra):
    g = torch.Generator().manual_seed(1)
    w = {"encoder.weight": torch.randn(m, d, generator=g) * 0.5,
         "encoder.bias": torch.randn(m, generator=g) * 0.3,
         "W_dec": torch.randn(m, d, generator=g), "b_dec": torch.randn(d, generator=g)}
    cfg = {"activation": "topk", "expansion_factor": 32, "normalize_decoder": True,
           "num_latents": m, "k": k, "multi_topk": False, "skip_connection": False,
           "transcode": False, "d_in": d, **cfg_extra}
    path.mkdir(parents=True)
    save_file(w, str(path / "sae.safetensors"))
    (path / "cfg.json").write_text(json.dumps(cfg))
    return {k: v.numpy().astype(np.float64) for k, v in w.items()}


def test_load_sparsify_layout(tmp_path):
    w = _sparsify_files(tmp_path / "run" / "layers.7.mlp", extra_field=[1, 2])
    est = load_sparsify(tmp_path / "run" / "layers.7.mlp")
    pre = np.maximum((X - w["b_dec"]) @ w["encoder.weight"].T + w["encoder.bias"], 0)
    idx = np.argsort(-pre, axis=1)[:, :3]  # sparsify: top-k of ReLU(pre)
    ref = np.zeros_like(pre)
    np.put_along_axis(ref, idx, np.take_along_axis(pre, idx, 1), 1)
    np.testing.assert_allclose(est.transform(X), ref, atol=2e-5)
    np.testing.assert_allclose(est.inverse_transform(ref.astype(np.float32)),
                               ref @ w["W_dec"] + w["b_dec"], atol=2e-5)
    assert est.k == 3 and est.source_format_ == "sparsify"
    assert est.metadata_ == {"expansion_factor": 32, "normalize_decoder": True,
                             "multi_topk": False, "extra_field": [1, 2],
                             "hookpoint": "layers.7.mlp"}
    back = load(save(est, tmp_path / "ours"))  # external models save in our format
    np.testing.assert_array_equal(back.transform(X), est.transform(X))
    assert back.metadata_ == est.metadata_


def test_sparsify_hookpoint_from_the_run_config(tmp_path):
    _sparsify_files(tmp_path / "run" / "encoder_out")
    assert "hookpoint" not in load_sparsify(tmp_path / "run" / "encoder_out").metadata_
    (tmp_path / "run" / "config.json").write_text(json.dumps(
        {"sae": {}, "hookpoints": ["encoder_out"]}))
    est = load_sparsify(tmp_path / "run" / "encoder_out")
    assert est.metadata_["hookpoint"] == "encoder_out"


@pytest.mark.parametrize("extra, match", [
    ({"skip_connection": True}, "lacks.*W_skip"),
    ({"activation": "groupmax"}, "groupmax"), ({"num_latents": 11}, "shape"),
    ({"k": 11}, "k=11"),
])
def test_load_sparsify_rejects_unsupported(tmp_path, extra, match):
    _sparsify_files(tmp_path / "s")
    cfg = json.loads((tmp_path / "s" / "cfg.json").read_text())
    (tmp_path / "s" / "cfg.json").write_text(json.dumps({**cfg, **extra}))
    with pytest.raises(ValueError, match=match):
        load_sparsify(tmp_path / "s")
