"""MRI reproduction (synthetic cohort on the real MNI152 template), quick mode,
and its glue: 3-D patches and pooled SAE codes."""

import math

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from sklearn.exceptions import NotFittedError

from sparsecode.data.mri import brain_mask, make_cohort, volume_patches
from sparsecode.features import VolumePatchFeatures
from sparsecode.papers import Report
from sparsecode.papers.mri import run


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("mri")
    return run(quick=True, device="cpu", out_dir=out), out


def _acc(report, features):
    return {r["atrophy_mm"]: r["accuracy_mean"] for r in report.table
            if r["features"] == features}


def test_quick_run_rows_and_report(quick):
    report, _ = quick
    assert isinstance(report, Report)
    assert {r["features"] for r in report.table} == {"sae_pooled", "raw_voxels",
                                                    "pca_voxels"}
    assert {r["atrophy_mm"] for r in report.table} == {0.0, 2.0, 6.0}
    assert all(r["n_subjects"] == 40 and 0 <= r["accuracy_mean"] <= 1
               for r in report.table)
    assert "synthetic cohort on a real template" in report.to_markdown().lower()


def test_accuracy_rises_with_atrophy_and_is_chance_without(quick):
    report, _ = quick
    n = report.table[0]["n_subjects"]
    # chance accuracy over n subjects has a standard error ~ sqrt(0.25 / n);
    # 3 of them (0.24 at n=40) bounds a chance classifier's cross-validated score
    margin = 3 * math.sqrt(0.25 / n)
    for features in ("sae_pooled", "raw_voxels", "pca_voxels"):
        acc = _acc(report, features)
        assert abs(acc[0.0] - 0.5) <= margin, (features, acc)
        assert acc[6.0] >= 0.85, (features, acc)
    sae = _acc(report, "sae_pooled")
    assert sae[6.0] > sae[0.0] + 0.25, sae


def test_figure_written_only_with_out_dir(quick, tmp_path, monkeypatch):
    report, out = quick
    assert len(report.figures) == 1 and report.figures[0].startswith(str(out))
    img = imread(report.figures[0])
    assert img.ndim == 3 and img.shape[0] > 300  # three rows of slices
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    small = run(quick=True, device="cpu", n_subjects=12, atrophy=[6.0])
    assert torch.get_num_threads() == threads  # its one-thread CPU mode is undone
    assert small.figures == [] and list(tmp_path.iterdir()) == []
    assert {r["atrophy_mm"] for r in small.table} == {6.0}
    assert all(r["n_subjects"] == 12 for r in small.table)


@pytest.mark.parametrize("kwargs", [{"n_subjects": 3}, {"n_subjects": 12.5},
                                    {"atrophy": [-1.0]}, {"atrophy": []},
                                    {"atrophy": ["big"]}])
def test_run_rejects_bad_overrides(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        run(quick=True, device="cpu", **kwargs)


def test_volume_patches_match_explicit_cubes():
    rng = np.random.default_rng(0)
    vols = rng.normal(size=(3, 6, 7, 5))
    mask = rng.random((6, 7, 5)) < 0.3
    mask[0, 0, 0] = mask[5, 6, 4] = True  # corners: edge padding
    P = volume_patches(vols, 3, mask)
    padded = np.pad(vols, [(0, 0), (1, 1), (1, 1), (1, 1)], mode="edge")
    for j, (a, b, c) in enumerate(zip(*np.nonzero(mask), strict=True)):
        cube = padded[:, a:a + 3, b:b + 3, c:c + 3].reshape(3, -1)
        np.testing.assert_array_equal(P[:, j], cube)


@pytest.mark.parametrize("args", [(np.zeros((2, 4, 4)), 3, np.ones((4, 4), bool)),
                                  (np.zeros((2, 4, 4, 4)), 2, np.ones((4,) * 3, bool)),
                                  (np.zeros((2, 4, 4, 4)), 3, np.ones((4,) * 3)),
                                  (np.zeros((2, 4, 4, 4)), 3, np.ones((3,) * 3, bool))])
def test_volume_patches_rejects_bad_input(args):
    with pytest.raises(ValueError, match="volumes|patch_size|mask"):
        volume_patches(*args)


@pytest.fixture(scope="module")
def cohort():
    return make_cohort(6, atrophy=4.0, resolution=8, random_state=1)


def test_pooled_codes_are_block_means_and_maxima(cohort):
    X, _ = cohort
    mask = brain_mask(8)
    kw = dict(n_components=8, k=2, n_blocks=2, max_iter=1, device="cpu")
    mean = VolumePatchFeatures(mask, pooling="mean", **kw).fit(X)
    codes = mean.sae_.transform(volume_patches(X, 3, mask).reshape(-1, 27))
    codes = np.asarray(codes).reshape(len(X), mask.sum(), 8)
    idx = np.nonzero(mask)
    block = sum((i * 2 // s) * 2 ** (2 - a)
                for a, (i, s) in enumerate(zip(idx, mask.shape, strict=True)))
    want = np.concatenate([codes[:, block == b].mean(1) for b in np.unique(block)],
                          axis=1)
    np.testing.assert_allclose(mean.transform(X), want, rtol=1e-5, atol=1e-7)
    mx = VolumePatchFeatures(mask, pooling="max", **kw).fit(X)
    want = np.concatenate([codes[:, block == b].max(1) for b in np.unique(block)],
                          axis=1)
    np.testing.assert_allclose(mx.transform(X), want, rtol=1e-5, atol=1e-7)


def test_pooled_codes_reject_bad_parameters(cohort):
    X, _ = cohort
    with pytest.raises(ValueError, match="pooling"):
        VolumePatchFeatures(brain_mask(8), pooling="median").fit(X)
    with pytest.raises(ValueError, match="n_blocks"):
        VolumePatchFeatures(brain_mask(8), n_blocks=0, max_iter=1).fit(X)
    with pytest.raises(ValueError, match="max_patches"):
        VolumePatchFeatures(brain_mask(8), max_patches=2.5, max_iter=1).fit(X)
    with pytest.raises(NotFittedError):
        VolumePatchFeatures(brain_mask(8)).transform(X)
    fitted = VolumePatchFeatures(brain_mask(8), n_components=8, k=2, max_iter=1,
                              device="cpu").fit(X)
    with pytest.raises(ValueError, match="mask"):  # volumes of another grid
        fitted.transform(X[:, :-1])


def test_volume_features_read_flattened_rows_like_volumes():
    X, _ = make_cohort(4, resolution=8, random_state=0)
    mask = brain_mask(8)
    kw = dict(n_components=8, k=2, n_blocks=2, max_iter=1, device="cpu")
    vols = VolumePatchFeatures(mask, **kw).fit(X)
    rows = VolumePatchFeatures(mask, **kw).fit(X.reshape(len(X), -1))
    np.testing.assert_array_equal(rows.transform(X.reshape(len(X), -1)),
                                  vols.transform(X))
    with pytest.raises(ValueError, match="voxels"):
        VolumePatchFeatures(mask, **kw).fit(X.reshape(len(X), -1)[:, :-1])
    with pytest.raises(ValueError, match="fitted on"):
        vols.transform(X[:, 1:])
