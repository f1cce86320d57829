"""The activation store on disk: lazy shard reader and streaming batches.

A store written by :func:`.activations.extract_activations` is a folder of safetensors
shards and a JSON manifest (format :data:`FORMAT`). :class:`ActivationStore` reads it
lazily and :class:`ActivationBatches` streams (shuffled) batches with bounded memory.

Every fault of the files is a ``ValueError`` naming the file: a manifest that is not
JSON, not an object, lacks a key or holds a mistyped one; a shard path that is absolute
or leads outside the store folder; a shard that is truncated, not safetensors, lacks an
array, or whose row count or width differs from the manifest's.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._utils import json_field, open_tensors, read_json_object

__all__ = ["ActivationBatches", "ActivationStore", "to_numpy"]

MANIFEST = "manifest.json"
FORMAT = "sparsecode.activations"
META_KEYS = ("token_ids", "doc_ids", "window_ids", "positions")


class ActivationStore:
    """Lazy reader of a store written by :func:`.activations.extract_activations`.

    Parameters
    ----------
    path : str or path-like
        Folder holding ``manifest.json`` and the shard files.

    Notes
    -----
    Shards are read with :func:`safetensors.safe_open` (memory-mapped, never pickle).
    A store still being written, or interrupted, holds the shards so far (not ``done``).

    Examples
    --------
    >>> from sparsecode.data.activations import extract_activations
    >>> class Toy(torch.nn.Module):  # stand-in model: "emb" embeds the token ids
    ...     def __init__(self): super().__init__(); self.emb = torch.nn.Embedding(8, 3)
    ...     def forward(self, input_ids, attention_mask): return self.emb(input_ids)
    >>> class Tok:  # stand-in tokenizer: [CLS] = 1, a token 3 per text, [SEP] = 2
    ...     pad_token_id, all_special_ids = 0, [1, 2]
    ...     num_special_tokens_to_add = lambda self, pair: 2
    ...     __call__ = lambda self, texts, **kw: {"input_ids": [[1, 3, 2]] * len(texts)}
    >>> import tempfile; path = tempfile.mkdtemp()
    >>> _ = extract_activations(Toy(), Tok(), ["a", "b"], "emb", path, split_long=False)
    >>> store = ActivationStore(path)
    >>> store.n_tokens, store.modules, store.load("emb").shape, store.doc_ids().tolist()
    (6, ['emb'], (6, 3), [0, 0, 0, 1, 1, 1])
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"no activation store at {self.path}.")
        self._manifest_path = manifest_path
        self._manifest = read_json_object(manifest_path)
        self._shard_paths = _check_manifest(self._manifest, self.path, manifest_path)

    def __repr__(self) -> str:
        return (
            f"ActivationStore({str(self.path)!r}, n_tokens={self.n_tokens}, "
            f"modules={self.modules}, done={self.done})"
        )

    def __len__(self) -> int:
        return self.n_tokens

    @property
    def manifest(self) -> dict:
        """A copy of the JSON manifest."""
        return copy.deepcopy(self._manifest)

    @property
    def n_tokens(self) -> int:
        """Number of stored token rows."""
        return int(sum(s["n_tokens"] for s in self._manifest["shards"]))

    @property
    def modules(self) -> list[str]:
        """Names of the stored modules."""
        return list(self._manifest["modules"])

    @property
    def done(self) -> bool:
        """Whether the extraction finished."""
        return bool(self._manifest["done"])

    @property
    def shard_paths(self) -> list[Path]:
        """Paths of the shard files, in stream order."""
        return list(self._shard_paths)

    @property
    def shard_sizes(self) -> list[int]:
        """Number of rows of each shard."""
        return [int(s["n_tokens"]) for s in self._manifest["shards"]]

    def dim(self, module: str) -> int:
        """Number of features stored for `module`."""
        self._check_key(module)
        return int(self._manifest["dims"][module])

    def _check_key(self, key: str) -> None:
        if key not in self._manifest["modules"] and key not in META_KEYS:
            raise KeyError(f"{key!r} is not stored; modules are {self.modules}.")

    def read(
        self, shard: int, key: str, start: int = 0, stop: int | None = None
    ) -> torch.Tensor:
        """Rows ``start:stop`` of array `key` in shard number `shard`, as a tensor.
        Raises ``ValueError`` naming the shard file when it is unreadable, lacks
        `key`, or its rows or width differ from the manifest."""
        self._check_key(key)
        path, n_rows = self._shard_paths[shard], self.shard_sizes[shard]
        with open_tensors(path) as fh:
            if key not in fh.keys():
                raise ValueError(f"{path}: shard {shard} lacks the array {key!r}.")
            part = fh.get_slice(key)
            shape = list(part.get_shape())
            want = [n_rows, self.dim(key)] if key in self.modules else [n_rows]
            if shape[:1] != want[:1]:
                raise ValueError(
                    f"{path}: shard {shard} holds {shape[0] if shape else 0} rows "
                    f"of {key!r}, but {self._manifest_path} says {n_rows}.")
            if shape != want:
                raise ValueError(f"{path}: shard {shard}: {key!r} has shape {shape}, "
                                 f"{self._manifest_path} implies {want}.")
            return part[start:stop]

    def _concat(self, key: str) -> np.ndarray:
        parts = [self.read(i, key) for i in range(len(self.shard_sizes))]
        if not parts:
            raise ValueError("the store holds no shard yet.")
        return to_numpy(torch.cat(parts))

    def load(self, module: str) -> np.ndarray:
        """All rows of `module` as one ``(n_tokens, dim)`` array (small stores)."""
        return self._concat(module)

    def token_ids(self) -> np.ndarray:
        """Token id of every row."""
        return self._concat("token_ids")

    def doc_ids(self) -> np.ndarray:
        """Index of the text of every row."""
        return self._concat("doc_ids")

    def window_ids(self) -> np.ndarray:
        """Index of the window inside its text, for every row."""
        return self._concat("window_ids")

    def positions(self) -> np.ndarray:
        """Position inside the model input (0 = first token) of every row."""
        return self._concat("positions")

    def iter_batches(
        self, module: str, batch_size: int = 4096, **options: Any
    ) -> ActivationBatches:
        """Stream batches of `module` rows; ``options`` are the keyword options of
        :class:`ActivationBatches` (``shuffle``, ``buffer_size``, ``random_state``,
        ``device``, ``as_torch``, ``drop_last``, ``infinite``, ``return_meta``)."""
        return ActivationBatches(self, module, batch_size, **options)


