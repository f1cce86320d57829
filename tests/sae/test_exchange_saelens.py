"""SAELens <-> sparsecode with SAELens itself: SAEs built and saved by SAELens
load here with its encodings and reconstructions, and sparsecode's SAEs saved
by `save_saelens` open in ``SAE.load_from_disk`` with ours; metadata survives
both ways. (SAELens is imported lazily: it takes ~10 s.)"""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sparsecode import SparseAutoencoder, load, save
from sparsecode.io import load_saelens, save_saelens

RNG = np.random.RandomState(0)
X = (RNG.randn(256, 12) * 2 + 0.3).astype(np.float32)
D, M = 12, 48
TOL = {"rtol": 1e-5, "atol": 2e-5}  # float32 rounding
METADATA = {"hook_name": "blocks.3.hook_resid_post", "model_name": "gpt2",
            "hook_head_index": None, "neuronpedia_id": "gpt2-small/3-res-x",
            "dataset_path": "Skylion007/openwebtext", "context_size": 128,
            "prepend_bos": True, "seqpos_slice": [None]}


@pytest.fixture(scope="module")
def sl():
    pytest.importorskip("sae_lens")
    import sae_lens
    import sae_lens.saes

    return sae_lens


def _randomise(sae, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        if hasattr(sae, "threshold"):
            sae.threshold.copy_(torch.rand(M, generator=g) * 0.5 + 0.1)
        sae.W_dec.mul_(torch.rand(M, 1, generator=g) * 2 + 0.2)  # uneven norms


def _outputs(sae, x):
    with torch.no_grad():
        codes = sae.encode(torch.as_tensor(x))
        return codes.numpy(), sae.decode(codes).numpy()


_FROM = [  # (SAELens class prefix, config arguments)
    ("Standard", {}),
    ("TopK", {"k": 5}),
    ("TopK", {"k": 5, "rescale_acts_by_decoder_norm": True}),
    ("JumpReLU", {}),
    ("Gated", {}),
    ("Gated", {"apply_b_dec_to_input": False}),
    ("Standard", {"normalize_activations": "layer_norm"}),
    ("TopK", {"k": 4, "normalize_activations": "constant_norm_rescale"}),
    ("JumpReLU", {"normalize_activations": "layer_norm",
                  "apply_b_dec_to_input": False}),
]
_EXPECTED = {"Standard": "relu", "TopK": "topk", "JumpReLU": "jumprelu",
             "Gated": "gated"}


@pytest.mark.parametrize("name, kw", _FROM,
                         ids=[f"{n}-{'-'.join(k)}" for n, k in _FROM])
def test_from_saelens_encodes_and_reconstructs_like_saelens(sl, tmp_path, name, kw):
    sae = getattr(sl.saes, f"{name}SAE")(getattr(sl.saes, f"{name}SAEConfig")(
        d_in=D, d_sae=M, **kw))
    _randomise(sae, seed=len(kw))
    sae.save_model(tmp_path / "theirs")
    est = load_saelens(tmp_path / "theirs")
    assert est.activation == _EXPECTED[name]
    codes, recon = _outputs(sae, X)
    np.testing.assert_allclose(est.transform(X), codes, **TOL)
    assert np.mean(codes > 0) > 0.05  # (non-trivial codes)
    with torch.no_grad():
        np.testing.assert_allclose(est.module_(torch.as_tensor(X)).numpy(),
                                   sae(torch.as_tensor(X)).numpy(), **TOL)
    if "normalize_activations" not in kw:  # (decode in normalised space there)
        np.testing.assert_allclose(est.inverse_transform(codes), recon, **TOL)
    # and back: SAELens reads our file as the same SAE
    again = sl.SAE.load_from_disk(save_saelens(est, tmp_path / "ours"))
    assert again.cfg.normalize_activations == kw.get("normalize_activations", "none")
    with torch.no_grad():
        np.testing.assert_allclose(again(torch.as_tensor(X)).numpy(),
                                   sae(torch.as_tensor(X)).numpy(), **TOL)
    np.testing.assert_allclose(_outputs(again, X)[0], codes, **TOL)


@pytest.mark.parametrize("matryoshka", [False, True])
@pytest.mark.parametrize("rescale", [True, False])
def test_batchtopk_checkpoint_keeps_its_threshold(sl, tmp_path, matryoshka, rescale):
    if matryoshka:
        cfg = sl.saes.MatryoshkaBatchTopKTrainingSAEConfig(
            d_in=D, d_sae=M, k=4, matryoshka_widths=[8, 24, M],
            rescale_acts_by_decoder_norm=rescale)
        sae = sl.saes.MatryoshkaBatchTopKTrainingSAE(cfg)
    else:
        cfg = sl.saes.BatchTopKTrainingSAEConfig(
            d_in=D, d_sae=M, k=4, rescale_acts_by_decoder_norm=rescale)
        sae = sl.saes.BatchTopKTrainingSAE(cfg)
    _randomise(sae, seed=7)
    sae.topk_threshold = torch.tensor(0.812345678, dtype=torch.float64)
    sae.save_model(tmp_path / "ckpt")  # architecture "batchtopk", topk_threshold
    sae.save_inference_model(tmp_path / "inference")  # JumpReLU
    inference = sl.SAE.load_from_disk(tmp_path / "inference")
    codes, recon = _outputs(inference, X)
    for folder in ("ckpt", "inference"):
        est = load_saelens(tmp_path / folder)
        assert est.activation == ("matryoshka" if matryoshka else "batchtopk")
        assert est.k == 4
        assert float(est.module_.activation.threshold) == float(
            inference.threshold[0].detach())
        ours = est.transform(X)
        np.testing.assert_array_equal(ours != 0, codes != 0)  # the same support
        np.testing.assert_allclose(ours, codes, **TOL)
        np.testing.assert_allclose(est.inverse_transform(codes), recon, **TOL)
        if matryoshka:
            assert est.get_params()["activation_params"]["prefixes"] == [8, 24, M]
    # (per-sample TopK, what these files loaded as before, differs)
    assert (np.count_nonzero(codes, axis=1) != 4).any()


@pytest.fixture(scope="module")
def trained():
    """One tiny fitted SAE per activation (about a second each)."""
    return {act: SparseAutoencoder(n_components=32, activation=act, k=4, max_iter=2,
                                   batch_size=64, random_state=0,
                                   device="cpu").fit(X[:200])
            for act in ("relu", "topk", "batchtopk", "jumprelu", "gated",
                        "matryoshka")}


@pytest.mark.parametrize("act, arch", [
    ("relu", "standard"), ("topk", "topk"), ("batchtopk", "jumprelu"),
    ("jumprelu", "jumprelu"), ("gated", "gated"), ("matryoshka", "jumprelu")])
def test_to_saelens_encodes_and_decodes_like_sparsecode(sl, trained, tmp_path, act,
                                                        arch):
    est = trained[act]
    path = save_saelens(est, tmp_path / act, **METADATA)
    assert sorted(p.name for p in path.iterdir()) == ["cfg.json",
                                                      "sae_weights.safetensors"]
    sae = sl.SAE.load_from_disk(path)
    assert sae.cfg.architecture() == arch
    codes, recon = _outputs(sae, X)
    ours = est.transform(X)
    assert np.mean(ours > 0) > 0.02
    np.testing.assert_array_equal(ours != 0, codes != 0)
    np.testing.assert_allclose(ours, codes, **TOL)
    np.testing.assert_allclose(est.inverse_transform(ours), recon, **TOL)
    if arch == "jumprelu":  # the very thresholds sparsecode compares against
        ours_thr = est.module_.activation.threshold.detach().expand(32)
        np.testing.assert_array_equal(sae.threshold.detach().numpy(),
                                      ours_thr.numpy())
    for key, value in METADATA.items():
        assert sae.cfg.metadata[key] == value, key
    back = load_saelens(path)  # and the same variant comes back
    assert back.activation == act
    if act in ("topk", "batchtopk", "matryoshka"):
        assert back.k == est.k
    np.testing.assert_array_equal(back.transform(X), ours)
    assert {k: back.metadata_[k] for k in METADATA} == METADATA


@pytest.mark.filterwarnings(r"ignore:\s*This SAE has non-empty:UserWarning")
def test_metadata_survives_both_ways(sl, tmp_path):
    cfg = sl.saes.TopKSAEConfig(d_in=D, d_sae=M, k=3)
    cfg.metadata = sl.saes.sae.SAEMetadata(
        **METADATA, model_from_pretrained_kwargs={"center_writing_weights": False},
        hook_name_out=None, custom_note="kept")
    sae = sl.saes.TopKSAE(cfg)
    _randomise(sae, seed=3)
    sae.save_model(tmp_path / "theirs")
    original = json.loads((tmp_path / "theirs" / "cfg.json").read_text())["metadata"]
    est = load(save(load_saelens(tmp_path / "theirs"), tmp_path / "ours"))
    assert est.metadata_ == original  # through sparsecode's own format too
    path = save_saelens(est, tmp_path / "again", context_size=256)
    written = json.loads((path / "cfg.json").read_text())["metadata"]
    assert {k: written[k] for k in original} == {**original, "context_size": 256}
    again = sl.SAE.load_from_disk(path)
    assert again.cfg.metadata.custom_note == "kept"
    assert again.cfg.metadata.neuronpedia_id == METADATA["neuronpedia_id"]
    assert again.cfg.metadata.model_from_pretrained_kwargs == {
        "center_writing_weights": False}


def test_pre_v6_file_is_written_as_a_v6_one(sl, tmp_path):
    g = torch.Generator().manual_seed(5)
    w = {"W_enc": torch.randn(D, M, generator=g), "b_enc": torch.randn(M, generator=g),
         "W_dec": torch.randn(M, D, generator=g), "b_dec": torch.randn(D, generator=g)}
    (tmp_path / "old").mkdir()
    save_file(w, str(tmp_path / "old" / "sae_weights.safetensors"))
    (tmp_path / "old" / "cfg.json").write_text(json.dumps({  # a SAELens 3 config
        "d_in": D, "d_sae": M, "dtype": "float32", "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": 3}, "apply_b_dec_to_input": False,
        "hook_point": "blocks.5.hook_resid_pre", "hook_point_layer": 5,
        "model_name": "gpt2-small", "sae_lens_training_version": "3.2.0"}))
    old = sl.SAE.load_from_disk(tmp_path / "old")
    est = load_saelens(tmp_path / "old")
    again = sl.SAE.load_from_disk(save_saelens(est, tmp_path / "new"))
    assert again.cfg.metadata.sae_lens_version == "6.0.0"
    assert again.cfg.metadata.hook_name == old.cfg.metadata.hook_name == \
        "blocks.5.hook_resid_pre"
    assert again.cfg.metadata.hook_point_layer == 5
    assert again.cfg.metadata.sae_lens_training_version == "3.2.0"
    codes = _outputs(old, X)[0]
    np.testing.assert_allclose(est.transform(X), codes, **TOL)
    np.testing.assert_allclose(_outputs(again, X)[0], codes, **TOL)
