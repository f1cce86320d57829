"""Worker of ``tests/sae/test_checkpoint_faults.py``: killed in a checkpoint write.

``python tests/sae/_kill_worker.py DIR`` reads ``DIR/params.json`` (the
SparseAutoencoder parameters, ``checkpoint_dir`` among them; the torch thread
count of the test; ``kill_at``) and ``DIR/x.npy``, and fits. The process kills
itself with SIGKILL at the ``kill_at``-th move of a temporary file into place
(each checkpoint moves two: its weights, then ``checkpoint.json``), so that it
dies in the middle of training and of a checkpoint write, its temporary file
left behind.
"""

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import torch

from sparsecode import SparseAutoencoder


def main(out: str) -> None:
    params = json.loads((Path(out) / "params.json").read_text(encoding="utf-8"))
    torch.set_num_threads(params.pop("threads"))
    kill_at, moves, replace = params.pop("kill_at"), [], os.replace

    def replace_or_die(src, dst):
        if str(src).endswith(".tmp"):
            moves.append(dst)
            if len(moves) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        replace(src, dst)

    os.replace = replace_or_die
    SparseAutoencoder(**params).fit(np.load(Path(out) / "x.npy"))


if __name__ == "__main__":
    main(sys.argv[1])
