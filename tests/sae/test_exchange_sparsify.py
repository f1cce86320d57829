"""sparsify <-> sparsecode with EleutherAI's sparsify itself: its SAEs load here
with its codes and reconstructions, ours open in ``SparseCoder.load_from_disk``
with ours, and config fields beyond the architecture survive both ways.
(sparsify is imported lazily: it pulls in transformers.)"""

import copy
import json

import numpy as np
import pytest
import torch

from sparsecode import SparseAutoencoder
from sparsecode.io import load_sparsify, save_sparsify

RNG = np.random.RandomState(1)
X = (RNG.randn(256, 12) * 1.5 - 0.2).astype(np.float32)
TOL = {"rtol": 1e-5, "atol": 2e-5}


@pytest.fixture(scope="module")
def sp():
    pytest.importorskip("sparsify")
    import sparsify

    return sparsify


def _dense(sc, x):
    """sparsify's codes as a dense array, and its reconstruction."""
    with torch.no_grad():
        out = sc.encode(torch.as_tensor(x))
        codes = torch.zeros(len(x), sc.num_latents).scatter(
            1, out.top_indices, out.top_acts)
        return codes.numpy(), sc.decode(out.top_acts, out.top_indices).numpy()


def test_from_sparsify(sp, tmp_path):
    cfg = sp.SparseCoderConfig(num_latents=40, k=6, multi_topk=True)
    sc = sp.SparseCoder(12, cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in sc.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    sc.save_to_disk(tmp_path / "run" / "layers.6")
    (tmp_path / "run" / "config.json").write_text(json.dumps({"hookpoints": []}))
    est = load_sparsify(tmp_path / "run" / "layers.6")
    codes, recon = _dense(sc, X)
    assert est.k == 6 and est.n_components == 40
    np.testing.assert_allclose(est.transform(X), codes, **TOL)
    assert (np.count_nonzero(codes, axis=1) == 6).mean() > 0.5
    np.testing.assert_allclose(est.inverse_transform(codes), recon, **TOL)
    assert est.metadata_ == {"expansion_factor": 32, "normalize_decoder": True,
                             "multi_topk": True, "hookpoint": "layers.6"}
    # written back, sparsify reads the same SAE and cfg
    path = save_sparsify(est, tmp_path / "again" / "layers.6")
    again = sp.SparseCoder.load_from_disk(path)
    np.testing.assert_allclose(_dense(again, X)[0], codes, **TOL)
    assert again.cfg == sc.cfg
    saved = json.loads((path / "cfg.json").read_text())
    assert {k: v for k, v in saved.items() if k != "hookpoint"} == {
        **sc.cfg.to_dict(), "d_in": 12}


@pytest.fixture(scope="module")
def topk():
    return SparseAutoencoder(n_components=32, activation="topk", k=4, max_iter=2,
                             batch_size=64, random_state=0, device="cpu").fit(X[:200])


def test_to_sparsify(sp, topk, tmp_path):
    topk = copy.deepcopy(topk)
    topk.metadata_ = {"hookpoint": "layers.2.mlp", "model": "EleutherAI/pythia-70m"}
    path = save_sparsify(topk, tmp_path / "layers.2.mlp", normalize_decoder=False)
    assert sorted(p.name for p in path.iterdir()) == ["cfg.json", "sae.safetensors"]
    sc = sp.SparseCoder.load_from_disk(path)
    assert sc.cfg.k == 4 and sc.num_latents == 32 and not sc.cfg.normalize_decoder
    codes, recon = _dense(sc, X)
    ours = topk.transform(X)
    np.testing.assert_array_equal(ours != 0, codes != 0)
    np.testing.assert_allclose(ours, codes, **TOL)
    np.testing.assert_allclose(topk.inverse_transform(ours), recon, **TOL)
    back = load_sparsify(path)
    assert back.metadata_["hookpoint"] == "layers.2.mlp"
    assert back.metadata_["model"] == "EleutherAI/pythia-70m"
    assert back.metadata_["normalize_decoder"] is False
    np.testing.assert_array_equal(back.transform(X), ours)


def test_to_sparsify_refuses_what_sparsify_cannot_express(topk, tmp_path):
    for act in ("relu", "batchtopk"):
        est = SparseAutoencoder(n_components=16, activation=act, k=4, max_iter=1,
                                batch_size=100, random_state=0,
                                device="cpu").fit(X[:200])
        with pytest.raises(ValueError, match=rf"top-k.*activation '{act}'"):
            save_sparsify(est, tmp_path / act)
        assert not (tmp_path / act).exists()
    with pytest.raises(ValueError, match="k=5.*k=4"):
        save_sparsify(topk, tmp_path / "k", k=5)
    with pytest.raises(TypeError):
        save_sparsify(object(), tmp_path / "x")
