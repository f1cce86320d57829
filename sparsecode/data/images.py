"""Patches of images: extraction, sampling and reassembly (loaders re-exported).

Patches come from scikit-learn's ``extract_patches_2d`` and go back through
``reconstruct_from_patches_2d`` (every patch, step 1); strided grids are cut
with numpy's ``sliding_window_view`` and averaged back with ``bincount``.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np

from .image_files import (
    IMAGE_NAMES,
    load_digits_images,
    load_image,
    load_lfw_subset,
    read_image,
)

__all__ = ["IMAGE_NAMES", "PatchGrid", "extract_patches", "load_china_patches",
           "load_digits_images", "load_image", "load_lfw_subset", "read_image",
           "sample_patches"]


def _check_image(image) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype.kind not in "biuf":
        raise TypeError(f"image must hold numbers, got dtype {img.dtype}.")
    if img.ndim not in (2, 3):
        raise ValueError("image must have shape (h, w) or (h, w, channels), got "
                         f"{img.shape}.")
    img = img.astype(np.float64)
    if not np.isfinite(img).all():
        raise ValueError("image holds NaN or infinite pixels.")
    return img


def _check_patch_size(patch_size, shape: tuple[int, ...]) -> tuple[int, int]:
    size = (patch_size, patch_size) if isinstance(patch_size, Integral) else patch_size
    size = tuple(size)
    if (len(size) != 2 or not all(isinstance(s, Integral) and not isinstance(s, bool)
                                  for s in size) or min(size) < 1):
        raise ValueError("patch_size must be a positive int or a pair of them, got "
                         f"{patch_size!r}.")
    if size[0] > shape[0] or size[1] > shape[1]:
        raise ValueError(f"patch_size {size} is larger than the image {shape[:2]}.")
    return int(size[0]), int(size[1])


def _positions(n: int, p: int, step: int) -> np.ndarray:
    """Top-left offsets along one axis: every ``step``, the last one flush."""
    pos = np.arange(0, n - p + 1, step)
    return pos if pos[-1] == n - p else np.append(pos, n - p)


@dataclass(frozen=True, eq=False)
class PatchGrid:
    """Where each row of a patch matrix came from, and how it was normalised.

    Returned by `extract_patches`; `reconstruct` undoes the normalisation
    and averages overlapping patches back into an image.

    Attributes
    ----------
    image_shape : tuple of int
    patch_size : (int, int)
    step : int
    rows, cols : ndarray of int
        Top-left offsets of the patches along each axis (row-major order).
    mean, scale : ndarray of shape (n_patches, 1) or None
        Per-patch mean removed and scale divided, if any.
    """

    image_shape: tuple[int, ...]
    patch_size: tuple[int, int]
    step: int
    rows: np.ndarray
    cols: np.ndarray
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    @property
    def n_patches(self) -> int:
        """Number of patches on the grid."""
        return len(self.rows) * len(self.cols)

    @property
    def n_features(self) -> int:
        """Values per patch (``h * w * channels``)."""
        channels = self.image_shape[2] if len(self.image_shape) == 3 else 1
        return self.patch_size[0] * self.patch_size[1] * channels

    def reconstruct(self, X) -> np.ndarray:
        """The image from (possibly recoded) patches, normalisation undone.

        Parameters
        ----------
        X : array-like of shape (n_patches, n_features)

        Returns
        -------
        ndarray of shape ``image_shape``
            Each pixel is the mean of the patches that cover it.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.shape != (self.n_patches, self.n_features):
            expected = (self.n_patches, self.n_features)
            raise ValueError(f"Expected patches of shape {expected} for this grid, "
                             f"got {X.shape}.")
        if self.scale is not None:
            X = X * self.scale
        if self.mean is not None:
            X = X + self.mean
        window = self.patch_size + tuple(self.image_shape[2:])
        if self.step == 1:
            from sklearn.feature_extraction.image import reconstruct_from_patches_2d

            return reconstruct_from_patches_2d(X.reshape(-1, *window), self.image_shape)
        index = _grid_index(self)
        size = int(np.prod(self.image_shape))
        total = np.bincount(index.ravel(), weights=X.ravel(), minlength=size)
        count = np.bincount(index.ravel(), minlength=size)
        return (total / count).reshape(self.image_shape)


def _grid_index(grid: PatchGrid) -> np.ndarray:
    """Flat pixel index of every patch value, shape (n_patches, n_features)."""
    h, w = grid.patch_size
    width = grid.image_shape[1]
    channels = grid.image_shape[2] if len(grid.image_shape) == 3 else 1
    top = (grid.rows[:, None] + np.arange(h))  # (n_rows, h)
    left = (grid.cols[:, None] + np.arange(w))  # (n_cols, w)
    pix = top[:, None, :, None] * width + left[None, :, None, :]  # (nr, nc, h, w)
    flat = pix[..., None] * channels + np.arange(channels)
    return flat.reshape(grid.n_patches, -1)


