"""The head-to-head comparison: every family contributes recomputable points."""

import numpy as np
import pytest

from sparsecode import compare
from sparsecode.comparison import FAMILIES
from sparsecode.data.toy import make_superposition
from sparsecode.metrics import fvu, l0, mmcs


@pytest.fixture(scope="module")
def toy():
    return make_superposition(6000, 16, 32, mean_active=3, random_state=0)


@pytest.fixture(scope="module")
def result(toy, tmp_path_factory):
    X, truth = toy
    out = tmp_path_factory.mktemp("compare")
    families = ["dl_lasso", "dl_omp", "sae_topk", "sae_relu", "pca"]
    res = compare(X, families, {"dl_lasso": (0.5, 2.0), "dl_omp": (2, 4),
                                "sae_topk": (2, 4), "sae_relu": (1.0, 3.0),
                                "pca": (2, 4)},
                  n_components=64, true_features=truth, center=False,
                  device="cpu", out_dir=out, verbose=False)
    return res, out


def test_each_family_contributes_points(result):
    res, _ = result
    fams = [r["family"] for r in res.rows]
    assert {f: fams.count(f) for f in set(fams)} == {
        "dl_lasso": 2, "dl_omp": 2, "sae_topk": 2, "sae_relu": 2, "pca": 2}


def test_rows_recompute_with_metrics(result, toy):
    res, _ = result
    _, truth = toy
    for row in res.rows:
        est = res.fitted[(row["family"], row["level"])]
        codes = np.asarray(est.transform(res.X_test))
        X_hat = np.asarray(est.inverse_transform(codes))
        assert np.isclose(row["l0"], l0(codes))
        assert np.isclose(row["fvu"], fvu(res.X_test, X_hat))
        atoms = FAMILIES[row["family"]].atoms(est)
        assert np.isclose(row["mmcs"], mmcs(truth, atoms))


def test_sparsity_levels_order_l0(result):
    res, _ = result
    rows = {(r["family"], r["level"]): r for r in res.rows}
    assert rows[("dl_omp", 2)]["l0"] <= 2 + 1e-9 < rows[("dl_omp", 4)]["l0"]
    assert rows[("sae_topk", 2)]["l0"] < rows[("sae_topk", 4)]["l0"]
    assert rows[("dl_lasso", 2.0)]["l0"] < rows[("dl_lasso", 0.5)]["l0"]
    # sparse dictionaries beat PCA at equal L0 on superposed toy data
    assert rows[("dl_omp", 4)]["fvu"] < rows[("pca", 4)]["fvu"]


def test_report_and_plots_written(result):
    _, out = result
    md = (out / "report.md").read_text()
    assert "| family |" in md and "dl_omp" in md and "sae_topk" in md
    for png in ("frontier.png", "density.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_unknown_family_is_a_clear_error(toy):
    with pytest.raises(ValueError, match="unknown estimator family"):
        compare(toy[0], ["nope"], verbose=False)


def test_ground_truth_recovered_by_sae_and_dictionary_learning(result):
    """2x more true features than dimensions: both families reach MMCS >= 0.95."""
    res, _ = result
    best = {}
    for row in res.rows:
        best[row["family"]] = max(best.get(row["family"], 0.0), row["mmcs"])
    assert max(best["dl_lasso"], best["dl_omp"]) >= 0.95
    assert max(best["sae_topk"], best["sae_relu"]) >= 0.95
    assert best["pca"] < 0.9  # a dense basis cannot recover superposed features
