"""Evaluation metrics for sparse codes and learned dictionaries.

All functions are pure: they accept numpy arrays, array-likes and torch tensors
(on any device, any floating dtype), compute in numpy ``float64`` and return Python
floats or numpy arrays. Definitions follow ``DESIGN.md`` section 6:

* FVU is *pooled* over the whole evaluation set,
  ``sum_i ||x_i - x_hat_i||^2 / sum_i ||x_i - x_bar||^2``; the per-sample "legacy"
  mean ratio is available separately as :func:`fvu_per_sample_mean`.
* L0 is the mean number of nonzero codes per sample.
* A latent is dead when it is never active on the samples given, dense when it is
  active on more than 10% of them.
* MMCS is the mean over true features of the best cosine with any learned atom;
  :func:`hungarian_mcc` is its one-to-one (assignment) counterpart.
"""

from __future__ import annotations

import sys
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

__all__ = [
    "fvu",
    "explained_variance",
    "fvu_per_sample_mean",
    "l0",
    "feature_density",
    "dead_fraction",
    "dense_fraction",
    "mmcs",
    "hungarian_mcc",
    "word_similarity",
    "analogy_accuracy",
    "sparsity",
    "word_intrusion",
    "text_classification_accuracy",
]


# ---------------------------------------------------------------------------
# input conversion
# ---------------------------------------------------------------------------
def _is_torch_tensor(x: Any) -> bool:
    """Return True if ``x`` is a torch tensor, without importing torch."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """Convert an array-like or torch tensor to a float64 numpy array.

    Parameters
    ----------
    x : array-like or torch.Tensor
        Input values. Torch tensors may live on any device and have any dtype
        (including ``bfloat16``); sparse torch tensors are densified.
    name : str
        Name used in error messages.

    Returns
    -------
    numpy.ndarray
        A float64 array (a copy when a conversion was needed).
    """
    if _is_torch_tensor(x):
        torch = sys.modules["torch"]
        x = x.detach()
        if x.layout != torch.strided:
            x = x.to_dense()
        if x.is_complex():
            raise TypeError(f"{name} must be real-valued, got a complex tensor.")
        x = x.cpu().to(dtype=torch.float64).numpy()
    elif sp.issparse(x):
        raise TypeError(
            f"{name} is a scipy sparse matrix; this metric needs a dense array "
            "(call .toarray() first)."
        )
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} could not be converted to a float array.") from exc


def _check_finite(x: np.ndarray, name: str) -> None:
    """Raise ValueError if ``x`` contains NaN or infinity."""
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinity.")


def _as_samples(x: Any, name: str) -> np.ndarray:
    """Convert to a finite float64 array of shape (n_samples, n_features).

    Arrays with more than two dimensions, e.g. ``(batch, seq, d_model)``
    activations, are flattened over all leading dimensions.
    """
    arr = _to_numpy(x, name)
    if arr.ndim < 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}."
        )
    arr = arr.reshape(-1, arr.shape[-1])
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}).")
    _check_finite(arr, name)
    return arr


def _pair(X: Any, X_hat: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert data and reconstruction to matching float64 arrays."""
    x_shape, xh_shape = np.shape(X), np.shape(X_hat)
    if tuple(x_shape) != tuple(xh_shape):
        raise ValueError(
            f"X and X_hat must have the same shape, got {tuple(x_shape)} and "
            f"{tuple(xh_shape)}."
        )
    return _as_samples(X, "X"), _as_samples(X_hat, "X_hat")


