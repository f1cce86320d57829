"""Spectral angles, endmember matching and abundance RMSE."""

import numpy as np
import pytest
import torch

from sparsecode.metrics.unmixing import (
    abundance_rmse,
    match_endmembers,
    spectral_angle,
)


def test_spectral_angle_is_scale_invariant_and_exact_for_small_angles():
    rng = np.random.RandomState(0)
    a, b = rng.rand(5, 20), rng.rand(5, 20)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(spectral_angle(a, 3 * b), np.arccos(cos), atol=1e-12)
    t = 1e-7  # arccos of the cosine would give ~1e-8-accurate garbage here
    got = spectral_angle([1.0, 0.0], [[np.cos(t), np.sin(t)]])
    assert abs(got[0] - t) < 1e-15
    assert spectral_angle(np.zeros(3), np.ones(3))[0] == pytest.approx(np.pi / 2)
    assert spectral_angle(torch.ones(2, 4), np.ones(4)).shape == (2,)


def test_matching_recovers_a_permutation_and_scores_it():
    rng = np.random.RandomState(1)
    true = rng.rand(4, 30)
    perm = np.array([2, 0, 3, 1])
    found = 2.5 * true[perm] + 1e-3 * rng.rand(4, 30)
    found = np.vstack([found, rng.rand(1, 30)])  # one extra, unmatched
    order, angles = match_endmembers(true, found)
    np.testing.assert_array_equal(perm[order], np.arange(4))
    assert angles.shape == (4,) and angles.max() < 1e-2
    # the matched total is no larger than that of other one-to-one matchings
    sad = np.array([[spectral_angle(t, f)[0] for f in found] for t in true])
    assert angles.sum() <= min(sad[np.arange(4), p].sum() for p in
                               [np.roll(np.arange(4), k) for k in range(4)]) + 1e-12


def test_abundance_rmse_and_input_errors():
    A = np.array([[1.0, 0.0], [0.25, 0.75]])
    assert abundance_rmse(A, A) == 0.0
    assert abundance_rmse(A, A[:, ::-1]) == pytest.approx(np.sqrt((1 + 0.25) / 2))
    with pytest.raises(ValueError, match="same shape"):
        abundance_rmse(A, A[:1])
    with pytest.raises(ValueError, match="fewer than"):
        match_endmembers(np.ones((3, 4)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="number of bands"):
        spectral_angle(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="same number of spectra"):
        spectral_angle(np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="finite|NaN|nan"):
        spectral_angle([np.nan, 1.0], [1.0, 1.0])
