"""The MNI152 template from nilearn's wheel, NIfTI reading, the synthetic cohort."""

import numpy as np
import pytest

from sparsecode.data.mri import (
    MNI152_KINDS,
    load_mni152,
    make_cohort,
    mni152_path,
    read_volume,
)

RES = 6


def _centre(vols):
    """The central box of the volumes (where the ventricles are)."""
    d, h, w = vols.shape[1:]
    return vols[:, d // 4: 3 * d // 4, h // 4: 3 * h // 4, w // 4: 3 * w // 4]


@pytest.mark.parametrize("kind", MNI152_KINDS)
def test_template_loads_in_range(kind):
    vol, affine = load_mni152(RES, kind)
    assert vol.dtype == np.float32 and vol.shape == (33, 39, 32)
    assert vol.min() >= 0 and vol.max() <= 1 and vol.max() > 0.5
    assert np.allclose(np.diag(affine)[:3], RES)
    full, _ = read_volume(mni152_path(kind))
    # block averaging keeps the mean intensity (up to the zero padding)
    assert vol.mean() * vol.size * RES ** 3 == pytest.approx(full.sum() / 255, rel=1e-3)


def test_template_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        load_mni152(4, "csf")
    with pytest.raises(ValueError, match="resolution"):
        load_mni152(2.5)


def test_cohort_is_reproducible_and_shaped():
    X, y = make_cohort(6, atrophy=1.0, resolution=RES, random_state=3)
    X2, y2 = make_cohort(6, atrophy=1.0, resolution=RES, random_state=3)
    X3, _ = make_cohort(6, atrophy=1.0, resolution=RES, random_state=4)
    assert X.shape == (6, 33, 39, 32) and X.dtype == np.float32
    assert y.sum() == 3 and set(y) == {0, 1}
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert not np.allclose(X, X3)
    assert X.min() >= 0 and X.max() <= 1
    # subjects differ from one another (deformation, bias, noise)
    assert np.abs(X[0] - X[1]).mean() > 0.01


def _tissue(atrophy, seed=0, n=24):
    gm, y = make_cohort(n, atrophy=atrophy, resolution=RES, kind="gm",
                        random_state=seed)
    wm, _ = make_cohort(n, atrophy=atrophy, resolution=RES, kind="wm",
                        random_state=seed)
    return gm, wm, y


def test_no_atrophy_patients_match_controls():
    gm, wm, y = _tissue(0.0)
    vol = gm.sum((1, 2, 3))
    diff = vol[y == 1].mean() - vol[y == 0].mean()
    se = vol.std() * np.sqrt(2 / (len(y) / 2))
    assert abs(diff) < 3 * se, (diff, se)


def test_atrophy_enlarges_ventricles_and_thins_cortex():
    gm0, wm0, y0 = _tissue(0.0)
    gm, wm, y = _tissue(4.0)
    csf = np.clip(1 - _centre(gm + wm), 0, 1).sum((1, 2, 3))
    grey = gm.sum((1, 2, 3))
    # same seed: controls are unchanged, patients have more central CSF
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_allclose(gm[y == 0], gm0[y == 0])
    assert csf[y == 1].mean() > csf[y == 0].mean() + 2 * csf[y == 0].std()
    assert grey[y == 1].mean() < grey[y == 0].mean() - 2 * grey[y == 0].std()


def test_cohort_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_subjects"):
        make_cohort(1)
    with pytest.raises(ValueError, match="atrophy"):
        make_cohort(4, atrophy=-1)
    with pytest.raises(ValueError, match="kind"):
        make_cohort(4, kind="pd")


def test_read_volume_real_and_bad_files(tmp_path):
    vol, affine = read_volume(mni152_path("t1"))
    assert vol.shape == (197, 233, 189) and affine.shape == (4, 4)
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti file at all" * 10)
    with pytest.raises(ValueError, match="broken.nii.gz"):
        read_volume(bad)
    with pytest.raises(FileNotFoundError, match="missing.nii"):
        read_volume(tmp_path / "missing.nii")
