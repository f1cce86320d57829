"""Figures of arrays: atom grids, FVU-L0 frontiers, density histograms (``[viz]``).

Plots take plain arrays and rows and import nothing of sparsecode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_atoms", "plot_density_histograms", "plot_frontier"]


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


def plot_frontier(rows: list[dict], path: str | Path) -> Path:
    """FVU against L0 (log scale), one line per family (rows of `compare`)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    families = dict.fromkeys(r["family"] for r in rows)
    for fam in families:
        pts = sorted((r["l0"], r["fvu"]) for r in rows if r["family"] == fam)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=fam)
    ax.set_xscale("log")
    ax.set_xlabel("L0 (mean active latents per sample)")
    ax.set_ylabel("FVU (held out)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_density_histograms(densities: dict[str, Any], path: str | Path) -> Path:
    """Histograms of log10 feature density, one line per entry of ``densities``.

    Parameters
    ----------
    densities : dict of str to array of shape (n_latents,)
        Per label, the fraction of samples on which each latent is active.
    path : str or path-like
        PNG file to write.

    Returns
    -------
    pathlib.Path
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, dens in densities.items():
        dens = np.asarray(dens, dtype=float)
        ax.hist(np.log10(np.clip(dens, 1e-6, 1)), bins=30, histtype="step",
                label=label)
    ax.set_xlabel("log10 feature density (held out; -6 = dead)")
    ax.set_ylabel("latents")
    ax.legend(fontsize="small")
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
