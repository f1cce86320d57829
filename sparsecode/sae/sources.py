"""Batch sources for the SAE training loop: tensors, memmaps, any iterable.

Every source yields the mini-batches of one pass with
``batches(generator, start=0)``, drawing all its randomness from the given
CPU `torch.Generator`. Restoring the generator state saved at the start of a
pass and calling ``batches(gen, start=i)`` replays that pass from batch ``i``
exactly, which is how checkpoints resume. Under data-parallel training,
``batches(gen, shard=f)`` yields only ``f(batch)`` of each global batch (for
arrays and memmaps ``f`` is applied to the row indices, so only this process's
rows are read); see `sparsecode.sae.distributed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from ..base import torch_dtype

__all__ = [
    "IterableBatches",
    "MemmapBatches",
    "TensorBatches",
    "make_source",
]

_SAMPLE_ROWS = 4096  # rows used to initialise b_pre
_NORM_ROWS = 100_000  # rows used to estimate the input scale


def _spread(n: int, n_max: int) -> np.ndarray:
    """Up to ``n_max`` evenly spaced row indices in ``range(n)``."""
    return np.unique(np.linspace(0, n - 1, min(n, n_max)).round().astype(np.int64))


def _mean_sq_norm(rows: torch.Tensor) -> float:
    """Mean squared norm of the rows, accumulated in float64 (no float64 copy)."""
    norms = torch.linalg.vector_norm(rows, dim=1, dtype=torch.float64)
    return float((norms * norms).mean())


class TensorBatches:
    """Shuffled mini-batches of an in-memory 2-D tensor (new order each pass).

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, n_features)
    batch_size : int
    """

    def __init__(self, X: torch.Tensor, batch_size: int) -> None:
        self.X = X
        self.batch_size = int(batch_size)
        self.n_samples, self.n_features = X.shape

    @property
    def n_batches(self) -> int:
        """Batches per pass."""
        return -(-self.n_samples // self.batch_size)

    def _rows(self, index: np.ndarray | torch.Tensor) -> torch.Tensor:
        # index_select: faster than advanced indexing for a row gather
        return self.X.index_select(0, torch.as_tensor(index).to(self.X.device))

    def _perm(self, gen: torch.Generator) -> torch.Tensor:
        # drawn on the CPU (same order on every device), moved once per pass
        return torch.randperm(self.n_samples, generator=gen).to(self.X.device)

    def batches(self, gen: torch.Generator, start: int = 0,
                shard: Callable | None = None) -> Iterator[torch.Tensor]:
        """Yield the batches of one pass, from batch ``start`` on.

        ``shard`` maps the row indices of each batch to those to read.
        """
        perm = self._perm(gen)
        bs = self.batch_size
        for lo in range(start * bs, self.n_samples, bs):
            idx = perm[lo:lo + bs]
            yield self._rows(idx if shard is None else shard(idx))

    def sample(self, n_max: int = _SAMPLE_ROWS) -> torch.Tensor:
        """Evenly spaced rows (deterministic), for initialisation."""
        return self._rows(_spread(self.n_samples, n_max))

    def mean_sq_norm(self, first_col: int = 0) -> float:
        """Mean squared row norm (on up to 100k evenly spaced rows) of the
        columns from ``first_col`` on."""
        rows = (self.X if self.n_samples <= _NORM_ROWS and torch.is_tensor(self.X)
                else self._rows(_spread(self.n_samples, _NORM_ROWS)))
        return _mean_sq_norm(rows[:, first_col:])


class MemmapBatches(TensorBatches):
    """Like `TensorBatches` for a `numpy.memmap`, read one batch at a time.

    Rows are read from disk per batch (the same rows, in the same order, as an
    in-memory copy would give), checked for NaN/inf, and moved to ``device``.
    """

    def __init__(self, X: np.memmap, batch_size: int, device: torch.device,
                 dtype: torch.dtype) -> None:
        self.X = X
        self.batch_size = int(batch_size)
        self.n_samples, self.n_features = X.shape
        self.device, self.dtype = device, dtype

    def _perm(self, gen: torch.Generator) -> torch.Tensor:
        return torch.randperm(self.n_samples, generator=gen)

    def _rows(self, index: np.ndarray | torch.Tensor) -> torch.Tensor:
        rows = np.asarray(self.X[np.asarray(index)])
        if not np.isfinite(rows).all():
            raise ValueError("Input X contains NaN or infinity.")
        return torch.from_numpy(rows).to(device=self.device, dtype=self.dtype)


class IterableBatches:
    """Mini-batches from any iterable of 2-D chunks, shuffled in a bounded buffer.

    Chunks (numpy arrays, tensors, array-likes, of any number of rows) are
    validated, concatenated into a buffer of at most about ``buffer_size``
    rows, shuffled, and half the buffer is emitted as batches each time it is
    full; the remainder is shuffled and emitted at the end of the pass. A
    re-iterable (a list of arrays, a DataLoader, `ActivationBatches`) gives a
    new pass on every iteration; a one-shot iterator gives a single pass.

    Parameters
    ----------
    iterable : iterable of array-like of shape (n_rows, n_features)
    batch_size : int
    device : torch.device
    dtype : torch.dtype or None
        None: the first chunk's float dtype (float32 for other dtypes).
    buffer_size : int, default=None
        Shuffle buffer in rows (default ``16 * batch_size``).
    """

    def __init__(self, iterable: Iterable, batch_size: int, device: torch.device,
                 dtype: torch.dtype | None = None, buffer_size: int | None = None
                 ) -> None:
        self.batch_size = int(batch_size)
        self.buffer_size = int(buffer_size or 16 * self.batch_size)
        self.device = device
        self._iterable = iterable
        self._one_shot = iter(iterable) is iterable
        self._peeked: list[torch.Tensor] = []
        self.dtype = dtype
        self.n_features: int | None = None
        self.n_samples = None
        self.n_batches = None
        self._first_pass_used = False

    def _check(self, chunk: Any) -> torch.Tensor:
        """Validate one chunk (on its own device) and move it to ``device``."""
        t = chunk if torch.is_tensor(chunk) else torch.as_tensor(np.asarray(chunk))
        if t.ndim != 2 or t.shape[0] == 0:
            raise ValueError(
                f"Each batch must be a non-empty 2-D array, got shape {tuple(t.shape)}."
            )
        if self.dtype is None:
            self.dtype = t.dtype if t.dtype in (torch.float32, torch.float64) else (
                torch.float32)
        if self.n_features is None:
            self.n_features = t.shape[1]
        elif t.shape[1] != self.n_features:
            raise ValueError(
                f"Batch has {t.shape[1]} features, expected {self.n_features}."
            )
        if not bool(torch.isfinite(t).all()):
            raise ValueError("Input batch contains NaN or infinity.")
        return t.to(device=self.device, dtype=self.dtype)

    def _chunks(self) -> Iterator[torch.Tensor]:
        if self._one_shot:
            if self._first_pass_used:
                return
            self._first_pass_used = True
            peeked, self._peeked = self._peeked, []
            yield from peeked  # already checked
            source = self._iterable
        else:
            source = iter(self._iterable)
        for chunk in source:
            yield self._check(chunk)

    def sample(self, n_max: int = _SAMPLE_ROWS) -> torch.Tensor:
        """The first ``n_max`` rows of the stream (peeked, not consumed)."""
        if self._one_shot:
            rows = list(self._peeked)
            source = self._iterable
        else:
            rows, source = [], iter(self._iterable)
        got, it, end = sum(r.shape[0] for r in rows), iter(source), object()
        while got < n_max:
            chunk = next(it, end)
            if chunk is end:
                break
            t = self._check(chunk)
            if self._one_shot:
                self._peeked.append(t)
            rows.append(t)
            got += t.shape[0]
        if not rows:
            raise ValueError("The iterable of batches is empty.")
        return torch.cat(rows)[:n_max]

    def mean_sq_norm(self) -> float:
        """Mean squared row norm of the first rows of the stream."""
        return _mean_sq_norm(self.sample(_NORM_ROWS))

    def batches(self, gen: torch.Generator, start: int = 0,
                shard: Callable | None = None) -> Iterator[torch.Tensor]:
        """Yield one pass of shuffled batches, skipping the first ``start``.

        ``shard`` maps each batch to the rows this process trains on.
        """
        count = 0
        for batch in self._shuffled(gen):
            if count >= start:
                yield batch if shard is None else shard(batch)
            count += 1

    def _shuffled(self, gen: torch.Generator) -> Iterator[torch.Tensor]:
        bs, buf = self.batch_size, None
        for chunk in self._chunks():
            buf = chunk if buf is None else torch.cat([buf, chunk])
            while buf.shape[0] >= self.buffer_size:
                buf = buf[torch.randperm(buf.shape[0], generator=gen).to(buf.device)]
                n_emit = max(bs, (buf.shape[0] // 2) // bs * bs)
                for lo in range(0, n_emit, bs):
                    yield buf[lo:lo + bs]
                buf = buf[n_emit:]
        if buf is not None and buf.shape[0]:
            buf = buf[torch.randperm(buf.shape[0], generator=gen).to(buf.device)]
            for lo in range(0, buf.shape[0], bs):
                yield buf[lo:lo + bs]


def _is_stream(X: Any) -> bool:
    """An iterable of batches rather than an array-like."""
    if isinstance(X, (np.ndarray, torch.Tensor, list, tuple, str, bytes, dict)):
        return False
    if hasattr(X, "__array__") or hasattr(X, "iloc") or hasattr(X, "toarray"):
        return False
    return hasattr(X, "__iter__")


def _check_width(est, n_features: int, reset: bool) -> None:
    if reset:
        est.n_features_in_ = int(n_features)
        if hasattr(est, "feature_names_in_"):
            del est.feature_names_in_
    elif n_features != est.n_features_in_:
        raise ValueError(
            f"X has {n_features} features, but {type(est).__name__} is expecting "
            f"{est.n_features_in_} features as input."
        )


def make_source(est, X: Any, *, reset: bool):
    """Validate ``X`` for estimator ``est`` and wrap it as a batch source.

    A `numpy.memmap` larger than a batch is read batch by batch; an iterable
    that is not array-like is streamed; anything else is validated by the
    estimator (``_validate_input``) and held as a tensor on its device.
    """
    dtype = None if est.dtype is None else torch_dtype(est.dtype)
    bs = est.batch_size
    if isinstance(X, np.memmap) and X.ndim == 2 and X.shape[0] > bs:
        if X.dtype.kind not in "fiu":
            raise TypeError(f"memmap dtype must be numeric, got {X.dtype}.")
        _check_width(est, X.shape[1], reset)
        d = dtype or (torch.float32 if X.dtype == np.float32 else torch.float64)
        return MemmapBatches(X, bs, est._device, d)
    if _is_stream(X):
        src = IterableBatches(X, bs, est._device, dtype)
        src.sample(1)
        _check_width(est, src.n_features, reset)
        return src
    Xt, _ = est._validate_input(X, reset=reset)
    return TensorBatches(Xt if dtype is None else Xt.to(dtype), bs)
