"""Transcoders <-> SAELens 6 and sparsify, with the libraries themselves: their
transcoders (random weights, every bias non-zero, d_out != d_in where the
library allows it) load here as `Transcoder` with their codes and outputs,
ours open in their loaders with ours, and metadata survives both ways. The
malformed-file refusals at the end need neither library. (Both libraries are
imported lazily: SAELens takes ~8 s, sparsify pulls in transformers.)"""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from sparsecode import Transcoder, load, save
from sparsecode.io import load_saelens, load_sparsify, save_saelens, save_sparsify

RNG = np.random.RandomState(3)
D, D_OUT, M = 12, 7, 40
X = (RNG.randn(300, D) * 1.5 + 0.2).astype(np.float32)
Y = (np.maximum(X @ RNG.randn(D, D_OUT), 0) + 0.3).astype(np.float32)
Y_SAME = (np.maximum(X @ RNG.randn(D, D), 0) - 0.2).astype(np.float32)  # (sparsify)
TOL = {"rtol": 1e-5, "atol": 2e-5}  # float32 rounding
METADATA = {"model_name": "gpt2", "hook_name": "blocks.2.ln2.hook_normalized",
            "hook_name_out": "blocks.2.hook_mlp_out", "hook_head_index": None,
            "neuronpedia_id": "gpt2-small/2-tc", "context_size": 128,
            "prepend_bos": True}


@pytest.fixture(scope="module")
def sl():
    pytest.importorskip("sae_lens")
    import sae_lens
    import sae_lens.saes

    return sae_lens


@pytest.fixture(scope="module")
def sp():
    pytest.importorskip("sparsify")
    import sparsify

    return sparsify


@pytest.fixture(scope="module")
def fitted():
    """Tiny fitted transcoders, one per (activation, skip, output width)."""
    cache = {}

    def get(act, skip, d_out=D_OUT):
        if (act, skip, d_out) not in cache:
            cache[act, skip, d_out] = Transcoder(
                n_components=24, activation=act, k=4, skip_connection=skip,
                max_iter=2, batch_size=100, random_state=0, device="cpu",
            ).fit(X, Y if d_out == D_OUT else Y_SAME)
        return cache[act, skip, d_out]

    return get


def _randomise(model, seed):
    """Every weight random (biases, W_skip and thresholds non-zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        if hasattr(model, "threshold"):
            model.threshold.copy_(torch.rand(M, generator=g) * 0.5 + 0.1)
    for name, p in model.named_parameters():
        assert bool((p != 0).all()), name


def _check_trained(est):
    """A fitted transcoder's weights are all in play (non-trivial)."""
    module = est.module_
    for p in (module.b_pre, module.b_enc, module.W_skip):
        assert p is None or bool((p != 0).any())


# ------------------------------------------------------------------ SAELens
def _saelens_outputs(tc, x):
    with torch.no_grad():
        x = torch.as_tensor(x)
        return tc.encode(x).numpy(), tc(x).numpy()


_SAELENS = [  # (class, sparsecode activation, skip)
    ("Transcoder", "relu", False), ("SkipTranscoder", "relu", True),
    ("JumpReLUTranscoder", "jumprelu", False),
    ("JumpReLUSkipTranscoder", "jumprelu", True)]


