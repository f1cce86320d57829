"""Figures: dictionary atoms as an image grid (matplotlib, optional ``[viz]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_atoms"]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Plotting needs matplotlib: pip install 'sparsecode[viz]'"
        ) from err
    return plt


def plot_atoms(
    components: Any,
    patch_shape: tuple[int, int],
    path: str | Path,
    *,
    n_cols: int = 16,
    title: str | None = None,
) -> Path:
    """Save the atoms (rows of ``components``) as a grid of small images.

    Parameters
    ----------
    components : array-like of shape (n_components, h * w)
    patch_shape : (h, w)
    path : str or Path
        Output PNG file.
    n_cols : int
        Atoms per row of the grid.
    title : str, optional

    Returns
    -------
    Path
        The written file.
    """
    plt = _pyplot()
    atoms = np.asarray(components)
    if atoms.ndim != 2 or atoms.shape[1] != patch_shape[0] * patch_shape[1]:
        raise ValueError(
            f"components of shape {atoms.shape} do not hold {patch_shape} patches."
        )
    n = atoms.shape[0]
    n_cols = min(n_cols, n)
    n_rows = -(-n // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols * 0.6, n_rows * 0.6))
    for ax, i in zip(np.ravel(axes), range(n_rows * n_cols), strict=True):
        ax.set_axis_off()
        if i < n:
            ax.imshow(atoms[i].reshape(patch_shape), cmap="gray",
                      interpolation="nearest")
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