# ---------------------------------------------------------------------------
# reconstruction
# ---------------------------------------------------------------------------
def fvu(X: Any, X_hat: Any) -> float:
    """Fraction of variance unexplained, pooled over the evaluation set.

    ``FVU = sum_i ||x_i - x_hat_i||^2 / sum_i ||x_i - x_bar||^2`` where ``x_bar``
    is the per-dimension mean of ``X``. This is the residual sum of squares
    divided by the total sum of squares of the whole set, i.e. ``1 - R^2`` with
    all dimensions pooled (the same as scikit-learn's ``r2_score`` with
    ``multioutput="variance_weighted"``).

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Original data. Inputs with more than two dimensions are flattened over
        the leading dimensions (e.g. ``(batch, seq, d_model)``).
    X_hat : array-like or torch.Tensor of the same shape as ``X``
        Reconstruction of ``X``.

    Returns
    -------
    float
        The FVU; 0 for a perfect reconstruction, 1 for predicting the mean,
        larger than 1 for reconstructions worse than the mean.

    Raises
    ------
    ValueError
        If the shapes differ, the input is empty or not finite, or ``X`` has zero
        total variance (every sample equals the mean, so the ratio is undefined).

    See Also
    --------
    explained_variance : ``1 - fvu``.
    fvu_per_sample_mean : the per-sample ("legacy") mean ratio.
    """
    X, X_hat = _pair(X, X_hat)
    total = np.sum((X - X.mean(axis=0)) ** 2)
    if not total > 0:
        raise ValueError(
            "X has zero variance (all samples are identical), so the fraction of "
            "variance unexplained is undefined."
        )
    return float(np.sum((X - X_hat) ** 2) / total)


def explained_variance(X: Any, X_hat: Any) -> float:
    """Explained variance, ``1 - fvu(X, X_hat)`` (pooled).

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Original data.
    X_hat : array-like or torch.Tensor of the same shape as ``X``
        Reconstruction of ``X``.

    Returns
    -------
    float
        Explained variance; 1 for a perfect reconstruction.

    Raises
    ------
    ValueError
        In the same cases as :func:`fvu`.
    """
    return 1.0 - fvu(X, X_hat)


def fvu_per_sample_mean(X: Any, X_hat: Any) -> float:
    """Mean over samples of the per-sample unexplained-variance ratio ("legacy").

    ``mean_i ||x_i - x_hat_i||^2 / ||x_i - x_bar||^2`` with ``x_bar`` the
    per-dimension mean of ``X``.

    This is *not* the FVU of this library: it averages ratios instead of taking
    the ratio of sums, so samples close to the mean (small denominators) weigh
    heavily and the value can differ a lot from :func:`fvu`. It exists only to
    compare numbers with tools that report this per-token "legacy" variant.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Original data.
    X_hat : array-like or torch.Tensor of the same shape as ``X``
        Reconstruction of ``X``.

    Returns
    -------
    float
        The mean per-sample ratio.

    Raises
    ------
    ValueError
        If the shapes differ, the input is empty or not finite, or some sample
        equals the mean exactly (its ratio is undefined).

    See Also
    --------
    fvu : the pooled definition used everywhere else in sparsecode.
    """
    X, X_hat = _pair(X, X_hat)
    denom = np.sum((X - X.mean(axis=0)) ** 2, axis=1)
    if np.any(denom == 0):
        raise ValueError(
            f"{int(np.sum(denom == 0))} sample(s) equal the mean of X exactly; "
            "their per-sample variance ratio is undefined. Use fvu() instead."
        )
    return float(np.mean(np.sum((X - X_hat) ** 2, axis=1) / denom))


# ---------------------------------------------------------------------------
# sparsity
# ---------------------------------------------------------------------------
def _active_counts(codes: Any, axis: int) -> tuple[np.ndarray, int]:
    """Count nonzeros of a 2-D code matrix along ``axis``.

    Returns the counts and the number of samples (rows). Accepts dense arrays,
    torch tensors and scipy sparse matrices/arrays (explicit zeros ignored).
    """
    if sp.issparse(codes):
        csr = sp.csr_array(codes, copy=True)
        csr.eliminate_zeros()
        n_rows, n_cols = csr.shape
        if axis == 1:
            counts = np.diff(csr.indptr)
        else:
            counts = np.bincount(csr.indices, minlength=n_cols)
    else:
        arr = _to_numpy(codes, "codes")
        if arr.ndim != 2:
            raise ValueError(
                f"codes must be 2-D (n_samples, n_components), got shape {arr.shape}."
            )
        n_rows = arr.shape[0]
        counts = np.count_nonzero(arr, axis=axis)
    if n_rows == 0 or (axis == 1 and counts.size == 0):
        raise ValueError("codes is empty.")
    return np.asarray(counts, dtype=np.float64), n_rows