@pytest.mark.parametrize("name, act, skip", _SAELENS, ids=[c[0] for c in _SAELENS])
def test_from_saelens(sl, tmp_path, name, act, skip):
    cfg = getattr(sl, f"{name}Config")(d_in=D, d_sae=M, d_out=D_OUT,
                                        apply_b_dec_to_input=False)
    cfg.metadata = sl.saes.sae.SAEMetadata(**METADATA)
    tc = getattr(sl, name)(cfg)
    _randomise(tc, seed=len(name))
    tc.save_model(tmp_path / "theirs")
    written = json.loads((tmp_path / "theirs" / "cfg.json").read_text())
    est = load_saelens(tmp_path / "theirs")
    assert type(est) is Transcoder and est.source_format_ == "saelens"
    assert est.activation == act and est.skip_connection is skip
    assert est.n_outputs_ == D_OUT and est.n_features_in_ == D
    codes, out = _saelens_outputs(tc, X)
    assert 0.05 < np.mean(codes > 0) < 0.95  # (non-trivial codes)
    np.testing.assert_allclose(est.transform(X), codes, **TOL)
    assert est.predict(X).shape == (len(X), D_OUT)
    np.testing.assert_allclose(est.predict(X), out, **TOL)
    np.testing.assert_allclose(est.inverse_transform(codes),
                               tc.decode(torch.as_tensor(codes)).detach().numpy(),
                               **TOL)
    assert est.metadata_ == written["metadata"]
    back = load(save(est, tmp_path / "ours"))  # sparsecode's own format
    assert type(back) is Transcoder and back.n_outputs_ == D_OUT
    assert back.metadata_ == est.metadata_ and back.skip_connection is skip
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    # written back, SAELens reads the same transcoder
    again = sl.SAE.load_from_disk(save_saelens(est, tmp_path / "again"))
    assert type(again) is type(tc) and again.cfg.d_out == D_OUT
    for key, value in METADATA.items():
        assert again.cfg.metadata[key] == value, key
    codes2, out2 = _saelens_outputs(again, X)
    np.testing.assert_allclose(codes2, codes, **TOL)
    np.testing.assert_allclose(out2, out, **TOL)


@pytest.mark.parametrize("act, skip, arch", [
    ("relu", False, "transcoder"), ("relu", True, "skip_transcoder"),
    ("jumprelu", False, "jumprelu_transcoder"),
    ("jumprelu", True, "jumprelu_skip_transcoder"),
    ("batchtopk", True, "jumprelu_skip_transcoder")])
def test_to_saelens(sl, fitted, tmp_path, act, skip, arch):
    est = fitted(act, skip)
    _check_trained(est)
    path = save_saelens(est, tmp_path / "tc", **METADATA)
    tc = sl.SAE.load_from_disk(path)
    assert isinstance(tc, sl.Transcoder) and tc.cfg.architecture() == arch
    assert tc.cfg.d_out == D_OUT and isinstance(tc, sl.SkipTranscoder) is skip
    codes, out = _saelens_outputs(tc, X)
    ours = est.transform(X)
    assert np.mean(ours > 0) > 0.02
    np.testing.assert_array_equal(ours != 0, codes != 0)
    np.testing.assert_allclose(ours, codes, **TOL)
    np.testing.assert_allclose(est.predict(X), out, **TOL)
    for key, value in METADATA.items():
        assert tc.cfg.metadata[key] == value, key
    back = load_saelens(path)  # and the same transcoder comes back
    assert type(back) is Transcoder and back.activation == act
    assert back.skip_connection is skip and back.n_outputs_ == D_OUT
    if act == "batchtopk":
        assert back.k == est.k
    np.testing.assert_array_equal(back.transform(X), ours)
    np.testing.assert_allclose(back.predict(X), est.predict(X), **TOL)
    assert {k: back.metadata_[k] for k in METADATA} == METADATA


def test_saelens_refuses_transcoders_it_has_no_class_for(fitted, tmp_path):
    with pytest.raises(ValueError, match="'topk' has no SAELens transcoder"):
        save_saelens(fitted("topk", False), tmp_path / "tc")
    assert not (tmp_path / "tc").exists()


# ----------------------------------------------------------------- sparsify
def _sparsify_outputs(sc, x):
    """sparsify's codes (dense) and forward output."""
    with torch.no_grad():
        x = torch.as_tensor(x)
        enc = sc.encode(x)
        codes = torch.zeros(len(x), sc.num_latents).scatter(
            1, enc.top_indices, enc.top_acts)
        return codes.numpy(), sc(x).sae_out.numpy()


