"""Reconstruction and sparsity metrics: FVU, explained variance, L0, densities.

FVU is pooled over the evaluation set (DESIGN.md section 6); L0 is the mean
number of nonzero codes per sample; a latent is dead when never active on the
samples given and dense when active on more than 10% of them.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._checks import check_finite, pair, to_numpy

__all__ = [
    "dead_fraction",
    "dense_fraction",
    "explained_variance",
    "feature_density",
    "fvu",
    "fvu_per_sample_mean",
    "l0",
]


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

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode.metrics import fvu
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> fvu(X, X), round(fvu(X, 0.5 * X), 3), fvu(X, np.tile(X.mean(0), (3, 1)))
    (0.0, 0.75, 1.0)
    """
    X, X_hat = pair(X, X_hat)
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

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode.metrics import explained_variance
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> round(explained_variance(X, 0.5 * X), 3)
    0.25
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

    Examples
    --------
    The sample near the mean weighs most:

    >>> import numpy as np
    >>> from sparsecode.metrics import fvu, fvu_per_sample_mean
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> round(fvu_per_sample_mean(X, 0.5 * X), 3), round(fvu(X, 0.5 * X), 3)
    (1.05, 0.75)
    """
    X, X_hat = pair(X, X_hat)
    denom = np.sum((X - X.mean(axis=0)) ** 2, axis=1)
    if np.any(denom == 0):
        raise ValueError(
            f"{int(np.sum(denom == 0))} sample(s) equal the mean of X exactly; "
            "their per-sample variance ratio is undefined. Use fvu() instead."
        )
    return float(np.mean(np.sum((X - X_hat) ** 2, axis=1) / denom))


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
        arr = to_numpy(codes, "codes")
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

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode.metrics import l0
    >>> codes = np.array([[0, 1.5, 0, 0], [2, 0, -1, 0], [0, 0, 0, 0], [1, 1, 0, 0]])
    >>> l0(codes)
    1.25
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

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode.metrics import feature_density
    >>> codes = np.array([[0, 1.5, 0, 0], [2, 0, -1, 0], [0, 0, 0, 0], [1, 1, 0, 0]])
    >>> feature_density(codes).tolist()
    [0.5, 0.5, 0.25, 0.0]
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
        density = to_numpy(codes, "density")
        if density.size == 0:
            raise ValueError("density is empty.")
        check_finite(density, "density")
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

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode.metrics import dead_fraction
    >>> codes = np.array([[0, 1.5, 0, 0], [2, 0, -1, 0], [0, 0, 0, 0], [1, 1, 0, 0]])
    >>> dead_fraction(codes), dead_fraction(codes, dead_window=1)
    (0.25, 0.5)
    >>> round(dead_fraction(np.array([3, 0, 1])), 3)  # activation counts
    0.333
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

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode.metrics import dense_fraction
    >>> codes = np.array([[0, 1.5, 0, 0], [2, 0, -1, 0], [0, 0, 0, 0], [1, 1, 0, 0]])
    >>> dense_fraction(codes), dense_fraction(codes, threshold=0.3)
    (0.75, 0.5)
    """
    if isinstance(threshold, bool) or not isinstance(threshold, Real):
        raise ValueError(f"threshold must be a number, got {threshold!r}.")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}.")
    density = _density_from(codes_or_density, None)
    return float(np.mean(density > threshold))


