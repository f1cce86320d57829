"""Training checkpoints: safetensors for the tensors, JSON for the rest.

A checkpoint directory holds ``step_<n>.safetensors`` and ``checkpoint.json``.
The JSON file is written last and names the weights file, so it is the commit
point: an interrupted write leaves the previous checkpoint intact. Every file
is written to a temporary name in the same directory and moved into place
with `os.replace`. Nothing is ever unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file

from .._utils import read_json, write_json, write_tensors

__all__ = ["read_checkpoint", "write_checkpoint"]

CHECKPOINT_JSON = "checkpoint.json"


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
    meta = read_json(meta_path)
    weights = Path(directory) / str(meta.get("weights", ""))
    if not weights.is_file() or Path(meta["weights"]).name != meta["weights"]:
        raise ValueError(f"checkpoint {meta_path} names a missing weights file.")
    return load_file(str(weights), device="cpu"), meta
