"""FVU-L0 frontiers and feature-density histograms (rows of `compare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._common import _pyplot, _save

__all__ = ["plot_density_histograms", "plot_frontier"]


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