def l0(codes: Any) -> float:
    """Mean number of nonzero codes per sample.

    Parameters
    ----------
    codes : array-like, torch.Tensor or scipy sparse of shape (n_samples, n_components)
        Sparse codes. For scipy sparse input, explicitly stored zeros are not
        counted.

    Returns
    -------
    float
        The average L0 "norm" of the rows.

    Raises
    ------
    ValueError
        If ``codes`` is not 2-D or has no samples.
    """
    counts, _ = _active_counts(codes, axis=1)
    return float(counts.mean())


def feature_density(codes: Any) -> np.ndarray:
    """Fraction of samples on which each latent is nonzero.

    Parameters
    ----------
    codes : array-like, torch.Tensor or scipy sparse of shape (n_samples, n_components)
        Sparse codes.

    Returns
    -------
    numpy.ndarray of shape (n_components,)
        Activation frequency of each latent, in ``[0, 1]``.

    Raises
    ------
    ValueError
        If ``codes`` is not 2-D or has no samples.
    """
    counts, n_rows = _active_counts(codes, axis=0)
    return counts / n_rows


def _density_from(codes_or_density: Any, dead_window: int | None) -> np.ndarray:
    """Return per-latent densities from codes (2-D) or densities/counts (1-D)."""
    if sp.issparse(codes_or_density):
        codes = sp.csr_array(codes_or_density)
        ndim = 2
    else:
        codes = codes_or_density
        ndim = np.ndim(codes)
    if ndim == 1:
        if dead_window is not None:
            raise ValueError(
                "dead_window needs 2-D codes; a 1-D density has no sample order."
            )
        density = _to_numpy(codes, "density")
        if density.size == 0:
            raise ValueError("density is empty.")
        _check_finite(density, "density")
        if np.any(density < 0):
            raise ValueError("density must be non-negative.")
        return density
    if dead_window is not None:
        if isinstance(dead_window, bool) or not isinstance(dead_window, Integral):
            raise ValueError(f"dead_window must be an int, got {dead_window!r}.")
        if dead_window < 1:
            raise ValueError(f"dead_window must be >= 1, got {dead_window}.")
        codes = codes[-dead_window:]
    return feature_density(codes)


def dead_fraction(codes_or_density: Any, *, dead_window: int | None = None) -> float:
    """Fraction of latents that are never active.

    Parameters
    ----------
    codes_or_density : array-like, torch.Tensor or scipy sparse
        Either codes of shape (n_samples, n_components), or a 1-D array of shape
        (n_components,) of per-latent densities or activation counts (as from
        :func:`feature_density`).
    dead_window : int, default=None
        If given (2-D codes only), only the last ``dead_window`` samples are
        considered, matching the training-time definition "never active over the
        last ``dead_window`` samples".

    Returns
    -------
    float
        Fraction of latents with zero activations, in ``[0, 1]``.

    Raises
    ------
    ValueError
        If the input is empty, has the wrong number of dimensions, or
        ``dead_window`` is invalid or given with a 1-D density.
    """
    density = _density_from(codes_or_density, dead_window)
    return float(np.mean(density == 0))