def _normalise(P: np.ndarray, center: bool, normalize: bool, eps: float):
    mean = P.mean(axis=1, keepdims=True) if center else None
    if center:
        P = P - mean
    scale = None
    if normalize:
        scale = np.maximum(P.std(axis=1, keepdims=True), eps)
        P = P / scale
    return P, mean, scale


def extract_patches(image, patch_size=8, *, step: int = 1, center: bool = True,
                    normalize: bool = False,
                    eps: float = 1e-8) -> tuple[np.ndarray, PatchGrid]:
    """Every patch of an image on a grid, as rows, with what undoes it.

    Parameters
    ----------
    image : array-like of shape (h, w) or (h, w, channels)
    patch_size : int or (int, int), default=8
    step : int, default=1
        Offset between neighbouring patches, at most the patch size; the last row and
        column of patches sit flush with the image's edge so every pixel is covered.
    center : bool, default=True
        Remove each patch's mean.
    normalize : bool, default=False
        Divide each (centred) patch by its standard deviation (at least ``eps``).
    eps : float, default=1e-8

    Returns
    -------
    X : ndarray of shape (n_patches, h * w * channels)
    grid : PatchGrid
        ``grid.reconstruct(X)`` gives the image back.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode.data.images import extract_patches, load_image
    >>> img = load_image("camera")
    >>> X, grid = extract_patches(img, 8, step=4)
    >>> X.shape
    (16129, 64)
    >>> bool(np.allclose(grid.reconstruct(X), img))
    True
    """
    img = _check_image(image)
    size = _check_patch_size(patch_size, img.shape)
    if not isinstance(step, Integral) or isinstance(step, bool) or step < 1:
        raise ValueError(f"step must be a positive int, got {step!r}.")
    if step > min(size):
        raise ValueError(f"step {step} is larger than the patch size {size}: pixels "
                         "between patches would be left out.")
    rows = _positions(img.shape[0], size[0], int(step))
    cols = _positions(img.shape[1], size[1], int(step))
    if step == 1:
        from sklearn.feature_extraction.image import extract_patches_2d

        P = extract_patches_2d(img, size)
    else:
        window = size + img.shape[2:]
        view = np.lib.stride_tricks.sliding_window_view(img, window)
        P = view[rows][:, cols]
    P = P.reshape(len(rows) * len(cols), -1)
    P, mean, scale = _normalise(P, center, normalize, eps)
    return P, PatchGrid(img.shape, size, int(step), rows, cols, mean, scale)


def sample_patches(image, patch_size=8, n_patches: int = 10_000, *,
                   center: bool = True, normalize: bool = False, eps: float = 1e-8,
                   random_state=None) -> np.ndarray:
    """Random patches for training (``extract_patches_2d(max_patches=...)``).

    Parameters
    ----------
    image : array-like of shape (h, w) or (h, w, channels)
    patch_size : int or (int, int), default=8
    n_patches : int, default=10000
    center, normalize, eps
        As in `extract_patches`.
    random_state : int, RandomState instance or None

    Returns
    -------
    ndarray of shape (n_patches, h * w * channels)

    Examples
    --------
    >>> from sparsecode.data.images import load_image, sample_patches
    >>> sample_patches(load_image("coins"), 6, 500, random_state=0).shape
    (500, 36)
    """
    from sklearn.feature_extraction.image import extract_patches_2d

    img = _check_image(image)
    size = _check_patch_size(patch_size, img.shape)
    if (not isinstance(n_patches, Integral) or isinstance(n_patches, bool)
            or n_patches < 1):
        raise ValueError(f"n_patches must be a positive int, got {n_patches!r}.")
    P = extract_patches_2d(img, size, max_patches=int(n_patches),
                           random_state=random_state)
    return _normalise(P.reshape(len(P), -1), center, normalize, eps)[0]


def load_china_patches(
    n_patches: int = 20_000, patch_size: int = 8, random_state: int = 0
) -> np.ndarray:
    """Centred, standardised grey patches of scikit-learn's bundled ``china.jpg``.

    Each pixel position is centred and scaled over the patches (the column
    statistics), the preprocessing of scikit-learn's dictionary examples.

    Examples
    --------
    >>> from sparsecode.data.images import load_china_patches
    >>> load_china_patches(1000).shape
    (1000, 64)
    """
    from sklearn.datasets import load_sample_image
    from sklearn.feature_extraction.image import extract_patches_2d

    img = load_sample_image("china.jpg").mean(axis=2) / 255.0
    P = extract_patches_2d(img, (patch_size, patch_size), max_patches=n_patches,
                           random_state=random_state)
    P = P.reshape(len(P), -1)
    P -= P.mean(axis=0)
    P /= P.std(axis=0)
    return P.astype(np.float32)
