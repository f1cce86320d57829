"""Streaming per-latent statistics of codes aligned with an activation store.

The computational half of `sparsecode.inspection` (see its docstring for how
codes are given): one pass over the codes keeps the active counts, a running top-n
per latent and a log2 histogram of the activations.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from ..data.store import ActivationStore, to_numpy
from ..metrics import feature_density as _metrics_density
from ._html import LOG2_EDGES

__all__ = ["FeatureStats", "feature_stats"]


# ----------------------------------------------------------------- code source
def _source(codes: Any) -> Any:
    """An encoding function, or the codes as a tensor, scipy sparse or numpy array.

    Arrays are never callable, so ``callable(_source(codes))`` tells them apart.
    """
    if isinstance(codes, torch.Tensor) or hasattr(codes, "tocsr"):
        return codes
    if not hasattr(codes, "__array__"):  # (pandas frames have a .transform too)
        if hasattr(codes, "transform"):
            return codes.transform
        if callable(codes):
            return codes
    return np.asarray(codes)


def _as_tensor(block: Any) -> torch.Tensor:
    """A 2-D floating CPU tensor from a block of codes."""
    if hasattr(block, "toarray"):  # scipy sparse
        block = block.toarray()
    if not isinstance(block, torch.Tensor):
        array = np.asarray(block)  # copy read-only blocks (memmap, pandas)
        block = torch.as_tensor(array if array.flags.writeable else array.copy())
    if block.dim() != 2:
        raise ValueError(f"codes must be 2-D, got shape {tuple(block.shape)}.")
    if not block.is_floating_point() or block.element_size() < 4:
        block = block.float()
    return block.detach().cpu()


def _module(store: ActivationStore, module: str | None) -> str:
    if module is not None:
        return module
    if len(store.modules) != 1:
        raise ValueError(f"the store holds {store.modules}; pass module=.")
    return store.modules[0]


def _code_batches(
    codes: Any, store: ActivationStore, module: str | None, batch_size: int
) -> Iterator[torch.Tensor]:
    """Blocks of codes in store row order (encoded on the fly for an encoder)."""
    if not callable(codes):
        shape = tuple(codes.shape)
        if len(shape) != 2 or shape[0] != store.n_tokens:
            raise ValueError(
                f"codes of shape {shape} do not match the store's "
                f"{store.n_tokens} token rows."
            )
        for start in range(0, shape[0], batch_size):
            yield _as_tensor(codes[start : start + batch_size])
        return
    batches = store.iter_batches(_module(store, module), batch_size, shuffle=False)
    for x in batches:
        block = _as_tensor(codes(x))
        if len(block) != len(x):
            raise ValueError(f"the encoder returned {len(block)} rows for {len(x)}.")
        yield block


def _gather(store: ActivationStore, key: str, rows: np.ndarray) -> torch.Tensor:
    """Rows `rows` (sorted, unique) of `key`, read shard by shard."""
    bounds = np.cumsum([0, *store.shard_sizes])
    shard = np.searchsorted(bounds, rows, side="right") - 1
    parts = []
    for s in np.unique(shard):
        local = rows[shard == s] - bounds[s]
        block = store.read(int(s), key, int(local[0]), int(local[-1]) + 1)
        parts.append(block[torch.as_tensor(local - local[0])])
    return torch.cat(parts)


def _codes_at(codes, store, module, rows, latents) -> np.ndarray:
    """Codes of `latents` at store rows `rows` (sorted, unique): (rows, latents)."""
    if callable(codes):
        block = _as_tensor(
            codes(to_numpy(_gather(store, _module(store, module), rows)))
        )
    else:
        index = torch.as_tensor(rows) if isinstance(codes, torch.Tensor) else rows
        block = _as_tensor(codes[index])
    return block[:, torch.as_tensor(latents)].double().numpy()


# ------------------------------------------------------------------ statistics
def _active_counts(block: torch.Tensor) -> np.ndarray:
    """Nonzero count of each latent of a block (via the metrics' density)."""
    return np.rint(_metrics_density(block) * len(block))


@dataclass
class FeatureStats:
    """Per-latent statistics gathered in one pass over the codes.

    Attributes
    ----------
    n_tokens : int
    latents : numpy.ndarray of shape (n,)
        Latent indices described by the rows of the other arrays.
    density : numpy.ndarray of shape (n,)
        Fraction of tokens where the latent is nonzero.
    max_activation : numpy.ndarray of shape (n,)
    top_values, top_rows : numpy.ndarray of shape (n, n_top)
        Largest positive activations and their store rows, by decreasing
        activation; padded with ``-inf`` / ``-1``.
    hist : numpy.ndarray of shape (n, len(LOG2_EDGES) + 1)
        Counts of log2 |activation| of the active tokens (bins: LOG2_EDGES).
    """

    n_tokens: int
    latents: np.ndarray
    density: np.ndarray
    max_activation: np.ndarray
    top_values: np.ndarray
    top_rows: np.ndarray
    hist: np.ndarray

    def select(self, index: np.ndarray) -> FeatureStats:
        """The statistics of the latents at positions `index` of this object."""
        per_latent = [f.name for f in fields(self) if f.name != "n_tokens"]
        picked = {name: getattr(self, name)[index] for name in per_latent}
        return FeatureStats(n_tokens=self.n_tokens, **picked)


class _Accumulator:
    """Running counts, maxima, top-n and histograms over blocks of codes."""

    def __init__(self, n_latents: int, n_top: int, dtype: torch.dtype) -> None:
        self.n_top, self.dtype, self.n_rows = n_top, dtype, 0
        self.counts = np.zeros(n_latents)
        self.max = torch.full((n_latents,), -torch.inf, dtype=dtype)
        self.values = torch.full((n_latents, n_top), -torch.inf, dtype=dtype)
        self.rows = torch.full((n_latents, n_top), -1, dtype=torch.long)
        self.hist = torch.zeros((n_latents, len(LOG2_EDGES) + 1), dtype=torch.long)
        self._edges = torch.as_tensor(LOG2_EDGES)

    def update(self, block: torch.Tensor) -> None:
        block = block.to(self.dtype)
        self.counts += _active_counts(block)
        self.max = torch.maximum(self.max, block.amax(dim=0))
        active = torch.where(block > 0, block, -torch.inf)
        k = min(self.n_top, len(block))
        v_kF, i_kF = active.topk(k, dim=0)
        values = torch.cat([self.values, v_kF.T], dim=1)
        rows = torch.cat([self.rows, i_kF.T + self.n_rows], dim=1)
        self.values, pos = values.topk(self.n_top, dim=1)
        self.rows = rows.gather(1, pos)
        tok, lat = torch.nonzero(block, as_tuple=True)
        bins = torch.bucketize(block[tok, lat].abs().double().log2(), self._edges)
        flat = lat * self.hist.shape[1] + bins
        self.hist.view(-1).index_add_(0, flat, torch.ones_like(flat))
        self.n_rows += len(block)

    def finish(self, latents: np.ndarray) -> FeatureStats:
        values, rows = self.values.double().numpy(), self.rows.numpy()
        rows = np.where(np.isfinite(values), rows, -1)
        order = np.lexsort((np.where(rows < 0, np.inf, rows), -values), axis=-1)
        return FeatureStats(
            n_tokens=self.n_rows,
            latents=latents,
            density=self.counts / max(self.n_rows, 1),
            max_activation=self.max.double().numpy(),
            top_values=np.take_along_axis(values, order, axis=1),
            top_rows=np.take_along_axis(rows, order, axis=1),
            hist=self.hist.numpy(),
        )


def feature_stats(
    codes: Any,
    store: ActivationStore,
    *,
    n: int = 10,
    latents: Sequence[int] | None = None,
    module: str | None = None,
    batch_size: int = 1024,
) -> FeatureStats:
    """Density, max, top-`n` rows and activation histogram of every latent.

    Parameters
    ----------
    codes : array-like of shape (n_tokens, n_latents), or encoder
        See the module docstring.
    store : ActivationStore
    n : int, default=10
        Top-activating rows kept per latent.
    latents : sequence of int, optional
        Restrict to these latents (default: all).
    module : str, optional
        Stored module to encode; needed only if the store holds several.
    batch_size : int, default=1024
        Rows processed at a time (memory is ``O(batch_size * n_latents)``).

    Returns
    -------
    FeatureStats
    """
    if int(n) < 1 or int(batch_size) < 1:
        raise ValueError("n and batch_size must be >= 1.")
    codes = _source(codes)
    cols = None if latents is None else np.atleast_1d(np.asarray(latents, int))
    acc = None
    for block in _code_batches(codes, store, module, int(batch_size)):
        if cols is not None:
            if cols.min() < 0 or cols.max() >= block.shape[1]:
                raise ValueError(f"latents {cols} out of range [0, {block.shape[1]}).")
            block = block[:, torch.as_tensor(cols)]
        if acc is None:
            acc = _Accumulator(block.shape[1], int(n), block.dtype)
        acc.update(block)
    if acc is None or acc.n_rows != store.n_tokens:
        raise ValueError("the codes do not cover the store's token rows.")
    return acc.finish(np.arange(acc.counts.size) if cols is None else cols)
