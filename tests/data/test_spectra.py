"""Reflectance spectra from colour-science and the linear-mixing generator."""

import numpy as np
import pytest

from sparsecode.data.spectra import (
    REFLECTANCE_SETS,
    load_reflectance_spectra,
    make_unmixing,
)
from sparsecode.metrics.unmixing import spectral_angle


@pytest.mark.parametrize("name", REFLECTANCE_SETS)
def test_every_set_loads_as_plausible_reflectances(name):
    wl, spectra, names = load_reflectance_spectra(name)
    assert spectra.shape == (len(names), wl.size) and len(names) >= 14
    assert np.all(np.diff(wl) > 0) and 300 <= wl[0] and wl[-1] <= 850
    assert spectra.min() >= 0 and 0.2 < spectra.max() < 1.5  # reflectances
    assert len(set(names)) == len(names)


def test_interpolation_onto_a_grid_and_its_range_check():
    wl, spectra, _ = load_reflectance_spectra()
    grid, resampled, _ = load_reflectance_spectra(wavelengths=[380, 385, 730])
    np.testing.assert_allclose(resampled[:, 0], spectra[:, 0])
    np.testing.assert_allclose(resampled[:, 1], (spectra[:, 0] + spectra[:, 1]) / 2)
    with pytest.raises(ValueError, match="measured range"):
        load_reflectance_spectra(wavelengths=[300, 500])
    with pytest.raises(ValueError, match="name must be one of"):
        load_reflectance_spectra("Macbeth")


def test_mixture_is_the_linear_model_with_the_requested_snr():
    X, E, A = make_unmixing(4000, 4, snr_db=20, random_state=0)
    _, library, _ = load_reflectance_spectra()
    # endmembers are real patches, pairwise apart and well conditioned
    assert all(np.isclose(library, e).all(1).any() for e in E)
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    assert min(spectral_angle(E[i], E[j])[0] for i, j in pairs) >= 0.2
    assert np.linalg.cond(E) <= 30
    assert np.all(A >= 0) and np.allclose(A.sum(1), 1)
    clean = A @ E
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((X - clean) ** 2))
    assert abs(snr - 20) < 0.2
    X0, E0, A0 = make_unmixing(50, 3, snr_db=None, random_state=1)
    np.testing.assert_allclose(X0, A0 @ E0)


def test_purity_caps_abundances_and_concentration_spreads_them():
    _, _, A = make_unmixing(3000, 3, purity=0.7, random_state=0)
    assert A.max() <= 0.7 + 1e-12 and np.allclose(A.sum(1), 1) and A.min() >= 0
    assert (A.max(1) > 0.69).mean() > 0.1  # capped rows sit at the cap
    _, _, sparse = make_unmixing(3000, 3, concentration=0.2, random_state=0)
    _, _, mixed = make_unmixing(3000, 3, concentration=5.0, random_state=0)
    assert sparse.max(1).mean() > 0.8 > 0.6 > mixed.max(1).mean()


def test_image_abundances_are_smooth_and_dirichlet_per_pixel():
    X, _, A = make_unmixing((40, 40), 3, smoothness=3.0, random_state=0)
    assert X.shape[0] == A.shape[0] == 1600 and np.allclose(A.sum(1), 1)
    maps = A.T.reshape(3, 40, 40)
    neighbour = np.corrcoef(maps[0, :, :-1].ravel(), maps[0, :, 1:].ravel())[0, 1]
    _, _, iid = make_unmixing(1600, 3, random_state=0)
    rows = iid.T.reshape(3, 40, 40)
    iid_corr = np.corrcoef(rows[0, :, :-1].ravel(), rows[0, :, 1:].ravel())[0, 1]
    assert neighbour > 0.8 and abs(iid_corr) < 0.1
    # each pixel is Dirichlet(1): abundances are Beta(1, 2), P(a < 0.1) = 0.19
    # and median 1 - sqrt(1/2) (loose: neighbouring pixels are not independent)
    assert abs((A < 0.1).mean() - 0.19) < 0.06
    assert abs(np.median(A) - (1 - np.sqrt(0.5))) < 0.06


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="purity must be > 1/n_endmembers"):
        make_unmixing(10, 4, purity=0.2)
    with pytest.raises(TypeError, match="n_pixels must be an int"):
        make_unmixing(10.5, 3)
    with pytest.raises(ValueError, match="exceeds the 24 spectra"):
        make_unmixing(10, 30, min_angle=0.0, max_condition=None)
    with pytest.raises(ValueError, match="min_angle"):
        make_unmixing(10, 12, min_angle=1.2, random_state=0)
    with pytest.raises(ValueError, match="n_pixels \\(an image shape\\)"):
        make_unmixing((0, 4), 3)
