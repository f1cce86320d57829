"""Figures of spectral unmixing: endmember spectra and abundance maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._common import _pyplot, _save

__all__ = ["plot_unmixing"]


def _check(wavelengths, true_endmembers, endmembers, true_abundances, abundances,
           image_shape):
    wl = np.asarray(wavelengths, dtype=float)
    E, F = (np.asarray(a, dtype=float) for a in (true_endmembers, endmembers))
    if E.ndim != 2 or E.shape != F.shape or wl.shape != (E.shape[1],):
        raise ValueError(f"true_endmembers {E.shape} and endmembers {F.shape} must "
                         f"be the same (n_endmembers, n_bands) with n_bands = "
                         f"len(wavelengths) = {wl.size}.")
    A, B = (np.asarray(a, dtype=float) for a in (true_abundances, abundances))
    if A.ndim != 2 or A.shape != B.shape or A.shape[1] != E.shape[0]:
        raise ValueError(f"true_abundances {A.shape} and abundances {B.shape} must "
                         f"be the same (n_pixels, n_endmembers={E.shape[0]}).")
    if image_shape is not None and (len(image_shape) != 2
                                    or int(np.prod(image_shape)) != A.shape[0]):
        raise ValueError(f"image_shape {image_shape} must be (height, width) with "
                         f"height * width = n_pixels = {A.shape[0]}.")
    return wl, E, F, A, B


def plot_unmixing(
    wavelengths: Any,
    true_endmembers: Any,
    endmembers: Any,
    true_abundances: Any,
    abundances: Any,
    path: str | Path,
    *,
    image_shape: tuple[int, int] | None = None,
    labels: list[str] | None = None,
    title: str | None = None,
) -> Path:
    """Save true vs found endmember spectra and abundance maps (one PNG).

    The first row has one panel per endmember, its true spectrum (dashed)
    and the found one; the next two rows the true and the estimated
    abundance maps (``image_shape`` given) or, without an image layout, a
    scatter of estimated against true abundances.

    Parameters
    ----------
    wavelengths : array-like of shape (n_bands,)
    true_endmembers, endmembers : array-like of shape (n_endmembers, n_bands)
        Matched row by row (`sparsecode.metrics.unmixing.match_endmembers`).
    true_abundances, abundances : array-like of shape (n_pixels, n_endmembers)
        Columns in the same order as the endmembers.
    path : str or Path
        Output PNG file.
    image_shape : (int, int), optional
        ``(height, width)`` of the pixels in row-major order.
    labels : list of str, optional
        Endmember names.
    title : str, optional

    Returns
    -------
    Path

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sparsecode.viz.unmixing import plot_unmixing
    >>> wl, E = np.linspace(400, 700, 31), np.random.rand(2, 31)
    >>> A = np.random.dirichlet([1, 1], size=12)
    >>> path = os.path.join(tempfile.mkdtemp(), "u.png")
    >>> plot_unmixing(wl, E, E, A, A, path, image_shape=(3, 4)).suffix
    '.png'
    """
    wl, E, F, A, B = _check(wavelengths, true_endmembers, endmembers,
                            true_abundances, abundances, image_shape)
    r = E.shape[0]
    if labels is not None and len(labels) != r:
        raise ValueError(f"{len(labels)} labels for {r} endmembers.")
    names = labels or [f"endmember {j}" for j in range(r)]
    plt = _pyplot()
    n_rows = 3 if image_shape is not None else 2
    fig, axes = plt.subplots(n_rows, r, figsize=(2.6 * r, 2.4 * n_rows),
                             squeeze=False)
    for j in range(r):
        ax = axes[0, j]
        ax.plot(wl, E[j], "--", color="k", label="true")
        ax.plot(wl, F[j], color="C0", label="found")
        ax.set_title(names[j], fontsize="small")
        ax.set_xlabel("nm", fontsize="small")
        if image_shape is None:
            axes[1, j].scatter(A[:, j], B[:, j], s=2, alpha=0.4)
            axes[1, j].plot([0, 1], [0, 1], "k--", lw=0.8)
            axes[1, j].set_xlabel("true abundance", fontsize="small")
            continue
        for row, M, what in ((1, A, "true"), (2, B, "estimated")):
            axes[row, j].imshow(M[:, j].reshape(image_shape), vmin=0, vmax=1,
                                cmap="viridis")
            axes[row, j].set_axis_off()
            axes[row, j].set_title(f"{what} abundance", fontsize="small")
    axes[0, 0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
