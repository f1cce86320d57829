"""Detected object centres drawn over an image (nucleus detection)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._common import _pyplot, _save

__all__ = ["plot_detections"]


def _centres(x: Any, name: str) -> np.ndarray:
    pts = np.asarray(x, dtype=float)
    if pts.size == 0:
        return np.empty((0, 2))
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2) of (row, column) "
                         f"centres, got {pts.shape}.")
    return pts


def plot_detections(
    image: Any,
    centres: Any,
    path: str | Path,
    *,
    true_centres: Any = None,
    title: str | None = None,
) -> Path:
    """Save ``image`` with the detected centres (and the true ones) marked.

    Parameters
    ----------
    image : array-like of shape (h, w) or (h, w, 3)
        Grey or RGB image in [0, 1].
    centres : array-like of shape (n, 2)
        Detected (row, column) centres, drawn as yellow crosses.
    path : str or Path
        Output PNG file.
    true_centres : array-like of shape (m, 2), optional
        True centres, drawn as cyan circles.
    title : str, optional

    Returns
    -------
    Path
        The written file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sparsecode.viz.detections import plot_detections
    >>> img = np.random.default_rng(0).uniform(size=(32, 32, 3))
    >>> out = plot_detections(img, [[5, 5], [20, 10]],
    ...                       os.path.join(tempfile.mkdtemp(), "d.png"),
    ...                       true_centres=[[6, 5]], title="demo")
    >>> out.stat().st_size > 0
    True
    """
    img = np.asarray(image, dtype=float)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"image must have shape (h, w) or (h, w, 3), got {img.shape}.")
    pred = _centres(centres, "centres")
    plt = _pyplot()
    h, w = img.shape[:2]
    fig, ax = plt.subplots(figsize=(6, 6 * h / w))
    ax.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None,
              interpolation="nearest")
    if true_centres is not None:
        truth = _centres(true_centres, "true_centres")
        ax.scatter(truth[:, 1], truth[:, 0], s=60, facecolors="none",
                   edgecolors="cyan", linewidths=1.2, label=f"true ({len(truth)})")
    ax.scatter(pred[:, 1], pred[:, 0], s=30, marker="+", c="yellow",
               linewidths=1.2, label=f"detected ({len(pred)})")
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_axis_off()
    ax.legend(loc="lower right", fontsize=8, framealpha=0.7)
    if title:
        ax.set_title(title)
    return _save(fig, path)
