"""Atomic files and training checkpoints (safetensors for tensors, JSON for the rest).

A checkpoint directory holds ``step_<n>.safetensors`` and ``checkpoint.json``.
The JSON file is written last and names the weights file, so it is the commit
point: an interrupted write leaves the previous checkpoint intact. Every file
is written to a temporary name in the same directory and moved into place
with `os.replace`. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "atomic_write",
    "read_checkpoint",
    "write_checkpoint",
    "write_json",
    "write_tensors",
]

CHECKPOINT_JSON = "checkpoint.json"


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then move the temporary file onto ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def write_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                  metadata: dict[str, str] | None = None) -> None:
    """Atomically write CPU, contiguous copies of ``tensors`` as safetensors."""
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(flat, tmp, metadata=metadata))


def write_checkpoint(directory: str | os.PathLike, step: int,
                     tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write a checkpoint of training step ``step`` (tensors + JSON metadata)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:09d}.safetensors"
    write_tensors(directory / name, tensors)
    write_json(directory / CHECKPOINT_JSON, {**meta, "weights": name, "step": step})
    for old in directory.glob("step_*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def read_checkpoint(
    directory: str | os.PathLike,
) -> tuple[dict[str, torch.Tensor], dict] | None:
    """Read the latest checkpoint in ``directory``; None when there is none."""
    meta_path = Path(directory) / CHECKPOINT_JSON
    if not meta_path.is_file():
        return None
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    weights = Path(directory) / str(meta.get("weights", ""))
    if not weights.is_file() or Path(meta["weights"]).name != meta["weights"]:
        raise ValueError(f"checkpoint {meta_path} names a missing weights file.")
    return load_file(str(weights), device="cpu"), meta