@pytest.mark.parametrize("transcode, skip", [(True, False), (True, True),
                                              (False, True)])
def test_from_sparsify(sp, tmp_path, transcode, skip):
    cfg = sp.SparseCoderConfig(num_latents=M, k=6, transcode=transcode,
                               skip_connection=skip)
    sc = sp.SparseCoder(D, cfg)
    _randomise(sc, seed=2 * transcode + skip)
    sc.save_to_disk(tmp_path / "run" / "layers.4.mlp")
    est = load_sparsify(tmp_path / "run" / "layers.4.mlp")
    assert type(est) is Transcoder and est.source_format_ == "sparsify"
    assert est.activation == "topk" and est.k == 6 and est.n_components == M
    assert est.skip_connection is skip and est.n_outputs_ == D
    codes, out = _sparsify_outputs(sc, X)
    assert (np.count_nonzero(codes, axis=1) == 6).mean() > 0.5
    np.testing.assert_allclose(est.transform(X), codes, **TOL)
    np.testing.assert_allclose(est.predict(X), out, **TOL)
    assert est.metadata_ == {"expansion_factor": 32, "normalize_decoder": True,
                             "multi_topk": False, "hookpoint": "layers.4.mlp"}
    back = load(save(est, tmp_path / "ours"))  # sparsecode's own format
    assert type(back) is Transcoder and back.metadata_ == est.metadata_
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    # written back (a centring skip model as a transcoder with it folded in)
    again = sp.SparseCoder.load_from_disk(save_sparsify(est, tmp_path / "layers.4"))
    assert again.cfg.transcode and again.cfg.skip_connection is skip
    codes2, out2 = _sparsify_outputs(again, X)
    np.testing.assert_allclose(codes2, codes, **TOL)
    np.testing.assert_allclose(out2, out, **TOL)


@pytest.mark.parametrize("skip", [False, True])
def test_to_sparsify(sp, fitted, tmp_path, skip):
    est = fitted("topk", skip, d_out=D)
    _check_trained(est)
    est = load(save(est, tmp_path / "copy"))
    est.metadata_ = {"hookpoint": "layers.1.mlp", "note": "kept"}
    # (not multi_topk: sparsify's forward then outputs the 4k-latent decode)
    path = save_sparsify(est, tmp_path / "layers.1.mlp", normalize_decoder=False)
    sc = sp.SparseCoder.load_from_disk(path)
    assert sc.cfg.transcode and sc.cfg.skip_connection is skip
    assert sc.cfg.k == 4 and sc.num_latents == 24 and not sc.cfg.normalize_decoder
    codes, out = _sparsify_outputs(sc, X)
    ours = est.transform(X)
    np.testing.assert_array_equal(ours != 0, codes != 0)
    np.testing.assert_allclose(ours, codes, **TOL)
    np.testing.assert_allclose(est.predict(X), out, **TOL)
    back = load_sparsify(path)
    assert type(back) is Transcoder and back.skip_connection is skip
    assert back.metadata_ == {"expansion_factor": 2, "normalize_decoder": False,
                              "multi_topk": False, "hookpoint": "layers.1.mlp",
                              "note": "kept"}
    np.testing.assert_array_equal(back.transform(X), ours)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))


def test_sparsify_refuses_what_it_cannot_hold(fitted, tmp_path):
    with pytest.raises(ValueError, match="7 outputs and 12 inputs"):
        save_sparsify(fitted("topk", False), tmp_path / "a")
    with pytest.raises(ValueError, match="'relu' cannot be written"):
        save_sparsify(fitted("relu", False), tmp_path / "b")
    assert not list(tmp_path.iterdir())


