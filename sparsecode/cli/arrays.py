"""Arrays in and out of the command line: ``.npy``, ``.npz``, ``.safetensors``,
activation stores, and codes written dense (``.npy``) or sparse (``.npz``)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from .._utils import atomic_write, read_tensors

__all__ = ["read_array", "write_codes"]


def _one(arrays: dict, key: str | None, path: Path) -> np.ndarray:
    if key is not None:
        if key not in arrays:
            raise ValueError(f"{path} has no array {key!r}; it holds "
                             f"{sorted(arrays)}.")
        return np.asarray(arrays[key])
    if len(arrays) != 1:
        raise ValueError(f"{path} holds {len(arrays)} arrays {sorted(arrays)}; "
                         "name one with --key.")
    return np.asarray(next(iter(arrays.values())))


def read_array(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """The 2-D float array of a ``.npy``, ``.npz`` or ``.safetensors`` file,
    or of a module of an activation store folder (``key`` names the module).

    Nothing is unpickled (``allow_pickle=False``).

    Parameters
    ----------
    path : str or path-like
    key : str, optional
        The array (``.npz`` / ``.safetensors``) or module (store) to read
        when the file holds several.

    Returns
    -------
    ndarray of shape (n_samples, n_features)

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from sparsecode.cli.arrays import read_array
    >>> path = tempfile.mkdtemp() + "/x.npy"
    >>> np.save(path, np.ones((3, 2), np.float32))
    >>> read_array(path).shape
    (3, 2)
    """
    path = Path(path)
    if path.is_dir():
        from ..data.store import ActivationStore

        store = ActivationStore(path)
        return np.asarray(store.load(key or store.modules[0]))
    if not path.is_file():
        raise FileNotFoundError(f"No input file at {path}.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            X = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                X = _one({k: data[k] for k in data.files}, key, path)
        elif suffix == ".safetensors":
            X = _one({k: v.float().numpy() for k, v in read_tensors(path).items()},
                     key, path)
        else:
            raise ValueError(f"{path}: unsupported format {suffix or '(none)'!r}; "
                             "expected .npy, .npz, .safetensors or a store folder.")
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as err:
        if str(path) in str(err):  # already says which file and why
            raise
        raise ValueError(f"{path} cannot be read as {suffix}: {err}") from None
    if X.ndim != 2 or X.dtype.kind not in "biuf":
        raise ValueError(f"{path} holds an array of shape {X.shape} and dtype "
                         f"{X.dtype}; expected a 2-D numeric array.")
    return X


def write_codes(path: str | os.PathLike, codes: np.ndarray) -> Path:
    """Write codes atomically: ``.npy`` dense, ``.npz`` as a scipy sparse matrix.

    Parameters
    ----------
    path : str or path-like
        Ends in ``.npy`` or ``.npz``.
    codes : ndarray of shape (n_samples, n_components)

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile, numpy as np, scipy.sparse as sp
    >>> from sparsecode.cli.arrays import write_codes
    >>> path = write_codes(tempfile.mkdtemp() + "/c.npz", np.eye(3))
    >>> sp.load_npz(path).nnz
    3
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(f"--out {path}: expected a .npy (dense) or .npz (sparse) "
                         "file name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    codes = np.asarray(codes)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            if suffix == ".npy":
                np.save(fh, codes)
            else:
                import scipy.sparse as sp

                sp.save_npz(fh, sp.csr_matrix(codes))

    atomic_write(path, write)
    return path
