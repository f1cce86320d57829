"""Writing an activation store: shards, manifest, atomic files, resumption.

The writing half of `sparsecode.data.activations`: rows of each hooked module
are buffered and flushed as safetensors shards of a fixed number of rows; the
JSON manifest (what was extracted from which model and texts, and which
batches are done) is rewritten atomically after every shard, so an interrupted
extraction resumes from the last complete shard.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch

from .._utils import atomic_write, json_field, read_json_object, write_json
from .store import FORMAT, MANIFEST, _check_manifest, _int


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
        write_json(self.out_dir / MANIFEST, self.manifest)

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
        atomic_write(self.out_dir / name, lambda tmp: save_file(tensors, tmp))
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
        write_json(self.out_dir / MANIFEST, m)
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
    """The manifest to continue from: the existing one if compatible, else `fresh`.

    An existing manifest that is malformed (see `ActivationStore`) raises
    ``ValueError`` naming it, whether resumed or replaced; only shard files
    inside ``out_dir`` are ever deleted.
    """
    path = out_dir / MANIFEST
    if path.is_file():
        old = read_json_object(path)
        shard_files = _check_manifest(old, out_dir, path)
        keys = (*_IDENTITY, "config")
        same = all(old.get(k) == fresh[k] for k in keys)
        if resume and not same:
            raise ValueError(
                f"{out_dir} holds a store made with other texts, model or "
                "arguments; pass resume=False to overwrite it, or another out_dir."
            )
        if resume:
            for key in ("next_batch", "next_row", "n_tokens", "docs_complete"):
                _int(old, key, path)
            json_field(old, "done", bool, path)
            return old
        for file in shard_files:
            file.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, fresh)
    return fresh
