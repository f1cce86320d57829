"""Tests for sparsecode.metrics (hand-computed examples and edge cases)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import r2_score

from sparsecode.metrics import (
    dead_fraction,
    dense_fraction,
    explained_variance,
    feature_density,
    fvu,
    fvu_per_sample_mean,
    hungarian_mcc,
    l0,
    mmcs,
)

# 3 samples x 2 dims. Column means x_bar = [1, 1].
# Deviations from the mean: [0, -1], [-1, 0], [1, 1] -> total SS = 1 + 1 + 2 = 4.
X_SMALL = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
# Residuals X - X_hat: [0, -1], [0, 0], [0, 1] -> residual SS = 2, FVU = 2 / 4.
X_HAT_SMALL = np.array([[1.0, 1.0], [0.0, 1.0], [2.0, 1.0]])

# Codes: row nnz = 2, 0, 1, 2 -> L0 = 5 / 4.
# Column nnz = 2, 2, 1, 0 -> density = [0.5, 0.5, 0.25, 0].
CODES = np.array(
    [
        [0.0, 1.0, 2.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [3.0, 0.0, 0.0, 0.0],
        [-1.0, 1.0, 0.0, 0.0],
    ]
)


def _random_pair(seed=0, shape=(50, 6)):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal(shape)
    return X, X + 0.3 * rng.standard_normal(shape)


# --------------------------------------------------------------------- FVU
def test_fvu_hand_computed():
    assert fvu(X_SMALL, X_HAT_SMALL) == pytest.approx(0.5)
    assert explained_variance(X_SMALL, X_HAT_SMALL) == pytest.approx(0.5)


def test_fvu_perfect_and_mean_reconstruction():
    X, _ = _random_pair()
    assert fvu(X, X) == 0.0
    mean_pred = np.broadcast_to(X.mean(axis=0), X.shape)
    assert fvu(X, mean_pred) == pytest.approx(1.0)
    assert explained_variance(X, X) == 1.0


def test_fvu_matches_sklearn_variance_weighted_r2():
    X, X_hat = _random_pair()
    expected = 1.0 - r2_score(X, X_hat, multioutput="variance_weighted")
    assert fvu(X, X_hat) == pytest.approx(expected, rel=1e-12)


def test_fvu_differs_from_per_sample_mean():
    # Residuals: [0, 0], [0, 0], [0, 2] -> pooled FVU = 4 / 4 = 1.
    # Per-sample ratios: 0 / 1, 0 / 1, 4 / 2 -> legacy mean = 2 / 3.
    X_hat = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    assert fvu(X_SMALL, X_hat) == pytest.approx(1.0)
    assert fvu_per_sample_mean(X_SMALL, X_hat) == pytest.approx(2.0 / 3.0)


def test_fvu_per_sample_mean_hand_computed():
    # Per-sample ratios for X_HAT_SMALL: 1 / 1, 0 / 1, 1 / 2 -> mean = 0.5.
    assert fvu_per_sample_mean(X_SMALL, X_HAT_SMALL) == pytest.approx(0.5)


@pytest.mark.parametrize("func", [fvu, explained_variance, fvu_per_sample_mean])
def test_fvu_torch_matches_numpy(func):
    X, X_hat = _random_pair(seed=1)
    expected = func(X, X_hat)
    got64 = func(torch.from_numpy(X), torch.from_numpy(X_hat))
    got32 = func(
        torch.tensor(X, dtype=torch.float32, requires_grad=True),
        torch.tensor(X_hat, dtype=torch.float32),
    )
    assert isinstance(got32, float)
    assert got64 == pytest.approx(expected, rel=1e-12)
    assert got32 == pytest.approx(expected, rel=1e-5)


def test_fvu_accepts_bfloat16_and_leading_dims():
    X, X_hat = _random_pair(seed=2, shape=(4, 5, 3))
    flat = fvu(X.reshape(-1, 3), X_hat.reshape(-1, 3))
    assert fvu(X, X_hat) == pytest.approx(flat)
    got = fvu(torch.tensor(X, dtype=torch.bfloat16), torch.tensor(X_hat).bfloat16())
    assert got == pytest.approx(flat, rel=0.05)


@pytest.mark.parametrize(
    ("X", "X_hat", "match"),
    [
        (np.ones((3, 2)), np.ones((3, 3)), "same shape"),
        (np.ones((0, 2)), np.ones((0, 2)), "empty"),
        (np.ones((3, 2)), np.zeros((3, 2)), "zero variance"),
        (np.arange(3.0), np.arange(3.0), "2-D"),
        (np.array([[np.nan, 1.0], [0.0, 1.0]]), np.ones((2, 2)), "NaN"),
        (np.eye(2), np.array([[np.inf, 0.0], [0.0, 1.0]]), "NaN or infinity"),
    ],
)
def test_fvu_errors(X, X_hat, match):
    with pytest.raises(ValueError, match=match):
        fvu(X, X_hat)


def test_fvu_per_sample_mean_rejects_sample_at_mean():
    # The middle sample equals the column mean [1, 1].
    X = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    assert fvu(X, X * 0.5) > 0  # the pooled version is fine
    with pytest.raises(ValueError, match="equal the mean"):
        fvu_per_sample_mean(X, X * 0.5)


def test_fvu_rejects_scipy_sparse():
    with pytest.raises(TypeError, match="sparse"):
        fvu(sp.csr_array(np.eye(3)), np.eye(3))


# ----------------------------------------------------------- sparsity
def test_l0_and_density_hand_computed():
    assert l0(CODES) == pytest.approx(1.25)
    np.testing.assert_allclose(feature_density(CODES), [0.5, 0.5, 0.25, 0.0])
    assert dead_fraction(CODES) == pytest.approx(0.25)
    # Densities 0.5, 0.5, 0.25 exceed 0.1; 0 does not.
    assert dense_fraction(CODES) == pytest.approx(0.75)
    # Strictly greater: 0.25 is not dense at threshold 0.25.
    assert dense_fraction(CODES, threshold=0.25) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "convert",
    [
        torch.from_numpy,
        lambda a: torch.from_numpy(a).to_sparse(),
        sp.csr_array,
        sp.csc_matrix,
        lambda a: a.tolist(),
    ],
    ids=["torch", "torch-sparse", "csr_array", "csc_matrix", "list"],
)
def test_sparsity_metrics_input_types_agree(convert):
    codes = convert(CODES)
    assert l0(codes) == pytest.approx(1.25)
    np.testing.assert_allclose(feature_density(codes), [0.5, 0.5, 0.25, 0.0])
    assert dead_fraction(codes) == pytest.approx(0.25)
    assert dense_fraction(codes) == pytest.approx(0.75)


def test_scipy_explicit_zeros_are_not_counted():
    codes = sp.csr_array(CODES)
    codes.data[:] = np.where(codes.data == 3.0, 0.0, codes.data)  # stored zero
    assert codes.nnz == 5
    assert l0(codes) == pytest.approx(1.0)
    np.testing.assert_allclose(feature_density(codes), [0.25, 0.5, 0.25, 0.0])


def test_dead_fraction_window_and_density_input():
    # Last row [-1, 1, 0, 0]: latents 2 and 3 inactive -> 2 / 4 dead.
    assert dead_fraction(CODES, dead_window=1) == pytest.approx(0.5)
    # Last two rows [3, 0, 0, 0] and [-1, 1, 0, 0]: latents 2 and 3 dead.
    assert dead_fraction(CODES, dead_window=2) == pytest.approx(0.5)
    assert dead_fraction(CODES, dead_window=100) == pytest.approx(0.25)
    assert dead_fraction(np.array([0.0, 0.2, 0.0, 1.0])) == pytest.approx(0.5)
    assert dead_fraction(np.array([0, 7, 3])) == pytest.approx(1 / 3)  # counts
    assert dense_fraction(np.array([0.05, 0.1, 0.11, 0.9])) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: l0(np.zeros((0, 3))), "empty"),
        (lambda: l0(np.zeros(3)), "2-D"),
        (lambda: feature_density(np.zeros((2, 2, 2))), "2-D"),
        (lambda: dead_fraction(CODES, dead_window=0), ">= 1"),
        (lambda: dead_fraction(CODES, dead_window=1.5), "int"),
        (lambda: dead_fraction(np.array([0.1, 0.2]), dead_window=3), "2-D codes"),
        (lambda: dead_fraction(np.array([])), "empty"),
        (lambda: dead_fraction(np.array([-0.1, 0.2])), "non-negative"),
        (lambda: dense_fraction(CODES, threshold=1.5), r"\[0, 1\]"),
    ],
)
def test_sparsity_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------- dictionary recovery
def _truth(seed=0, n_true=6, n_features=10):
    rng = np.random.default_rng(seed)
    return rng, rng.standard_normal((n_true, n_features))


def test_mmcs_hand_computed():
    true = np.array([[1.0, 0.0], [0.0, 1.0]])
    learned = np.array([[2.0, 2.0]])  # cos = 1 / sqrt(2) with both
    assert mmcs(true, learned) == pytest.approx(1 / np.sqrt(2))
    # One learned atom for two true features: (1 / sqrt(2) + 0) / 2.
    assert hungarian_mcc(true, learned) == pytest.approx(1 / (2 * np.sqrt(2)))


def test_mmcs_is_one_for_permuted_scaled_copy():
    rng, true = _truth()
    perm = rng.permutation(len(true))
    scales = rng.uniform(0.1, 10.0, size=(len(true), 1))
    learned = true[perm] * scales
    assert mmcs(true, learned) == pytest.approx(1.0)
    score, (rows, cols) = hungarian_mcc(true, learned, return_assignment=True)
    assert score == pytest.approx(1.0)
    np.testing.assert_array_equal(perm[cols], rows)


def test_mmcs_with_more_learned_atoms_and_zero_atom():
    rng, true = _truth(seed=3)
    extra = rng.standard_normal((5, true.shape[1]))
    learned = np.vstack([extra, np.zeros((1, true.shape[1])), true])
    assert mmcs(true, learned) == pytest.approx(1.0)
    assert hungarian_mcc(true, learned) == pytest.approx(1.0)
    # An all-zero (dead) atom matches nothing instead of producing NaN.
    assert mmcs(true, np.zeros((2, true.shape[1]))) == 0.0


def test_mmcs_sign_and_absolute_option():
    _, true = _truth(seed=4)
    flipped = -true
    assert mmcs(true, flipped) == pytest.approx(
        np.max(-_cos(true, true), axis=1).mean()
    )
    assert mmcs(true, flipped) < 0.9
    assert mmcs(true, flipped, absolute=True) == pytest.approx(1.0)
    assert hungarian_mcc(true, flipped) == pytest.approx(1.0)  # uses |cos|


def _cos(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def test_hungarian_below_mmcs_when_atoms_duplicate_a_feature():
    true = np.eye(3)
    # Two copies of e0 and one atom between e1 and e2.
    learned = np.array([[1.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    # MMCS: e0 -> 1, e1 -> 1/sqrt(2), e2 -> 1/sqrt(2).
    expected_mmcs = (1 + 2 / np.sqrt(2)) / 3
    # One-to-one: e0 - atom 0 (1), e1 or e2 - atom 2 (1/sqrt(2)), the other - 0.
    expected_hungarian = (1 + 1 / np.sqrt(2)) / 3
    assert mmcs(true, learned) == pytest.approx(expected_mmcs)
    assert hungarian_mcc(true, learned) == pytest.approx(expected_hungarian)
    assert hungarian_mcc(true, learned) < mmcs(true, learned)


def test_hungarian_normalised_by_true_count_when_fewer_atoms():
    _, true = _truth(seed=5)
    learned = true[:2] * 4.0
    # Two true features matched perfectly, four unmatched count as 0.
    assert hungarian_mcc(true, learned) == pytest.approx(2 / 6)
    assert mmcs(true, learned) > 2 / 6


def test_recovery_metrics_torch_matches_numpy():
    rng, true = _truth(seed=6)
    learned = true + 0.5 * rng.standard_normal(true.shape)
    t_true = torch.tensor(true, dtype=torch.float32)
    t_learned = torch.tensor(learned, dtype=torch.float32)
    assert mmcs(t_true, t_learned) == pytest.approx(mmcs(true, learned), rel=1e-5)
    assert hungarian_mcc(t_true, t_learned) == pytest.approx(
        hungarian_mcc(true, learned), rel=1e-5
    )


@pytest.mark.parametrize("func", [mmcs, hungarian_mcc])
@pytest.mark.parametrize(
    ("true", "learned", "match"),
    [
        (np.eye(3), np.eye(4), "same number of columns"),
        (np.array([[1.0, 0.0], [0.0, 0.0]]), np.eye(2), "all-zero row"),
        (np.ones(3), np.eye(3), "2-D"),
        (np.eye(3), np.zeros((0, 3)), "empty"),
        (np.eye(2), np.array([[np.nan, 1.0]]), "NaN"),
    ],
)
def test_recovery_errors(func, true, learned, match):
    with pytest.raises(ValueError, match=match):
        func(true, learned)