# ----------------------------------------------- malformed files (no library)
def _saelens_transcoder(path, arch="skip_transcoder", drop=(), shapes=None,
                        **cfg_extra):
    g = torch.Generator().manual_seed(0)
    shape = {"W_enc": (D, M), "b_enc": (M,), "W_dec": (M, D_OUT), "b_dec": (D_OUT,),
             "W_skip": (D_OUT, D), "threshold": (M,), **(shapes or {})}
    names = ["W_enc", "b_enc", "W_dec", "b_dec", *(["threshold"] if "jumprelu" in
             arch else []), *(["W_skip"] if "skip" in arch else [])]
    w = {n: torch.randn(shape[n], generator=g) for n in names if n not in drop}
    cfg = {"architecture": arch, "d_in": D, "d_sae": M, "d_out": D_OUT,
           "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": False,
           "normalize_activations": "none", "reshape_activations": "none",
           "metadata": {"sae_lens_version": "6.54.12"}, **cfg_extra}
    path.mkdir()
    save_file(w, str(path / "sae_weights.safetensors"))
    (path / "cfg.json").write_text(json.dumps(cfg))
    return path


def test_saelens_transcoder_reference(tmp_path):
    # SAELens's rule by hand: act(x W_enc + b_enc) W_dec + b_dec + x W_skip^T
    path = _saelens_transcoder(tmp_path / "t", "jumprelu_skip_transcoder")
    w = {k: v.double().numpy()
         for k, v in load_file(str(path / "sae_weights.safetensors")).items()}
    pre = X @ w["W_enc"] + w["b_enc"]
    codes = np.maximum(pre, 0) * (pre > w["threshold"])
    est = load_saelens(path)
    np.testing.assert_allclose(est.transform(X), codes, atol=5e-5)
    np.testing.assert_allclose(
        est.predict(X), codes @ w["W_dec"] + w["b_dec"] + X @ w["W_skip"].T,
        atol=5e-5)


@pytest.mark.parametrize("kw, match", [
    ({"apply_b_dec_to_input": True}, r"cfg\.json.*apply_b_dec_to_input.*output bias"),
    ({"normalize_activations": "layer_norm"}, r"cfg\.json.*layer_norm.*not its output"),
    ({"drop": ("W_skip",)}, r"sae_weights\.safetensors lacks.*W_skip"),
    ({"shapes": {"W_dec": (M, D)}}, r"W_dec has shape \(40, 12\), expected \(40, 7\)"),
    ({"shapes": {"W_skip": (D, D)}}, r"W_skip has shape"),
    ({"arch": "transcoder", "shapes": {}, "drop": ()}, None),
    ({"arch": "topk_transcoder"}, r"'topk_transcoder' is not supported"),
    ({"arch": "jumprelu_transcoder", "drop": ("threshold",)}, "threshold"),
])
def test_load_saelens_transcoder_refusals(tmp_path, kw, match):
    arch = kw.pop("arch", "skip_transcoder")
    drop, shapes = kw.pop("drop", ()), kw.pop("shapes", None)
    path = _saelens_transcoder(tmp_path / "t", arch, drop, shapes, **kw)
    if match is None:  # (the unmodified file loads)
        assert load_saelens(path).n_outputs_ == D_OUT
        return
    with pytest.raises(ValueError, match=match):
        load_saelens(path)


def test_load_sparsify_skip_needs_its_weight(tmp_path):
    g = torch.Generator().manual_seed(0)
    (tmp_path / "s").mkdir()
    save_file({"encoder.weight": torch.randn(M, D, generator=g),
               "encoder.bias": torch.randn(M, generator=g),
               "W_dec": torch.randn(M, D, generator=g),
               "b_dec": torch.randn(D, generator=g)},
              str(tmp_path / "s" / "sae.safetensors"))
    (tmp_path / "s" / "cfg.json").write_text(json.dumps(
        {"num_latents": M, "k": 4, "transcode": True, "skip_connection": True,
         "d_in": D}))
    with pytest.raises(ValueError, match=r"sae\.safetensors lacks.*W_skip"):
        load_sparsify(tmp_path / "s")
