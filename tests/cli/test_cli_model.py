"""``sparsecode transform`` / ``evaluate`` on a saved model, and their errors."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
from safetensors.numpy import save_file

import sparsecode
from sparsecode.cli import main
from sparsecode.cli.arrays import read_array


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 12)).astype(np.float32)
    est = sparsecode.SparseAutoencoder(24, k=3, max_iter=3, random_state=0,
                                       device="cpu").fit(X)
    folder = tmp_path_factory.mktemp("model")
    sparsecode.save(est, folder / "sae")
    np.save(folder / "X.npy", X)
    return est, X, folder


def test_transform_writes_dense_and_sparse_codes_equal_to_the_models(saved, capsys):
    est, X, folder = saved
    expected = est.transform(X)
    for name in ("codes.npy", "codes.npz"):
        assert main(["transform", str(folder / "sae"), str(folder / "X.npy"),
                     "--out", str(folder / name)]) == 0
    np.testing.assert_array_equal(np.load(folder / "codes.npy"), expected)
    sparse = sp.load_npz(folder / "codes.npz")
    assert sparse.nnz == np.count_nonzero(expected)
    np.testing.assert_array_equal(sparse.toarray(), expected)


def test_evaluate_prints_and_writes_the_metrics_of_the_model(saved, capsys):
    est, X, folder = saved
    out = folder / "metrics.json"
    assert main(["evaluate", str(folder / "sae"), str(folder / "X.npy"),
                 "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    recon = est.inverse_transform(est.transform(X))
    assert metrics["fvu"] == pytest.approx(sparsecode.metrics.fvu(X, recon))
    assert metrics["l0"] <= 3 and metrics["n_samples"] == 300
    assert f"{metrics['fvu']:.6g}" in capsys.readouterr().out


def test_inputs_from_npz_and_safetensors_need_a_key_when_ambiguous(tmp_path):
    a, b = np.ones((4, 3), np.float32), np.zeros((5, 3), np.float32)
    np.savez(tmp_path / "two.npz", a=a, b=b)
    save_file({"a": a, "b": b}, str(tmp_path / "two.safetensors"))
    for name in ("two.npz", "two.safetensors"):
        with pytest.raises(ValueError, match="--key"):
            read_array(tmp_path / name)
        np.testing.assert_array_equal(read_array(tmp_path / name, "b"), b)
        with pytest.raises(ValueError, match="no array 'c'"):
            read_array(tmp_path / name, "c")


@pytest.mark.parametrize("content, suffix, match", [
    (b"not numpy", ".npy", "cannot be read"),
    (b"PK\x03\x04 broken", ".npz", "cannot be read"),
    (b"x", ".csv", "unsupported format"),
])
def test_bad_input_files_exit_2_naming_the_file(saved, tmp_path, capsys, content,
                                                suffix, match):
    _, _, folder = saved
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(content)
    assert main(["transform", str(folder / "sae"), str(bad), "--out",
                 str(tmp_path / "c.npy")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and match in err[0]
    assert not (tmp_path / "c.npy").exists()


def test_missing_model_wrong_width_and_bad_out_exit_2(saved, tmp_path, capsys):
    _, X, folder = saved
    np.save(tmp_path / "wide.npy", np.ones((3, 5), np.float32))
    cases = [
        (["evaluate", str(tmp_path / "none"), str(folder / "X.npy")], "not found"),
        (["evaluate", str(folder / "sae"), str(tmp_path / "wide.npy")], "features"),
        (["transform", str(folder / "sae"), str(folder / "X.npy"), "--out",
          str(tmp_path / "c.txt")], ".npy (dense) or .npz"),
    ]
    for argv, match in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and match in err[0], err