def _int(obj: dict, key: str, path: Path | str, low: int = 0) -> int:
    value = json_field(obj, key, int, path)
    if value < low:
        raise ValueError(f"{path}: {key!r} must be >= {low}, got {value}.")
    return value


def _shard_file(root: Path, name: Any, manifest_path: Path) -> Path:
    """``root / name``, refused unless it is a relative path inside ``root``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{manifest_path}: a shard 'file' must be a non-empty "
                         f"string, got {name!r}.")
    if os.path.isabs(name) or Path(name).anchor:
        raise ValueError(f"{manifest_path}: shard path {name!r} is absolute; shard "
                         "paths must be relative to the store folder.")
    top = root.resolve()
    target = (root / name).resolve()
    if target == top or not target.is_relative_to(top):
        raise ValueError(f"{manifest_path}: shard path {name!r} leads outside the "
                         f"store folder {root}.")
    return root / name


def _check_manifest(m: dict, root: Path, path: Path) -> list[Path]:
    """Raise ``ValueError`` naming ``path`` for a malformed manifest; return the
    shard paths, each confined to the store folder ``root``."""
    if m.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} manifest.")
    modules = json_field(m, "modules", list, path)
    if not all(isinstance(k, str) for k in modules):
        raise ValueError(f"{path}: 'modules' must be a list of strings.")
    dims = json_field(m, "dims", dict, path)
    json_field(m, "done", bool, path)
    shards = json_field(m, "shards", list, path)
    if shards:
        for module in modules:
            _int(dims, module, f"{path}: 'dims'", low=1)
    files, total = [], 0
    for i, shard in enumerate(shards):
        where = f"{path} (shard {i})"
        if not isinstance(shard, dict):
            raise ValueError(f"{where}: a shard entry must be a JSON object.")
        total += _int(shard, "n_tokens", where)
        files.append(_shard_file(root, json_field(shard, "file", str, where), path))
    if "n_tokens" in m and _int(m, "n_tokens", path) != total:
        raise ValueError(f"{path}: 'n_tokens' is {m['n_tokens']}, but the shards "
                         f"add up to {total} rows.")
    return files


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A CPU tensor as numpy (bfloat16, which numpy lacks, as float32)."""
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.numpy()


