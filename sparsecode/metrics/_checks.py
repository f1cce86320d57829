"""Input checks shared by the metrics: array-likes and tensors to float64 numpy."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["as_samples", "check_finite", "pair", "to_numpy"]


def _is_torch_tensor(x: Any) -> bool:
    """Return True if ``x`` is a torch tensor, without importing torch."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def to_numpy(x: Any, name: str) -> np.ndarray:
    """Convert an array-like or torch tensor to a float64 numpy array.

    Parameters
    ----------
    x : array-like or torch.Tensor
        Input values. Torch tensors may live on any device and have any dtype
        (including ``bfloat16``); sparse torch tensors are densified.
    name : str
        Name used in error messages.

    Returns
    -------
    numpy.ndarray
        A float64 array (a copy when a conversion was needed).
    """
    if _is_torch_tensor(x):
        torch = sys.modules["torch"]
        x = x.detach()
        if x.layout != torch.strided:
            x = x.to_dense()
        if x.is_complex():
            raise TypeError(f"{name} must be real-valued, got a complex tensor.")
        x = x.cpu().to(dtype=torch.float64).numpy()
    elif sp.issparse(x):
        raise TypeError(
            f"{name} is a scipy sparse matrix; this metric needs a dense array "
            "(call .toarray() first)."
        )
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} could not be converted to a float array.") from exc


def check_finite(x: np.ndarray, name: str) -> None:
    """Raise ValueError if ``x`` contains NaN or infinity."""
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinity.")


def as_samples(x: Any, name: str) -> np.ndarray:
    """Convert to a finite float64 array of shape (n_samples, n_features).

    Arrays with more than two dimensions, e.g. ``(batch, seq, d_model)``
    activations, are flattened over all leading dimensions.
    """
    arr = to_numpy(x, name)
    if arr.ndim < 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}."
        )
    arr = arr.reshape(-1, arr.shape[-1])
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}).")
    check_finite(arr, name)
    return arr


def pair(X: Any, X_hat: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert data and reconstruction to matching float64 arrays."""
    x_shape, xh_shape = np.shape(X), np.shape(X_hat)
    if tuple(x_shape) != tuple(xh_shape):
        raise ValueError(
            f"X and X_hat must have the same shape, got {tuple(x_shape)} and "
            f"{tuple(xh_shape)}."
        )
    return as_samples(X, "X"), as_samples(X_hat, "X_hat")


# reconstruction
