"""Batch sources for the SAE training loop: tensors, memmaps, any iterable.

Every source yields the mini-batches of one pass with ``batches(generator, start=0)``,
drawing all its randomness from the given CPU `torch.Generator`. Restoring the generator
state saved at the start of a pass and calling ``batches(gen, start=i)`` replays that
pass from batch ``i`` exactly, which is how checkpoints resume. Under data-parallel
training, ``batches(gen, shard=f)`` yields only ``f(batch)`` of each global batch (for
arrays and memmaps ``f`` is applied to the row indices, so only this process's rows are
read); see `sparsecode.sae.distributed`.

Numerics: the mean squared row norm that sets the input scale is computed without
overflow (`sparsecode.base.safe_rms`); a scale float64 cannot hold raises
``ValueError``. Float32 data too small to be normalised in float32 (a scale above
``2**64``: subnormal values) is trained in float64 when ``dtype`` is None (`widen`),
else raises ``ValueError``. `make_source` also refuses, before allocating, an SAE whose
weights, gradients and Adam moments cannot fit in device memory (`check_sae_memory`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from ..base import as_real_tensor, check_memory, finite, safe_rms, torch_dtype

__all__ = [
    "IterableBatches",
    "MemmapBatches",
    "TensorBatches",
    "check_sae_memory",
    "make_source",
    "widen",
]

_SAMPLE_ROWS = 4096  # rows used to initialise b_pre
_NORM_ROWS = 100_000  # rows used to estimate the input scale
_MAX_SCALE_F32 = 2.0**64  # larger input scales train in float64 (`widen`)


def _spread(n: int, n_max: int) -> np.ndarray:
    """Up to ``n_max`` evenly spaced row indices in ``range(n)``."""
    return np.unique(np.linspace(0, n - 1, min(n, n_max)).round().astype(np.int64))


def _mean_sq_norm(rows: torch.Tensor) -> float:
    """Mean squared norm of the rows, without overflow or underflow; raises
    ``ValueError`` when the input scale ``sqrt(n_features / msn)`` of nonzero
    rows is not a finite float64 (values near 1e154 or below 1e-154)."""
    d = rows.shape[1]
    rms = safe_rms(rows)
    msn = d * rms * rms
    if rms > 0 and not (0 < msn < math.inf and math.isfinite(d / msn)):
        raise ValueError(
            f"X has a root-mean-square entry of {rms:.3g}, whose input scale "
            f"(normalize_input=True) is not representable in float64: rescale X "
            "(e.g. divide it by its largest absolute value) before fitting.")
    return msn


def _check_cast(t: torch.Tensor, what: str = "X") -> torch.Tensor:
    """``t`` after a cast, or ``ValueError`` if the cast overflowed."""
    if not finite(t):
        raise ValueError(
            f"Input {what} contains NaN or infinity, or values beyond the range "
            f"of {str(t.dtype).replace('torch.', '')} (the dtype parameter): pass "
            "dtype='float64' or rescale X.")
    return t


def widen(src, allowed: bool, first_col: int = 0) -> None:
    """Hold ``src`` in float64 when float32 cannot hold its normalised rows.

    ``allowed`` is False when the estimator's ``dtype`` fixes the precision;
    such data then raises ``ValueError``. ``first_col`` is where the columns
    that set the scale begin (a transcoder's targets).

    Examples
    --------
    >>> src = TensorBatches(torch.full((4, 2), 1e-30), 2); widen(src, True); src.dtype
    torch.float64
    """
    if src.dtype in (None, torch.float64):
        return
    msn = src.mean_sq_norm(first_col) if first_col else src.mean_sq_norm()
    if msn == 0 or math.sqrt((src.n_features - first_col) / msn) <= _MAX_SCALE_F32:
        return
    if not allowed:
        raise ValueError(
            f"X is too small in magnitude to be normalised in {src.dtype} (the "
            f"input scale exceeds 2**64, e.g. subnormal values): use dtype=None or "
            f"'float64', or rescale X.")
    src.cast(torch.float64)


class TensorBatches:
    """Shuffled mini-batches of an in-memory 2-D tensor (new order each pass).

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, n_features)
    batch_size : int

    Examples
    --------
    >>> src, g = TensorBatches(torch.ones(5, 2), batch_size=2), torch.Generator()
    >>> [len(b) for b in src.batches(g)], src.n_batches
    ([2, 2, 1], 3)
    """

    def __init__(self, X: torch.Tensor, batch_size: int) -> None:
        self.X = X
        self.batch_size = int(batch_size)
        self.n_samples, self.n_features = X.shape
        self._msn: dict[int, float] = {}

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the batches."""
        return self.X.dtype

    def cast(self, dtype: torch.dtype) -> None:
        """Hold (and yield) the rows in ``dtype`` (`widen`, `make_source`)."""
        self.X = _check_cast(self.X.to(dtype))

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
        """Yield the batches of one pass, from batch ``start`` on; ``shard`` maps
        the row indices of each batch to those to read."""
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
        columns from ``first_col`` on (computed once)."""
        if first_col not in self._msn:
            rows = (self.X if self.n_samples <= _NORM_ROWS and torch.is_tensor(self.X)
                    else self._rows(_spread(self.n_samples, _NORM_ROWS)))
            self._msn[first_col] = _mean_sq_norm(rows[:, first_col:])
        return self._msn[first_col]


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
        self.device, self._dtype = device, dtype
        self._msn = {}

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the batches."""
        return self._dtype

    def cast(self, dtype: torch.dtype) -> None:
        """Yield the rows in ``dtype``."""
        self._dtype = dtype

    def _perm(self, gen: torch.Generator) -> torch.Tensor:
        return torch.randperm(self.n_samples, generator=gen)

    def _rows(self, index: np.ndarray | torch.Tensor) -> torch.Tensor:
        rows = np.asarray(self.X[np.asarray(index)])
        if not np.isfinite(rows).all():
            raise ValueError("Input X contains NaN or infinity.")
        if not rows.dtype.isnative:
            rows = rows.astype(rows.dtype.newbyteorder("="))
        return _check_cast(torch.from_numpy(rows).to(device=self.device,
                                                     dtype=self.dtype))


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

    Examples
    --------
    >>> src = IterableBatches([np.ones((3, 2)), np.ones((4, 2))], 2, "cpu")
    >>> sorted(len(b) for b in src.batches(torch.Generator())), src.dtype
    ([1, 2, 2, 2], torch.float64)
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
        self._msn: float | None = None

    def cast(self, dtype: torch.dtype) -> None:
        """Yield the batches in ``dtype``."""
        self.dtype = dtype
        self._peeked = [_check_cast(t.to(dtype), "batch") for t in self._peeked]

    def _check(self, chunk: Any) -> torch.Tensor:
        """Validate one chunk (on its own device) and move it to ``device``."""
        t = as_real_tensor(chunk, "batch")
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
        return _check_cast(t.to(device=self.device, dtype=self.dtype), "batch")

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
        """Mean squared row norm of the first rows of the stream (computed once)."""
        if self._msn is None:
            self._msn = _mean_sq_norm(self.sample(_NORM_ROWS))
        return self._msn

    def batches(self, gen: torch.Generator, start: int = 0,
                shard: Callable | None = None) -> Iterator[torch.Tensor]:
        """Yield one pass of shuffled batches, skipping the first ``start``;
        ``shard`` maps each batch to the rows this process trains on."""
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


