"""Worker of ``tests/sae/test_distributed.py``, run by torchrun on several processes.

``python -m torch.distributed.run --standalone --nproc_per_node=2
tests/sae/_ddp_worker.py DIR`` reads ``DIR/spec.json`` and ``DIR/x.npy``, fits
every SparseAutoencoder of the spec on every rank (data-parallel: torchrun's
environment switches it on) and saves rank ``r``'s estimator to
``DIR/<name>_rank<r>``. It first records in ``DIR/errors_rank<r>.json`` the
errors raised for a batch size that does not split over the processes and
for data that differ between them.
"""

import json
import os
import sys

import numpy as np
import torch

import sparsecode
from sparsecode import SparseAutoencoder


def training_input(X: np.ndarray, kind: str, path: str):
    """The same data as an array, a memmap or a re-iterable of chunks."""
    if kind == "memmap":
        return np.load(path, mmap_mode="r")
    if kind == "iterable":
        return torch.utils.data.DataLoader(torch.from_numpy(X), batch_size=90)
    return X


def _error(batch_size: int, X: np.ndarray) -> str:
    """The message of the ValueError that fitting raises."""
    try:
        SparseAutoencoder(batch_size=batch_size, device="cpu", max_iter=1).fit(X)
    except ValueError as exc:
        return str(exc)
    return "no error"


def main(out: str) -> None:
    with open(os.path.join(out, "spec.json"), encoding="utf-8") as f:
        spec = json.load(f)
    x_path = os.path.join(out, "x.npy")
    X = np.load(x_path)
    rank = int(os.environ["RANK"])
    errors = {"batch_size": _error(batch_size=63, X=X),
              "data": _error(batch_size=64, X=X + rank)}
    with open(os.path.join(out, f"errors_rank{rank}.json"), "w",
              encoding="utf-8") as f:
        json.dump(errors, f)
    for name, params in spec.items():
        params = dict(params)
        kind = params.pop("input")
        est = SparseAutoencoder(**params).fit(training_input(X, kind, x_path))
        sparsecode.save(est, os.path.join(out, f"{name}_rank{rank}"))


if __name__ == "__main__":
    main(sys.argv[1])
