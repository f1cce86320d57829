"""The ``sparsecode demo`` main job on the embedded china.jpg patches."""

import numpy as np

from sparsecode import MiniBatchDictionaryLearning, sparse_encode
from sparsecode.cli import main
from sparsecode.data.images import load_china_patches
from sparsecode.metrics import fvu, l0


def test_demo_writes_atoms_and_reports_consistent_metrics(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--n-patches", "2000",
                 "--n-components", "32", "--device", "cpu"]) == 0
    png = tmp_path / "demo_atoms.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = dict(
        line.strip().split(": ", 1) for line in capsys.readouterr().out.splitlines()
    )
    # recompute the reported held-out metrics from the same deterministic run
    X = load_china_patches(4000)
    est = MiniBatchDictionaryLearning(32, alpha=1.0, batch_size=1024, max_iter=5,
                                      random_state=0, device="cpu").fit(X[:2000])
    codes = sparse_encode(X[2000:], est.components_, algorithm="lasso_lars")
    assert np.isclose(float(printed["heldout_l0"]), l0(codes), rtol=1e-3)
    recon = codes @ est.components_
    assert np.isclose(float(printed["heldout_fvu"]), fvu(X[2000:], recon), rtol=1e-3)
    assert 0 < float(printed["heldout_fvu"]) < 0.5


def test_china_patches_are_standardised():
    X = load_china_patches(500)
    assert X.shape == (500, 64) and X.dtype == np.float32
    np.testing.assert_allclose(X.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(X.std(0), 1, rtol=1e-4)


def test_compare_command_writes_report(tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--data", "toy", "--quick", "--estimators",
                 "dl_omp,pca", "--out", str(out), "--device", "cpu"]) == 0
    md = (out / "report.md").read_text()
    assert md.count("| dl_omp |") == 4 and md.count("| pca |") == 4
    assert "mmcs" in md  # toy data knows its true features


def test_compare_command_rejects_unknown_data(capsys):
    import pytest

    assert main(["compare", "--data", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--data must be" in err[0]
    with pytest.raises(ValueError, match="--data must be"):  # -v: the traceback
        main(["-v", "compare", "--data", "nope"])


def test_compare_data_sources():
    from sparsecode.cli.compare import load_compare_data

    shapes = {"patches": 64, "glove": 50, "minilm": 384, "toy": 32}
    for name, dim in shapes.items():
        X, truth, center = load_compare_data(name, quick=True)
        assert X.shape == (4000, dim) and np.isfinite(X).all()
        assert (truth is not None) == (name == "toy") and center == (name != "toy")
