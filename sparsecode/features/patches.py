"""`PatchFeatures`: pooled codes of image patches, as features for a classifier.

The single-layer feature pipeline of Coates, Lee & Ng (2011) and of the
convolutional (denoising) autoencoders of Chen et al. (2017): learn an encoder
on random patches, encode every patch of an image on a grid, and pool the
codes over ``grid x grid`` regions of the image. The encoder is any
scikit-learn transformer of patch rows (a `sparsecode.SparseAutoencoder`, a
`sparsecode.MiniBatchDictionaryLearning`, a PCA ...).
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_array,
    check_is_fitted,
    validate_data,
)

from ..sae import SparseAutoencoder
from ..sae.conv import image_shape_of

__all__ = ["PatchFeatures"]

_REDUCE = {"max": np.max, "mean": np.mean, "sum": np.sum}


def _bins(n: int, g: int) -> list[tuple[int, int]]:
    """Adaptive-pooling bins of ``n`` positions into ``g`` regions:
    ``[floor(i n / g), ceil((i + 1) n / g))`` (as torch's adaptive pooling;
    regions overlap or repeat when ``n`` is not a multiple of ``g``)."""
    return [(i * n // g, -(-(i + 1) * n // g)) for i in range(g)]


def _positions(n: int, p: int, step: int) -> np.ndarray:
    return np.arange(0, n - p + 1, step)


class PatchFeatures(TransformerMixin, BaseEstimator):
    """Encode every patch of each image, then pool the codes over regions.

    ``fit`` samples ``n_patches`` random ``patch_size`` patches from the
    training images (each centred when ``center``) and fits a clone of
    ``encoder`` on them. ``transform`` cuts every patch of each image on a
    grid of top-left offsets ``0, step, 2 step, ...``, encodes all patches of
    all images in one call to ``encoder_.transform``, and pools the codes of
    each of ``grid x grid`` regions of that grid of positions (``pooling``:
    max, mean or sum); region ``i`` along an axis of ``n`` positions holds
    positions ``floor(i n / grid)`` to ``ceil((i + 1) n / grid) - 1``, as
    torch's adaptive pooling (regions repeat when ``n < grid``). The patch
    matrix of a ``transform`` holds ``n * n_positions * ph * pw * c`` values
    (transform large sets in chunks of rows).

    Input. ``X`` of shape (n, h, w) (grey images), (n, h, w, c) (channels
    last) or (n_samples, n_features) rows read as images of ``image_shape``
    (see `sparsecode.sae.conv.image_shape_of`: None reads square grey images
    when n_features is a perfect square, else one-row images). Images at
    ``transform`` must have the shape of those at ``fit``.

    Parameters
    ----------
    encoder : estimator, default=None
        A transformer with ``fit`` and ``transform`` of patch rows of
        ``ph * pw * c`` values; cloned in ``fit``. None uses
        ``SparseAutoencoder(64, k=8)`` (TopK, about 2000 Adam steps).
    patch_size : int or (int, int), default=5
        Side (or (height, width)) of the patches.
    step : int, default=1
        Offset between neighbouring patches at ``transform``.
    n_patches : int, default=10_000
        Random patches sampled for ``fit`` (all of them when there are
        fewer).
    pooling : {"max", "mean", "sum"}, default="max"
    grid : int, default=2
        Pooling regions per side; the output has ``grid**2 * n_codes_``
        columns, region-major (row of regions, column of regions, code).
    image_shape : tuple, default=None
        (h, w) or (h, w, c) of rows of 2-D ``X``.
    center : bool, default=True
        Remove each patch's mean (over its pixels and channels) before
        encoding, in ``fit`` and ``transform``.
    random_state : int, RandomState instance or None, default=None
        Seeds the sampled patches and the default encoder; also seeds the
        given encoder when its own ``random_state`` is None.

    Attributes
    ----------
    encoder_ : estimator
        The fitted clone of ``encoder``.
    image_shape_ : tuple (h, w, c)
    patch_size_ : tuple (ph, pw)
    n_codes_ : int
        Columns of ``encoder_.transform`` (codes per patch).
    n_features_in_ : int
        ``h * w * c``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when X had string column names.

    See Also
    --------
    sparsecode.SparseAutoencoder : the default encoder (``input_noise`` makes
        it a denoising one).
    sparsecode.sae.conv.ConvSparseAutoencoder : a convolutional SAE trained
        on whole images.

    References
    ----------
    A. Coates, H. Lee and A. Y. Ng, "An analysis of single-layer networks in
    unsupervised feature learning", AISTATS 2011.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from sparsecode.features import PatchFeatures
    >>> X = np.random.default_rng(0).random((20, 8, 8))
    >>> pf = PatchFeatures(PCA(4), patch_size=3, grid=2, random_state=0).fit(X)
    >>> pf.transform(X).shape
    (20, 16)
    >>> str(pf.get_feature_names_out()[5])
    'patchfeatures_r0_c1_pca1'
    """

    _parameter_constraints: dict = {
        "encoder": [HasMethods(["fit", "transform"]), None],
        "patch_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "step": [Interval(Integral, 1, None, closed="left")],
        "n_patches": [Interval(Integral, 1, None, closed="left")],
        "pooling": [StrOptions(set(_REDUCE))],
        "grid": [Interval(Integral, 1, None, closed="left")],
        "image_shape": [tuple, list, None],
        "center": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(self, encoder=None, *, patch_size=5, step=1, n_patches=10_000,
                 pooling="max", grid=2, image_shape=None, center=True,
                 random_state=None):
        self.encoder, self.patch_size, self.step = encoder, patch_size, step
        self.n_patches, self.pooling, self.grid = n_patches, pooling, grid
        self.image_shape, self.center = image_shape, center
        self.random_state = random_state

    # ---------------------------------------------------------------- input
    def _images(self, X: Any, *, reset: bool) -> np.ndarray:
        """``X`` as a float (n, h, w, c) array; sets the input attributes
        when ``reset``."""
        ndim = getattr(X, "ndim", None)
        if ndim is None:
            try:
                ndim = np.asarray(X).ndim
            except (ValueError, TypeError):
                ndim = 2
        if ndim in (3, 4):
            return self._nd_images(X, ndim, reset=reset)
        if ndim > 4:
            raise ValueError(f"X must have 2, 3 or 4 dimensions, got {ndim}.")
        rows = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
        if reset:
            self.image_shape_ = image_shape_of(rows.shape[1], self.image_shape)
        return rows.reshape(len(rows), *self.image_shape_)

    def _nd_images(self, X: Any, ndim: int, *, reset: bool) -> np.ndarray:
        if hasattr(X, "toarray"):
            raise TypeError("PatchFeatures does not accept scipy sparse input; "
                            "pass a dense array.")
        a = check_array(X, dtype=[np.float64, np.float32], allow_nd=True)
        a = a[..., None] if ndim == 3 else a
        shape = tuple(a.shape[1:])
        if reset:
            if self.image_shape is not None and image_shape_of(
                    int(np.prod(shape)), self.image_shape) != shape:
                raise ValueError(f"image_shape={tuple(self.image_shape)} does not "
                                 f"match the images of X, of shape {shape}.")
            self.image_shape_, self.n_features_in_ = shape, int(np.prod(shape))
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif shape != tuple(self.image_shape_):
            raise ValueError(f"X holds images of shape {shape}, but PatchFeatures "
                             f"was fitted on images of shape {self.image_shape_}.")
        return a

    def _check_patch_size(self) -> tuple[int, int]:
        size = self.patch_size
        size = (size, size) if isinstance(size, Integral) else tuple(size)
        if (len(size) != 2 or min(size) < 1 or not all(
                isinstance(s, Integral) and not isinstance(s, bool) for s in size)):
            raise ValueError("patch_size must be a positive int or a pair of them, "
                             f"got {self.patch_size!r}.")
        h, w, _ = self.image_shape_
        if size[0] > h or size[1] > w:
            raise ValueError(
                f"patch_size {size} is larger than the images ({h}, {w}) of X "
                f"(n_features={self.n_features_in_}); pass a smaller patch_size "
                "or the image_shape of the rows.")
        return int(size[0]), int(size[1])

    # ------------------------------------------------------------- patches
    def _windows(self, images: np.ndarray) -> np.ndarray:
        """View of shape (n, nr, nc, ph, pw, c) of every patch at step 1."""
        view = np.lib.stride_tricks.sliding_window_view(
            images, self.patch_size_, axis=(1, 2))  # (n, nr, nc, c, ph, pw)
        return view.transpose(0, 1, 2, 4, 5, 3)

    def _rows(self, patches: np.ndarray) -> np.ndarray:
        """Patches (..., ph, pw, c) as centred (or not) C-ordered rows."""
        rows = patches.reshape(-1, int(np.prod(patches.shape[-3:])))
        if self.center:
            rows = rows - rows.mean(axis=1, keepdims=True)
        return np.ascontiguousarray(rows)

    def _sample(self, images: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
        view = self._windows(images)
        n, nr, nc = view.shape[:3]
        total = n * nr * nc
        pick = (np.arange(total) if total <= self.n_patches
                else rng.choice(total, self.n_patches, replace=False))
        i, r, c = np.unravel_index(pick, (n, nr, nc))
        return self._rows(view[i, r, c])

    def _make_encoder(self, rng: np.random.RandomState):
        seed = int(rng.randint(np.iinfo(np.int32).max))
        if self.encoder is None:
            return SparseAutoencoder(64, k=8, random_state=seed)
        encoder = clone(self.encoder)
        params = encoder.get_params(deep=False)
        if "random_state" in params and params["random_state"] is None:
            encoder.set_params(random_state=seed)
        return encoder

    # ----------------------------------------------------------------- API
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: Any, y: Any = None) -> PatchFeatures:
        """Fit a clone of ``encoder`` on random patches of the images of X.

        Parameters
        ----------
        X : array-like of shape (n, n_features), (n, h, w) or (n, h, w, c)
        y : None
            Ignored.

        Returns
        -------
        self
        """
        images = self._images(X, reset=True)
        self.patch_size_ = self._check_patch_size()
        rng = check_random_state(self.random_state)
        patches = self._sample(images, rng)
        self.encoder_ = self._make_encoder(rng).fit(patches)
        self.n_codes_ = int(self._encode(patches[:1]).shape[1])
        return self

    def _encode(self, rows: np.ndarray) -> np.ndarray:
        codes = self.encoder_.transform(rows)
        codes = codes.toarray() if hasattr(codes, "toarray") else np.asarray(codes)
        if codes.ndim != 2 or len(codes) != len(rows):
            raise ValueError(f"encoder.transform returned shape {codes.shape} for "
                             f"{len(rows)} patches; expected (n_patches, n_codes).")
        return codes

    def transform(self, X: Any) -> np.ndarray:
        """Pooled codes of every patch of each image.

        Parameters
        ----------
        X : array-like of shape (n, n_features), (n, h, w) or (n, h, w, c)

        Returns
        -------
        ndarray of shape (n, grid * grid * n_codes_)
            Region-major: the codes pooled over region (0, 0), then (0, 1) ...
        """
        check_is_fitted(self, "encoder_")
        images = self._images(X, reset=False)
        view = self._windows(images)
        ph, pw = self.patch_size_
        h, w, _ = self.image_shape_
        rows_at = _positions(h, ph, self.step)
        cols_at = _positions(w, pw, self.step)
        patches = view[:, rows_at][:, :, cols_at]
        n, nr, nc = patches.shape[:3]
        codes = self._encode(self._rows(patches)).reshape(n, nr, nc, -1)
        reduce = _REDUCE[self.pooling]
        out = np.stack([reduce(codes[:, a:b, c:d], axis=(1, 2))
                        for a, b in _bins(nr, self.grid)
                        for c, d in _bins(nc, self.grid)], axis=1)
        dtype = images.dtype if images.dtype == np.float32 else np.float64
        return out.reshape(n, -1).astype(dtype, copy=False)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``patchfeatures_r{i}_c{j}_{code}`` for region (i, j) and each code
        name of the encoder (its ``get_feature_names_out`` when it has one,
        else ``code0``, ``code1`` ...).

        Parameters
        ----------
        input_features : array-like of str, optional
            Checked against ``feature_names_in_`` (they do not enter the
            names: every output mixes all pixels of a region).

        Returns
        -------
        ndarray of str of shape (grid * grid * n_codes_,)
        """
        check_is_fitted(self, "encoder_")
        _check_feature_names_in(self, input_features, generate_names=False)
        try:
            codes = [str(c) for c in self.encoder_.get_feature_names_out()]
        except (AttributeError, TypeError, ValueError):
            codes = []
        if len(codes) != self.n_codes_:
            codes = [f"code{k}" for k in range(self.n_codes_)]
        g = self.grid
        return np.asarray([f"patchfeatures_r{i}_c{j}_{c}" for i in range(g)
                           for j in range(g) for c in codes], dtype=object)
