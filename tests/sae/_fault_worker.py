"""Worker of ``tests/sae/test_distributed_faults.py``: one rank of a 2-process job.

``python _fault_worker.py SCENARIO DIR`` with the torchrun environment (RANK,
WORLD_SIZE, MASTER_ADDR, MASTER_PORT) set by the test, which starts both
ranks itself. After a warm-up fit of its own, each rank writes
``DIR/<SCENARIO>_ready_rank<r>.json``; results go to
``DIR/<SCENARIO>_rank<r>.json``.

* ``mismatch``: sparsecode initialises the process group (from the
  environment). Fits whose parameters differ between the ranks (k, max_iter,
  n_components, k in partial_fit), each recording the error's type, message
  and seconds to failure; then one fit with equal parameters (the group
  still works), and finally rank 1 exits in the middle of a fit.
* ``stop_env`` / ``stop_user``: the group is initialised by sparsecode /
  by this script (gloo's 30-minute default timeout). With
  ``distributed_timeout=5``, rank 1 stops itself (SIGSTOP) at its second
  logged step; rank 0 records what it raised and the seconds since that step.
"""

import json
import os
import signal
import sys
import time

import torch.distributed as dist

from sparsecode import SparseAutoencoder
from sparsecode.data.toy import make_superposition

RANK = int(os.environ["RANK"])
BASE = dict(n_components=16, k=2, max_iter=2, batch_size=32, log_every=2,
            random_state=0, device="cpu", distributed_timeout=5)


def _attempt(X, partial=False, **params) -> dict:
    """Fit; the error's type and message, and the seconds the fit took."""
    est = SparseAutoencoder(**{**BASE, **params})
    t0 = time.perf_counter()
    try:
        est.partial_fit(X) if partial else est.fit(X)
    except Exception as exc:  # recorded for the test
        return {"type": type(exc).__name__, "message": str(exc),
                "seconds": time.perf_counter() - t0}
    return {"type": None, "n_steps": est.n_steps_,
            "seconds": time.perf_counter() - t0}


def _write(out: str, name: str, result: dict) -> None:
    path = os.path.join(out, f"{name}_rank{RANK}.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(path + ".tmp", path)


def mismatch(X, out: str) -> None:
    results = {
        "k": _attempt(X, k=2 + RANK),
        "max_iter": _attempt(X, max_iter=2 + RANK),
        "n_components": _attempt(X, n_components=16 + 8 * RANK),
        "partial_k": _attempt(X, partial=True, k=2 + RANK),
        "same": _attempt(X),
    }
    _write(out, "mismatch", results)

    def exit_rank1(entry):
        if RANK == 1 and entry["step"] >= 2:
            os._exit(0)  # the connection closes: rank 0 fails at once

    results["exit"] = _attempt(X, max_iter=50, callback=exit_rank1)
    _write(out, "mismatch", results)


def stop(X, out: str, scenario: str) -> None:
    if scenario == "stop_user":
        dist.init_process_group("gloo")  # gloo's default timeout: 30 minutes
    last = {}

    def stop_rank1(entry):
        last["time"] = time.perf_counter()
        if RANK == 1 and entry["step"] >= 4:
            _write(out, scenario, {"stopped_at": entry["step"]})
            os.kill(os.getpid(), signal.SIGSTOP)

    result = _attempt(X, max_iter=100, callback=stop_rank1)
    result["since_last_step"] = time.perf_counter() - last.get("time", 0.0)
    _write(out, scenario, result)


def main(scenario: str, out: str) -> None:
    X, _ = make_superposition(96, 8, 12, mean_active=2, random_state=0)
    # warm up (imports, kernels) alone, so that the test times only the faults
    SparseAutoencoder(**{**BASE, "distributed": False}).fit(X)
    _write(out, f"{scenario}_ready", {})
    if scenario == "mismatch":
        mismatch(X, out)
    else:
        stop(X, out, scenario)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