def dense_fraction(codes_or_density: Any, threshold: float = 0.1) -> float:
    """Fraction of latents active on more than ``threshold`` of the samples.

    Parameters
    ----------
    codes_or_density : array-like, torch.Tensor or scipy sparse
        Either codes of shape (n_samples, n_components) or a 1-D array of
        per-latent densities in ``[0, 1]`` (as from :func:`feature_density`).
    threshold : float, default=0.1
        A latent is dense when its density is strictly greater than this.

    Returns
    -------
    float
        Fraction of dense latents, in ``[0, 1]``.

    Raises
    ------
    ValueError
        If ``threshold`` is not in ``[0, 1]`` or the input is invalid.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, Real):
        raise ValueError(f"threshold must be a number, got {threshold!r}.")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}.")
    density = _density_from(codes_or_density, None)
    return float(np.mean(density > threshold))


# ---------------------------------------------------------------------------
# dictionary recovery
# ---------------------------------------------------------------------------
def _cosine_matrix(true_features: Any, learned_atoms: Any) -> np.ndarray:
    """Cosine similarities between rows, shape (n_true, n_learned).

    Zero learned atoms (e.g. dead decoder rows) have cosine 0 with everything;
    zero true features are rejected.
    """
    true = _to_numpy(true_features, "true_features")
    learned = _to_numpy(learned_atoms, "learned_atoms")
    for arr, name in ((true, "true_features"), (learned, "learned_atoms")):
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_atoms, n_features).")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"{name} is empty (shape {arr.shape}).")
        _check_finite(arr, name)
    if true.shape[1] != learned.shape[1]:
        raise ValueError(
            "true_features and learned_atoms must have the same number of "
            f"columns (features), got {true.shape[1]} and {learned.shape[1]}."
        )
    true_norm = np.linalg.norm(true, axis=1, keepdims=True)
    if np.any(true_norm == 0):
        raise ValueError("true_features contains an all-zero row.")
    learned_norm = np.linalg.norm(learned, axis=1, keepdims=True)
    learned_unit = np.divide(
        learned, learned_norm, out=np.zeros_like(learned), where=learned_norm > 0
    )
    return (true / true_norm) @ learned_unit.T


def mmcs(true_features: Any, learned_atoms: Any, *, absolute: bool = False) -> float:
    """Mean max cosine similarity (Sharkey et al. 2022).

    For each true feature take the largest cosine similarity with any learned
    atom, then average over the true features. Several true features may be
    matched to the same learned atom; see :func:`hungarian_mcc` for a one-to-one
    score.

    Parameters
    ----------
    true_features : array-like or torch.Tensor of shape (n_true, n_features)
        Ground-truth directions, one per row (need not be normalised).
    learned_atoms : array-like or torch.Tensor of shape (n_learned, n_features)
        Learned dictionary atoms / decoder rows, one per row (need not be
        normalised; all-zero rows count as cosine 0). ``n_learned`` may differ
        from ``n_true``.
    absolute : bool, default=False
        If True use ``|cos|``, so an atom pointing in the opposite direction
        counts as a match (appropriate when codes may be negative).

    Returns
    -------
    float
        MMCS in ``[-1, 1]`` (``[0, 1]`` with ``absolute=True``).

    Raises
    ------
    ValueError
        If inputs are not 2-D, are empty or not finite, have different numbers of
        columns, or a true feature is all zeros.
    """
    cos = _cosine_matrix(true_features, learned_atoms)
    if absolute:
        cos = np.abs(cos)
    return float(cos.max(axis=1).mean())


def hungarian_mcc(
    true_features: Any,
    learned_atoms: Any,
    *,
    return_assignment: bool = False,
) -> float | tuple[float, tuple[np.ndarray, np.ndarray]]:
    """Mean absolute cosine over an optimal one-to-one matching.

    The matching maximises the total ``|cos|`` between true features and learned
    atoms (Hungarian algorithm, :func:`scipy.optimize.linear_sum_assignment`).
    The score is the sum of matched ``|cos|`` divided by the number of true
    features, so when there are fewer learned atoms than true features the
    unmatched true features count as 0. Unlike :func:`mmcs`, a learned atom
    cannot explain two true features.

    Parameters
    ----------
    true_features : array-like or torch.Tensor of shape (n_true, n_features)
        Ground-truth directions, one per row.
    learned_atoms : array-like or torch.Tensor of shape (n_learned, n_features)
        Learned atoms, one per row; ``n_learned`` may differ from ``n_true``.
    return_assignment : bool, default=False
        If True also return the matching ``(true_idx, learned_idx)`` as two
        integer arrays of equal length ``min(n_true, n_learned)``.

    Returns
    -------
    score : float
        Mean matched ``|cos|`` in ``[0, 1]``.
    assignment : tuple of numpy.ndarray
        Only when ``return_assignment=True``.

    Raises
    ------
    ValueError
        In the same cases as :func:`mmcs`.
    """
    cos = np.abs(_cosine_matrix(true_features, learned_atoms))
    rows, cols = linear_sum_assignment(cos, maximize=True)
    score = float(cos[rows, cols].sum() / cos.shape[0])
    if return_assignment:
        return score, (rows, cols)
    return score


# Word-embedding evaluations live in their own module (they need the word-vector
# loaders); they are part of the metrics namespace.
from .word_metrics import (  # noqa: E402
    analogy_accuracy,
    sparsity,
    text_classification_accuracy,
    word_intrusion,
    word_similarity,
)
