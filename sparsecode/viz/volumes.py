"""Orthogonal slices of 3-D volumes (e.g. brain MRI): one row per volume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._common import _pyplot, _save

__all__ = ["SLICE_AXES", "plot_slices"]

#: Slice name -> array axis held fixed (RAS voxel order: x, y, z as in NIfTI).
SLICE_AXES = {"sagittal": 0, "coronal": 1, "axial": 2}


def _check_volumes(volume: Any) -> np.ndarray:
    vols = np.asarray(volume)
    if vols.dtype.kind not in "biuf":
        raise TypeError(f"volume must hold numbers, got dtype {vols.dtype}.")
    if vols.ndim == 3:
        vols = vols[None]
    if vols.ndim != 4 or min(vols.shape) < 1:
        raise ValueError("volume must have shape (d, h, w) or (n, d, h, w), got "
                         f"{np.shape(volume)}.")
    vols = vols.astype(np.float64)
    if not np.isfinite(vols).all():
        raise ValueError("volume holds NaN or infinite voxels.")
    return vols


def _check_axes(axes: Any) -> tuple[str, ...]:
    if isinstance(axes, str):
        axes = (axes,)
    axes = tuple(axes)
    if not axes or any(a not in SLICE_AXES for a in axes):
        raise ValueError(f"axes must name some of {tuple(SLICE_AXES)}, got {axes!r}.")
    return axes


def _draw(ax, vol: np.ndarray, name: str, signed: bool, limit: float) -> Any:
    """The central slice of ``vol`` across ``name``, superior/anterior up."""
    axis = SLICE_AXES[name]
    plane = np.take(vol, vol.shape[axis] // 2, axis=axis).T
    ax.set_axis_off()
    if signed:
        return ax.imshow(plane, cmap="RdBu_r", vmin=-limit, vmax=limit,
                         origin="lower", interpolation="nearest")
    return ax.imshow(plane, cmap="gray", vmin=vol.min(), vmax=vol.max(),
                     origin="lower", interpolation="nearest")


def plot_slices(
    volume: Any,
    path: str | Path,
    *,
    axes: Any = ("axial", "coronal", "sagittal"),
    title: str | None = None,
    labels: list[str] | None = None,
) -> Path:
    """Save the central axial, coronal and sagittal slices of volumes.

    Volumes are read in NIfTI (RAS) voxel order: array axes x (left to
    right), y (posterior to anterior), z (inferior to superior). A volume with
    negative values (e.g. a difference) is drawn with a symmetric diverging
    colormap and a colour bar; others in grey, each scaled to its own range.

    Parameters
    ----------
    volume : array-like of shape (d, h, w) or (n, d, h, w)
        One volume, or ``n`` volumes drawn one row each.
    path : str or Path
        Output PNG file.
    axes : sequence of {"axial", "coronal", "sagittal"}
        The slices drawn, one column each.
    title : str, optional
    labels : list of str, optional
        One per volume, written left of its row.

    Returns
    -------
    Path
        The written file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sparsecode.viz.volumes import plot_slices
    >>> vol = np.random.default_rng(0).random((10, 12, 8))
    >>> out = plot_slices(vol, os.path.join(tempfile.mkdtemp(), "v.png"))
    >>> out.stat().st_size > 0
    True
    """
    vols = _check_volumes(volume)
    names = _check_axes(axes)
    if labels is not None and len(labels) != len(vols):
        raise ValueError(f"{len(labels)} labels for {len(vols)} volumes.")
    plt = _pyplot()
    fig, grid = plt.subplots(len(vols), len(names), squeeze=False,
                             figsize=(2.6 * len(names) + 0.6, 2.6 * len(vols)))
    for i, vol in enumerate(vols):
        signed = bool(vol.min() < 0)
        limit = float(np.abs(vol).max()) or 1.0
        for j, name in enumerate(names):
            im = _draw(grid[i, j], vol, name, signed, limit)
            if i == 0:
                grid[i, j].set_title(name)
        if labels is not None:
            grid[i, 0].text(-0.08, 0.5, labels[i], transform=grid[i, 0].transAxes,
                            rotation=90, ha="right", va="center", fontsize="small")
        if signed:
            fig.colorbar(im, ax=grid[i, -1], shrink=0.8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
