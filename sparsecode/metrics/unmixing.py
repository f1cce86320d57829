"""Spectral unmixing scores: spectral angles, endmember matching, abundance RMSE."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._checks import check_finite, to_numpy

__all__ = ["abundance_rmse", "match_endmembers", "spectral_angle"]


def _matrix(x: Any, name: str) -> np.ndarray:
    arr = to_numpy(x, name)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D or 2-D array "
                         f"(spectra as rows), got shape {arr.shape}.")
    check_finite(arr, name)
    return arr


def _unit_rows(arr: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    return np.divide(arr, norms, out=np.zeros_like(arr), where=norms > 0)


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angles between unit rows by ``2 atan2(|u - v|, |u + v|)`` (accurate
    near 0); broadcast ``(n, 1, d)`` against ``(1, m, d)`` for a matrix."""
    u, v = _unit_rows(a), _unit_rows(b)
    diff, total = np.linalg.norm(u - v, axis=-1), np.linalg.norm(u + v, axis=-1)
    return 2 * np.arctan2(diff, total)


def spectral_angle(a: Any, b: Any) -> np.ndarray:
    """Spectral angle distance (SAD) between paired spectra, in radians.

    ``SAD(a, b) = arccos(<a, b> / (||a|| ||b||))``, computed in a form that is
    accurate for small angles. A zero spectrum is at pi/2 from any non-zero
    one.

    Parameters
    ----------
    a, b : array-like or torch.Tensor of shape (n_spectra, n_bands) or (n_bands,)
        Spectra as rows; a single spectrum is broadcast against the other's rows.

    Returns
    -------
    numpy.ndarray of shape (n_spectra,)
        Angles in ``[0, pi]``.

    Raises
    ------
    ValueError
        If the inputs are empty, not finite, or their shapes do not pair up.

    Examples
    --------
    >>> from sparsecode.metrics.unmixing import spectral_angle
    >>> angles = spectral_angle([[1.0, 0.0], [1.0, 1.0]], [[2.0, 0.0], [0.0, 1.0]])
    >>> angles.round(4).tolist()
    [0.0, 0.7854]
    """
    a, b = _matrix(a, "a"), _matrix(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same number of bands (columns), "
                         f"got {a.shape[1]} and {b.shape[1]}.")
    if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
        raise ValueError(f"a and b must have the same number of spectra (rows) or "
                         f"one of them a single one, got {a.shape[0]} and "
                         f"{b.shape[0]}.")
    a, b = np.broadcast_arrays(a, b)
    return _angles(a, b)


def match_endmembers(
    true_endmembers: Any, found_endmembers: Any
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of found to true endmembers minimising total SAD.

    The Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`) on
    the matrix of spectral angles.

    Parameters
    ----------
    true_endmembers : array-like or torch.Tensor of shape (n_true, n_bands)
    found_endmembers : array-like or torch.Tensor of shape (n_found, n_bands)
        ``n_found >= n_true`` (extra found endmembers stay unmatched).

    Returns
    -------
    order : numpy.ndarray of shape (n_true,)
        ``found_endmembers[order]`` is matched row by row to the true ones (so
        abundance columns are reordered by ``abundances[:, order]``).
    angles : numpy.ndarray of shape (n_true,)
        SAD (radians) of each matched pair; ``angles.mean()`` is the usual
        mean SAD.

    Raises
    ------
    ValueError
        If the inputs are empty, not finite, have different numbers of bands,
        or fewer found endmembers than true ones.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode.metrics.unmixing import match_endmembers
    >>> true = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    >>> order, angles = match_endmembers(true, 3 * true[::-1])
    >>> order.tolist(), angles.round(6).tolist()
    ([1, 0], [0.0, 0.0])
    """
    true = _matrix(true_endmembers, "true_endmembers")
    found = _matrix(found_endmembers, "found_endmembers")
    if true.shape[1] != found.shape[1]:
        raise ValueError(f"true_endmembers and found_endmembers must have the same "
                         f"number of bands, got {true.shape[1]} and "
                         f"{found.shape[1]}.")
    if found.shape[0] < true.shape[0]:
        raise ValueError(f"found_endmembers has {found.shape[0]} rows, fewer than "
                         f"the {true.shape[0]} true endmembers.")
    sad = _angles(true[:, None, :], found[None, :, :])
    rows, cols = linear_sum_assignment(sad)
    return cols[np.argsort(rows)], sad[rows, cols][np.argsort(rows)]


def abundance_rmse(true_abundances: Any, abundances: Any) -> float:
    """Root mean squared error between two abundance matrices.

    ``sqrt(mean((A - A_hat)^2))`` over all pixels and endmembers; reorder the
    estimated columns first (`match_endmembers`).

    Parameters
    ----------
    true_abundances, abundances : array-like or torch.Tensor of shape \
(n_pixels, n_endmembers)

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the shapes differ or the inputs are empty or not finite.

    Examples
    --------
    >>> from sparsecode.metrics.unmixing import abundance_rmse
    >>> round(abundance_rmse([[1.0, 0.0], [0.5, 0.5]], [[0.8, 0.2], [0.5, 0.5]]), 6)
    0.141421
    """
    true = _matrix(true_abundances, "true_abundances")
    est = _matrix(abundances, "abundances")
    if true.shape != est.shape:
        raise ValueError(f"true_abundances and abundances must have the same shape, "
                         f"got {true.shape} and {est.shape}.")
    return float(np.sqrt(np.mean((true - est) ** 2)))
