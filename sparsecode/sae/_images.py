"""Images given to `ConvSparseAutoencoder`: their layout and validation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_array

from ..base import check_tensor

__all__ = ["image_shape_of", "nd_tensor"]


def image_shape_of(n_features: int, image_shape: Any = None) -> tuple[int, int, int]:
    """``(h, w, c)`` of the images that rows of ``n_features`` values hold.

    ``image_shape`` (h, w) or (h, w, c) when given (its size must be
    ``n_features``); otherwise square grey images when ``n_features`` is a
    perfect square, else one-row images ``(1, n_features)``.

    Examples
    --------
    >>> from sparsecode.sae.conv import image_shape_of
    >>> image_shape_of(16), image_shape_of(6), image_shape_of(12, (2, 2, 3))
    ((4, 4, 1), (1, 6, 1), (2, 2, 3))
    """
    if image_shape is None:
        side = math.isqrt(n_features)
        return (side, side, 1) if side * side == n_features else (1, n_features, 1)
    shape = tuple(int(s) for s in image_shape)
    shape = shape + (1,) * (3 - len(shape))
    if len(shape) != 3 or math.prod(shape) != n_features:
        raise ValueError(f"image_shape={tuple(image_shape)} does not hold rows of "
                         f"{n_features} features.")
    return shape


def _ndim(X: Any) -> int:
    """Dimensions of an array-like (2 for what numpy cannot read: the
    validation of rows then says what is wrong)."""
    ndim = getattr(X, "ndim", None)
    if isinstance(ndim, int):
        return ndim
    try:
        return np.asarray(X).ndim
    except (ValueError, TypeError):
        return 2


def nd_tensor(X: Any, as_tensor: bool) -> torch.Tensor:
    """A 3-D or 4-D array-like or tensor as a float tensor (not yet checked
    for NaN or range); ``ValueError`` for an empty dimension, ``TypeError``
    for scipy sparse input."""
    if as_tensor:
        t = check_tensor(X)
        t = t if t.dtype in (torch.float32, torch.float64) else t.float()
    else:
        if hasattr(X, "toarray"):
            raise TypeError("ConvSparseAutoencoder does not accept scipy "
                            "sparse input; pass a dense array.")
        a = check_array(X, dtype=[np.float64, np.float32], allow_nd=True,
                        ensure_min_features=1, order="C")
        t = torch.as_tensor(a if a.flags.writeable else a.copy())
    if 0 in t.shape:
        raise ValueError(f"X has an empty dimension: shape {tuple(t.shape)}.")
    return t