class _Buffer:
    """Fixed-capacity row buffer (one preallocated tensor per key)."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.n, self.peak = capacity, 0, 0
        self.cols: dict[str, torch.Tensor] = {}

    def append(self, block: dict[str, torch.Tensor]) -> None:
        n_new = len(next(iter(block.values())))
        if self.n + n_new > self.capacity:
            raise RuntimeError("buffer overflow")  # prevented by the caller
        for key, rows in block.items():
            if key not in self.cols:
                shape = (self.capacity, *rows.shape[1:])
                self.cols[key] = torch.empty(shape, dtype=rows.dtype)
            self.cols[key][self.n : self.n + n_new] = rows
        self.n += n_new
        self.peak = max(self.peak, self.n)

    def take(self, k: int, rng) -> dict[str, torch.Tensor]:
        """Remove `k` rows (random ones if `rng`, else the oldest) and return them."""
        if rng is None:
            order = torch.arange(self.n)
        else:
            order = torch.from_numpy(rng.permutation(self.n))
        out_idx, keep_idx = order[:k], order[k:]
        out = {key: col[out_idx] for key, col in self.cols.items()}
        for col in self.cols.values():
            col[: len(keep_idx)] = col[keep_idx]
        self.n -= k
        return out


class ActivationBatches:
    """Re-iterable stream of batches from an :class:`ActivationStore`.

    Each pass (``for batch in batches``) yields every stored row exactly once (the last
    batch may be smaller unless `drop_last`). With ``shuffle=True`` the shards are cut
    into blocks read in random order into a buffer of at most `buffer_size` rows, from
    which random rows are drawn; the whole store is never loaded. Successive passes use
    different orders; `random_state` makes them reproducible.

    Parameters
    ----------
    store : ActivationStore
    module : str
        Stored module to stream.
    batch_size : int
    shuffle : bool, default=True
    buffer_size : int, optional
        Rows held in memory at most; must exceed `batch_size`. Default: 256 MiB
        worth of rows, and at least ``4 * batch_size``.
    random_state : int, RandomState or None
    device : str or torch.device, optional
        Yield torch tensors on this device (implies `as_torch`).
    as_torch : bool, default=False
        Yield CPU torch tensors instead of numpy arrays.
    drop_last : bool, default=False
    infinite : bool, default=False
        Restart a new pass forever.
    return_meta : bool, default=False
        Yield ``(X, meta)`` where ``meta`` maps ``token_ids``, ``doc_ids``,
        ``window_ids`` and ``positions`` to the rows' metadata.

    Attributes
    ----------
    peak_rows_ : int
        Most rows the buffer has held so far (``<= buffer_size``).

    Examples
    --------
    >>> from sparsecode.data.activations import extract_activations
    >>> class Toy(torch.nn.Module):  # stand-in model: "emb" embeds the token ids
    ...     def __init__(self): super().__init__(); self.emb = torch.nn.Embedding(8, 3)
    ...     def forward(self, input_ids, attention_mask): return self.emb(input_ids)
    >>> class Tok:  # stand-in tokenizer: [CLS] = 1, a token 3 per text, [SEP] = 2
    ...     pad_token_id, all_special_ids = 0, [1, 2]
    ...     num_special_tokens_to_add = lambda self, pair: 2
    ...     __call__ = lambda self, texts, **kw: {"input_ids": [[1, 3, 2]] * len(texts)}
    >>> import tempfile; path = tempfile.mkdtemp()
    >>> st = extract_activations(Toy(), Tok(), ["a"] * 2, "emb", path, split_long=False)
    >>> [b.shape for b in ActivationBatches(st, "emb", batch_size=4, random_state=0)]
    [(4, 3), (2, 3)]
    """

    def __init__(
        self,
        store: ActivationStore,
        module: str,
        batch_size: int,
        *,
        shuffle: bool = True,
        buffer_size: int | None = None,
        random_state: int | np.random.RandomState | None = None,
        device: str | torch.device | None = None,
        as_torch: bool = False,
        drop_last: bool = False,
        infinite: bool = False,
        return_meta: bool = False,
    ) -> None:
        from sklearn.utils import check_random_state

        if module not in store.modules:
            raise KeyError(f"{module!r} is not stored; modules are {store.modules}.")
        self.store, self.module, self.batch_size = store, module, int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if buffer_size is None:
            row_bytes = 4 * max(store.dim(module), 1)
            buffer_size = max(4 * self.batch_size, 2**28 // row_bytes)
        if int(buffer_size) <= self.batch_size:
            raise ValueError("buffer_size must be larger than batch_size.")
        self.buffer_size, self.shuffle = int(buffer_size), shuffle
        self.device, self.as_torch = device, as_torch or device is not None
        self.drop_last, self.infinite, self.return_meta = (
            drop_last,
            infinite,
            return_meta,
        )
        self._rng = check_random_state(random_state)
        self.peak_rows_ = 0

    def __len__(self) -> int:
        """Number of batches in one pass."""
        n = self.store.n_tokens
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        while True:
            yield from self._one_pass()
            if not self.infinite:
                return

    def _blocks(self) -> list[tuple[int, int, int]]:
        size = min(self.buffer_size // 2, self.buffer_size - self.batch_size)
        blocks = [
            (shard, start, min(start + size, n))
            for shard, n in enumerate(self.store.shard_sizes)
            for start in range(0, n, size)
        ]
        if self.shuffle:
            blocks = [blocks[i] for i in self._rng.permutation(len(blocks))]
        return blocks

    def _one_pass(self) -> Iterator[Any]:
        keys = [self.module, *(META_KEYS if self.return_meta else ())]
        buffer, rng = _Buffer(self.buffer_size), self._rng if self.shuffle else None
        bs = self.batch_size
        for shard, start, stop in self._blocks():
            overflow = buffer.n + (stop - start) - buffer.capacity
            if overflow > 0:
                yield from self._emit(buffer.take(-(-overflow // bs) * bs, rng))
            buffer.append({k: self.store.read(shard, k, start, stop) for k in keys})
            self.peak_rows_ = max(self.peak_rows_, buffer.peak)
        n_last = buffer.n - buffer.n % bs if self.drop_last else buffer.n
        yield from self._emit(buffer.take(n_last, rng))

    def _emit(self, rows: dict[str, torch.Tensor]) -> Iterator[Any]:
        for start in range(0, len(rows[self.module]), self.batch_size):
            part = {k: v[start : start + self.batch_size] for k, v in rows.items()}
            if self.as_torch:
                part = {k: v.to(self.device or "cpu") for k, v in part.items()}
            else:
                part = {k: to_numpy(v) for k, v in part.items()}
            x = part.pop(self.module)
            yield (x, part) if self.return_meta else x
