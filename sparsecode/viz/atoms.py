"""Dictionary atoms as a grid of image patches, or as spectra."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._common import _pyplot, _save

__all__ = ["plot_atoms", "plot_spectra"]


def _display(atom: np.ndarray) -> np.ndarray:
    """A colour atom stretched to [0, 1] for display (grey ones use a colormap)."""
    lo, hi = atom.min(), atom.max()
    return (atom - lo) / (hi - lo) if hi > lo else np.full_like(atom, 0.5)


def plot_atoms(
    components: Any,
    patch_shape: tuple[int, ...],
    path: str | Path,
    *,
    n_cols: int = 16,
    title: str | None = None,
) -> Path:
    """Save the atoms (rows of ``components``) as a grid of small images.

    Parameters
    ----------
    components : array-like of shape (n_components, h * w) or (n_components, h * w * 3)
    patch_shape : (h, w) or (h, w, 3)
        Grey or colour patches (colour atoms are stretched to [0, 1] each).
    path : str or Path
        Output PNG file.
    n_cols : int
        Atoms per row of the grid.
    title : str, optional

    Returns
    -------
    Path
        The written file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sparsecode.viz import plot_atoms
    >>> atoms = np.random.default_rng(0).normal(size=(8, 27))
    >>> out = plot_atoms(atoms, (3, 3, 3), os.path.join(tempfile.mkdtemp(), "a.png"))
    >>> out.stat().st_size > 0
    True
    """
    atoms = np.asarray(components, dtype=float)
    patch_shape = tuple(patch_shape)
    if (len(patch_shape) not in (2, 3) or atoms.ndim != 2
            or atoms.shape[1] != int(np.prod(patch_shape))):
        raise ValueError(
            f"components of shape {atoms.shape} do not hold {patch_shape} patches."
        )
    plt = _pyplot()
    n = atoms.shape[0]
    n_cols = min(n_cols, n)
    n_rows = -(-n // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols * 0.6, n_rows * 0.6),
                             squeeze=False)
    for ax, i in zip(np.ravel(axes), range(n_rows * n_cols), strict=True):
        ax.set_axis_off()
        if i < n:
            atom = atoms[i].reshape(patch_shape)
            if atom.ndim == 3:
                ax.imshow(_display(atom), interpolation="nearest")
            else:
                ax.imshow(atom, cmap="gray", interpolation="nearest")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_spectra(
    spectra: Any,
    wavelengths: Any,
    path: str | Path,
    *,
    labels: list[str] | None = None,
    reference: Any = None,
    title: str | None = None,
) -> Path:
    """Save spectra (rows, e.g. learned endmembers) as lines over wavelength.

    Parameters
    ----------
    spectra : array-like of shape (n_spectra, n_bands)
    wavelengths : array-like of shape (n_bands,)
    path : str or Path
        Output PNG file.
    labels : list of str, optional
        One per spectrum.
    reference : array-like of shape (n_spectra, n_bands), optional
        Drawn dashed in the same colours (e.g. the true endmembers, matched).
    title : str, optional

    Returns
    -------
    Path

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sparsecode.viz import plot_spectra
    >>> wl = np.linspace(400, 700, 31)
    >>> path = os.path.join(tempfile.mkdtemp(), "s.png")
    >>> out = plot_spectra(np.ones((2, 31)), wl, path)
    >>> out.suffix
    '.png'
    """
    S = np.asarray(spectra, dtype=float)
    wl = np.asarray(wavelengths, dtype=float)
    if S.ndim != 2 or wl.shape != (S.shape[1],):
        raise ValueError(f"spectra of shape {S.shape} do not match wavelengths of "
                         f"shape {wl.shape}.")
    R = None if reference is None else np.asarray(reference, dtype=float)
    if R is not None and R.shape != S.shape:
        raise ValueError(f"reference of shape {R.shape} does not match spectra "
                         f"{S.shape}.")
    if labels is not None and len(labels) != len(S):
        raise ValueError(f"{len(labels)} labels for {len(S)} spectra.")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, s in enumerate(S):
        line, = ax.plot(wl, s, label=None if labels is None else labels[i])
        if R is not None:
            ax.plot(wl, R[i], "--", color=line.get_color(), alpha=0.7)
    ax.set_xlabel("wavelength (nm)")
    ax.set_ylabel("reflectance")
    if labels is not None:
        ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, path)
