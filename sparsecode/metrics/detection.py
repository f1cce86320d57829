"""Detection scores: predicted object centres matched one-to-one to true ones.

`match_detections` pairs predictions with truths by the Hungarian algorithm
on their distances, allowing only pairs closer than ``radius``, and returns
precision, recall and F1; `detection_scores` pools the counts over images;
`find_peaks` turns score maps into centres (``skimage.feature.peak_local_max``)
and `threshold_sweep` scores a detector at every threshold of a grid (to pick
one on validation images and apply it on test images).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from ._checks import check_finite, to_numpy

__all__ = ["detection_scores", "find_peaks", "match_detections", "threshold_sweep"]


def _points(x: Any, name: str) -> np.ndarray:
    pts = to_numpy(x, name)
    if pts.size == 0:
        return np.empty((0, 2))
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2) of (row, column) "
                         f"centres, got {pts.shape}.")
    check_finite(pts, name)
    return pts


def _check_radius(radius: Any) -> float:
    if (isinstance(radius, bool) or not isinstance(radius, Real)
            or not np.isfinite(radius) or radius <= 0):
        raise ValueError(f"radius must be a positive real number, got {radius!r}.")
    return float(radius)


def _ratio(num: int, den: int, both_empty: bool) -> float:
    return num / den if den else (1.0 if both_empty else 0.0)


def _scores(tp: int, n_pred: int, n_true: int) -> dict[str, float | int]:
    """Precision, recall and F1 from counts (1.0 when nothing was to be found
    and nothing was found, 0.0 for the other empty cases)."""
    empty = n_pred == 0 and n_true == 0
    return {"precision": _ratio(tp, n_pred, empty),
            "recall": _ratio(tp, n_true, empty),
            "f1": _ratio(2 * tp, n_pred + n_true, empty),
            "tp": int(tp), "fp": int(n_pred - tp), "fn": int(n_true - tp)}


def _n_matched(pred: np.ndarray, true: np.ndarray, radius: float) -> int:
    if not len(pred) or not len(true):
        return 0
    dist = cdist(pred, true)
    ok = dist <= radius
    # pairs beyond the radius cost more than any full in-radius matching
    cost = np.where(ok, dist, radius * (len(pred) + len(true) + 1))
    rows, cols = linear_sum_assignment(cost)
    return int(ok[rows, cols].sum())


def match_detections(pred: Any, true: Any, radius: float) -> dict[str, float | int]:
    """Score predicted centres against true ones, matched one-to-one.

    A prediction is a true positive when the Hungarian matching (the most
    pairs, then the smallest total distance) pairs it with a true centre at
    most ``radius`` away; each centre is used once.

    Parameters
    ----------
    pred : array-like of shape (n_pred, 2)
        Predicted (row, column) centres (may be empty).
    true : array-like of shape (n_true, 2)
        True centres (may be empty).
    radius : float
        Largest distance of a match, in pixels.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (floats; all 1.0 when both sets are
        empty, 0.0 when only one is) and the counts ``tp``, ``fp``, ``fn``.

    Examples
    --------
    >>> s = match_detections([[0, 0], [10, 10], [0, 1]], [[0, 0], [20, 20]], 2)
    >>> s["tp"], s["fp"], s["fn"], round(s["f1"], 3)
    (1, 2, 1, 0.4)
    """
    radius = _check_radius(radius)
    pred, true = _points(pred, "pred"), _points(true, "true")
    return _scores(_n_matched(pred, true, radius), len(pred), len(true))


def detection_scores(preds: Sequence[Any], trues: Sequence[Any],
                     radius: float) -> dict[str, float | int]:
    """Detection scores pooled over images (counts summed, then the ratios).

    Parameters
    ----------
    preds, trues : sequence of array-like of shape (n_i, 2)
        Predicted and true centres of each image.
    radius : float
        Largest distance of a match, in pixels.

    Returns
    -------
    dict
        Pooled ``precision``, ``recall``, ``f1``, ``tp``, ``fp``, ``fn``, and
        ``f1_mean``, the mean of the per-image F1.

    Examples
    --------
    >>> s = detection_scores([[[0, 0]], []], [[[1, 0]], [[5, 5]]], radius=2)
    >>> s["tp"], s["fn"], s["recall"], s["f1_mean"]
    (1, 1, 0.5, 0.5)
    """
    if len(preds) != len(trues):
        raise ValueError(f"preds and trues must hold as many images, got "
                         f"{len(preds)} and {len(trues)}.")
    radius = _check_radius(radius)
    per = [match_detections(p, t, radius) for p, t in zip(preds, trues, strict=True)]
    tp = sum(s["tp"] for s in per)
    n_pred = tp + sum(s["fp"] for s in per)
    n_true = tp + sum(s["fn"] for s in per)
    out = _scores(tp, n_pred, n_true)
    out["f1_mean"] = float(np.mean([s["f1"] for s in per])) if per else 1.0
    return out


def find_peaks(maps: Any, *, min_distance: int, threshold: float) -> list[np.ndarray]:
    """Local maxima of each score map at least ``threshold`` high.

    ``skimage.feature.peak_local_max`` with ``threshold_abs=threshold`` and
    no excluded border; of peaks closer than ``min_distance`` the highest is
    kept.

    Parameters
    ----------
    maps : array-like of shape (n, h, w)
    min_distance : int
        Smallest distance between peaks, in pixels (about an object radius).
    threshold : float
        Lowest peak value kept.

    Returns
    -------
    list of ndarray of shape (k_i, 2)
        (row, column) of the peaks of each map.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((1, 9, 9)); m[0, 2, 2], m[0, 6, 6], m[0, 6, 7] = 1, 0.5, 0.4
    >>> find_peaks(m, min_distance=2, threshold=0.3)[0].tolist()
    [[2.0, 2.0], [6.0, 6.0]]
    """
    from skimage.feature import peak_local_max

    arr = to_numpy(maps, "maps")
    if arr.ndim != 3:
        raise ValueError(f"maps must have shape (n, h, w), got {arr.shape}.")
    check_finite(arr, "maps")
    if isinstance(min_distance, bool) or not isinstance(min_distance, int) or (
            min_distance < 1):
        raise ValueError(f"min_distance must be an int >= 1, got {min_distance!r}.")
    if isinstance(threshold, bool) or not isinstance(threshold, Real):
        raise ValueError(f"threshold must be a real number, got {threshold!r}.")
    return [peak_local_max(m, min_distance=min_distance, threshold_abs=threshold,
                           exclude_border=False).astype(float) for m in arr]


def threshold_sweep(detect: Callable[[float], Sequence[Any]], trues: Sequence[Any],
                    thresholds: Sequence[float], radius: float
                    ) -> tuple[float, list[dict]]:
    """Score a detector at every threshold; return the best one and the rows.

    Parameters
    ----------
    detect : callable
        ``detect(threshold)`` returns the predicted centres of every image.
    trues : sequence of array-like of shape (n_i, 2)
        True centres of the same images.
    thresholds : sequence of float
        Candidates (at least one).
    radius : float
        Largest distance of a match.

    Returns
    -------
    best : float
        The threshold with the highest pooled F1 (the first of ties).
    rows : list of dict
        `detection_scores` of every threshold, with its ``threshold``.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((1, 9, 9)); m[0, 2, 2], m[0, 6, 6] = 1.0, 0.2
    >>> best, rows = threshold_sweep(
    ...     lambda t: find_peaks(m, min_distance=2, threshold=t),
    ...     [np.array([[2, 2]])], [0.1, 0.5], radius=1)
    >>> best, [r["f1"] for r in rows]
    (0.5, [0.6666666666666666, 1.0])
    """
    if not callable(detect):
        raise TypeError("detect must be callable as detect(threshold).")
    thresholds = [float(t) for t in thresholds]
    if not thresholds:
        raise ValueError("thresholds must hold at least one value.")
    rows = [{"threshold": t, **detection_scores(detect(t), trues, radius)}
            for t in thresholds]
    best = max(range(len(rows)), key=lambda i: (rows[i]["f1"], -i))
    return thresholds[best], rows