def check_sae_memory(est, n_features: int, n_outputs: int, dtype: torch.dtype
                     ) -> None:
    """``ValueError`` before building an SAE that cannot fit on its device.

    At least the encoder and decoder, their gradients and Adam's two moments
    (``4 * m * (n_features + n_outputs)`` numbers) and one batch of
    pre-activations (``batch_size * m``) are held at once."""
    m = est.n_components or 8 * n_features
    numbers = 4.0 * m * (n_features + n_outputs) + float(est.batch_size) * m
    check_memory(numbers * torch.empty((), dtype=dtype).element_size(),
                 param="n_components", value=m, device=est._device)


def make_source(est, X: Any, *, reset: bool):
    """Validate ``X`` for estimator ``est`` and wrap it as a batch source.

    A `numpy.memmap` larger than a batch is read batch by batch; an iterable that is not
    array-like is streamed; anything else is validated by the estimator
    (``_validate_input``) and held as a tensor on its device. A first fit also checks
    the memory the model needs (`check_sae_memory`) and the precision the input scale
    needs (`widen`); later ones yield the fitted model's dtype."""
    dtype = None if est.dtype is None else torch_dtype(est.dtype)
    bs = est.batch_size
    if isinstance(X, np.memmap) and X.ndim == 2 and X.shape[0] > bs:
        if X.dtype.kind not in "fiu":
            raise TypeError(f"memmap dtype must be real numbers, got {X.dtype}.")
        _check_width(est, X.shape[1], reset)
        d = dtype or (torch.float32 if X.dtype == np.float32 else torch.float64)
        src = MemmapBatches(X, bs, est._device, d)
    elif _is_stream(X):
        src = IterableBatches(X, bs, est._device, dtype)
        src.sample(1)
        _check_width(est, src.n_features, reset)
    else:
        Xt, _ = est._validate_input(X, reset=reset)
        src = TensorBatches(Xt if dtype is None else _check_cast(Xt.to(dtype)), bs)
    if reset:
        check_sae_memory(est, src.n_features, src.n_features, src.dtype)
        if est.normalize_input:
            widen(src, allowed=dtype is None)
    elif src.dtype != (fitted := torch_dtype(est.components_.dtype)):
        src.cast(fitted)
    return src
