"""`VolumePatchFeatures`: SAE codes of 3-D patches of volumes, pooled over blocks."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ..data.mri import volume_patches

__all__ = ["VolumePatchFeatures"]


class VolumePatchFeatures(TransformerMixin, BaseEstimator):
    """Volumes -> SAE codes of their 3-D patches, pooled over a block grid.

    Glue on public pieces: `volume_patches` at the ``mask`` voxels, a TopK
    `sparsecode.SparseAutoencoder` fitted on (a sample of) the training
    volumes' patches, and mean or max pooling of the codes over
    ``n_blocks ** 3`` blocks of the volume (empty blocks dropped).

    ``X`` holds volumes ``(n, d, h, w)``, or rows of flattened (C order)
    volumes ``(n, d * h * w)`` of the mask's shape (of shape ``(1, 1,
    n_features)`` without a mask).

    Parameters
    ----------
    mask : ndarray of bool, shape (d, h, w), default=None
        Patch centres (every voxel when None).
    patch_size : int, default=3
    n_components, k : int, default=32, 4
        SAE latents and active latents per patch (``k`` at most
        ``n_components``).
    n_blocks : int, default=4
        Blocks per axis of the pooling grid.
    pooling : {"mean", "max"}, default="mean"
    max_patches : int, default=50_000
        Training patches sampled for the SAE.
    max_iter : int, default=10
    random_state : int, default=0
    device : str, default="auto"

    Attributes
    ----------
    sae_ : SparseAutoencoder
    n_iter_ : int
        The SAE's passes.
    n_features_in_ : int

    Examples
    --------
    >>> from sparsecode.data.mri import make_cohort
    >>> from sparsecode.data.mri import brain_mask
    >>> from sparsecode.features import VolumePatchFeatures
    >>> X, y = make_cohort(4, resolution=8, random_state=0)
    >>> t = VolumePatchFeatures(brain_mask(8), n_components=8, k=2, max_iter=1,
    ...                         device="cpu").fit(X)
    >>> t.transform(X).shape[0], t.transform(X).shape[1] % 8
    (4, 0)
    """

    def __init__(self, mask=None, patch_size=3, n_components=32, k=4, n_blocks=4,
                 pooling="mean", max_patches=50_000, max_iter=10, random_state=0,
                 device="auto"):
        self.mask = mask
        self.patch_size = patch_size
        self.n_components = n_components
        self.k = k
        self.n_blocks = n_blocks
        self.pooling = pooling
        self.max_patches = max_patches
        self.max_iter = max_iter
        self.random_state = random_state
        self.device = device

    def _blocks(self, mask: np.ndarray):
        """Order of the mask voxels grouped by block, and each group's start."""
        for name in ("n_blocks", "max_patches"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, Integral) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}.")
        idx = np.nonzero(mask)
        cell = [i * self.n_blocks // s for i, s in zip(idx, mask.shape, strict=True)]
        block = np.ravel_multi_index(cell, (int(self.n_blocks),) * 3)
        order = np.argsort(block, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(block[order]) != 0])
        return order, starts

    def _volumes(self, X, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        """X as float32 volumes (n, d, h, w) and the boolean mask."""
        if (X.ndim if hasattr(X, "ndim") else np.asarray(X).ndim) == 4:
            vols = check_array(np.asarray(X).reshape(len(X), -1), dtype=np.float32)
            vols = vols.reshape(np.shape(X))
            if reset:
                self.n_features_in_ = int(np.prod(vols.shape[1:]))
            elif vols[0].size != self.n_features_in_:
                raise ValueError(f"X has volumes of shape {vols.shape[1:]}, but "
                                 "VolumePatchFeatures was fitted on volumes of "
                                 f"{self.n_features_in_} voxels (the mask's grid).")
        else:
            rows = validate_data(self, X, reset=reset, dtype=np.float32)
            shape = (1, 1, rows.shape[1]) if self.mask is None else np.shape(self.mask)
            if rows.shape[1] != np.prod(shape):
                raise ValueError(f"X has {rows.shape[1]} features, but the mask "
                                 f"{shape} has {int(np.prod(shape))} voxels.")
            vols = rows.reshape((len(rows), *shape))
        mask = (np.ones(vols.shape[1:], bool) if self.mask is None
                else np.asarray(self.mask))
        return vols, mask

    def fit(self, X, y=None):
        """Fit the SAE on patches of the volumes ``X``.

        Parameters
        ----------
        X : array-like of shape (n, d, h, w) or (n, d * h * w)
        y : None
            Ignored.

        Returns
        -------
        self
        """
        from ..sae import SparseAutoencoder

        if self.pooling not in ("mean", "max"):
            raise ValueError(f"pooling must be 'mean' or 'max', got {self.pooling!r}.")
        vols, mask = self._volumes(X, reset=True)
        P = volume_patches(vols, self.patch_size, mask)
        self.order_, self.starts_ = self._blocks(mask)
        P = P.reshape(-1, P.shape[-1])
        rng = np.random.default_rng(self.random_state)
        if len(P) > self.max_patches:
            P = P[rng.choice(len(P), self.max_patches, replace=False)]
        self.sae_ = SparseAutoencoder(
            self.n_components, activation="topk", k=min(self.k, self.n_components),
            max_iter=self.max_iter, batch_size=512, random_state=self.random_state,
            device=self.device).fit(P)
        self.n_iter_ = self.sae_.n_iter_
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # the SAE's dtype
        return tags

    def transform(self, X) -> np.ndarray:
        """Pooled codes, shape (n, n_nonempty_blocks * n_components).

        Parameters
        ----------
        X : array-like of shape (n, d, h, w) or (n, d * h * w)

        Returns
        -------
        ndarray of float32
        """
        check_is_fitted(self, "sae_")
        X, mask = self._volumes(X, reset=False)
        reduce = np.add if self.pooling == "mean" else np.maximum
        out = []
        for lo in range(0, len(X), 16):  # bounded memory: 16 volumes at a time
            P = volume_patches(X[lo:lo + 16], self.patch_size, mask)
            n, m, f = P.shape
            codes = np.asarray(self.sae_.transform(P.reshape(n * m, f)))
            codes = codes.reshape(n, m, -1)[:, self.order_]
            pooled = reduce.reduceat(codes, self.starts_, axis=1)
            if self.pooling == "mean":
                pooled /= np.diff(np.r_[self.starts_, m])[:, None]
            out.append(pooled.reshape(n, -1))
        return np.concatenate(out)
