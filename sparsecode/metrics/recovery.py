"""Dictionary recovery: MMCS and the one-to-one Hungarian matching score."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._checks import check_finite, to_numpy

__all__ = ["hungarian_mcc", "mmcs"]


def _cosine_matrix(true_features: Any, learned_atoms: Any) -> np.ndarray:
    """Cosine similarities between rows, shape (n_true, n_learned).

    Zero learned atoms (e.g. dead decoder rows) have cosine 0 with everything;
    zero true features are rejected.
    """
    true = to_numpy(true_features, "true_features")
    learned = to_numpy(learned_atoms, "learned_atoms")
    for arr, name in ((true, "true_features"), (learned, "learned_atoms")):
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_atoms, n_features).")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"{name} is empty (shape {arr.shape}).")
        check_finite(arr, name)
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

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode.metrics import mmcs
    >>> true = np.eye(3)
    >>> learned = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [1.0, 1.0, 0.0]])
    >>> round(mmcs(true, learned), 3), round(mmcs(true, learned, absolute=True), 3)
    (0.569, 0.667)
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

    Examples
    --------
    One learned atom cannot match both true features, as it does for `mmcs`:

    >>> import numpy as np
    >>> from sparsecode.metrics import hungarian_mcc, mmcs
    >>> true, learned = np.array([[1.0, 0.0], [0.8, 0.6]]), np.array([[1.0, 0.0]])
    >>> score, (rows, cols) = hungarian_mcc(true, learned, return_assignment=True)
    >>> round(score, 3), rows.tolist(), cols.tolist(), round(mmcs(true, learned), 3)
    (0.5, [0], [0], 0.9)
    """
    cos = np.abs(_cosine_matrix(true_features, learned_atoms))
    rows, cols = linear_sum_assignment(cos, maximize=True)
    score = float(cos[rows, cols].sum() / cos.shape[0])
    if return_assignment:
        return score, (rows, cols)
    return score


