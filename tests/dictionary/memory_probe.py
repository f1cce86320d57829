"""Private-memory probe of the out-of-core tests (``tests/dictionary``).

The child, ``python memory_probe.py JOB PATH N_ROWS N_FEATURES OPTS_JSON``, maps
the float32 file ``PATH`` read-only as an ``(N_ROWS, N_FEATURES)``
`numpy.memmap`, builds the estimator of ``JOB`` ("minibatch", "sae",
"encode" or "coder"), prints ``ready`` and waits for a line on stdin, runs
``fit`` (`sparsecode.sparse_encode`, ``SparseCoder.transform``), prints
``done`` and a JSON line of results, and waits for stdin to close.

`measure` (the parent; also ``python memory_probe.py measure JOB PATH N_ROWS
N_FEATURES OPTIONS_JSON``, which prints its result) samples the child's
``RssAnon`` (``/proc/PID/status``) from outside between ``ready`` and
``done``: private memory (heap, torch and numpy buffers, freed-but-cached
malloc arenas), not the memmap's page-cache pages (``RssFile``), which plain
RSS and ``VmHWM`` would count. The kernel keeps no peak of ``RssAnon``, hence
the sampling; sampling from another process does not depend on the child
releasing the GIL.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch


def _run(job: str, X: np.memmap, opts: dict) -> dict:
    import sparsecode

    if job == "minibatch":
        est = sparsecode.MiniBatchDictionaryLearning(device="cpu", **opts)
        print("ready", flush=True)
        sys.stdin.readline()
        est.fit(X)
        return {"components": est.components_.tolist(), "n_steps": est.n_steps_}
    if job == "sae":
        stop = opts.pop("stop_after", None)  # steps (seen by the logging callback)
        if stop is not None:
            opts["callback"] = lambda entry: entry["step"] >= stop
        est = sparsecode.SparseAutoencoder(device="cpu", **opts)
        print("ready", flush=True)
        sys.stdin.readline()
        est.fit(X)
        return {"n_steps": len(est.history_)}
    if job in ("encode", "coder"):
        rng = np.random.default_rng(0)
        V = rng.standard_normal((opts.pop("n_components"), X.shape[1]))
        V = (V / np.linalg.norm(V, axis=1, keepdims=True)).astype(np.float32)
        coder = sparsecode.SparseCoder(V, device="cpu", **opts) if job == "coder" \
            else None
        print("ready", flush=True)
        sys.stdin.readline()
        codes = (sparsecode.sparse_encode(X, V, **opts) if coder is None
                 else coder.transform(X))
        return {"shape": list(codes.shape), "nnz": int((codes != 0).sum())}
    raise SystemExit(f"unknown job {job!r}")


def rss_anon(pid: int | str = "self") -> int:
    """``RssAnon`` of a process in bytes (``/proc/PID/status``)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/PID/status")


def measure(job: str, path: str | Path, n_rows: int, n_features: int, opts: dict,
            interval: float = 0.001, timeout: float = 600.0) -> dict:
    """Run the child on ``job`` and sample its private memory during the work.

    Returns ``baseline`` (``RssAnon`` at ``ready``, bytes), ``peak`` (the
    largest sample between ``ready`` and ``done``), ``samples`` and the
    child's ``result``. Sampling every ``interval`` seconds can only miss a
    buffer allocated and freed within one interval, i.e. one the process
    writes in under a millisecond (a few MB at memory bandwidth).
    """
    child = subprocess.Popen(
        [sys.executable, __file__, job, str(path), str(n_rows), str(n_features),
         json.dumps(opts)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    got = threading.Condition()

    def read() -> None:
        for line in child.stdout:
            with got:
                lines.append(line.strip())
                got.notify_all()
        with got:
            lines.append("<eof>")
            got.notify_all()

    threading.Thread(target=read, daemon=True).start()
    try:
        with got:
            got.wait_for(lambda: lines, timeout)
        if lines[:1] != ["ready"]:
            raise RuntimeError(f"child failed before its work: {lines}")
        baseline = peak = rss_anon(child.pid)
        n = 0
        child.stdin.write("go\n")
        child.stdin.flush()
        deadline = time.monotonic() + timeout
        while "done" not in lines and "<eof>" not in lines:
            peak = max(peak, rss_anon(child.pid))
            n += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"{job} ran over {timeout} s")
            time.sleep(interval)
        with got:
            got.wait_for(lambda: len(lines) >= 3 or "<eof>" in lines, timeout)
        if "done" not in lines:
            raise RuntimeError(f"child failed: {lines}")
        result = json.loads(lines[lines.index("done") + 1])
    finally:
        child.stdin.close()
        child.wait(timeout)
    return {"baseline": baseline, "peak": peak, "samples": n, "result": result}


def main(argv: list[str]) -> None:
    """Entry point (see the module docstring)."""
    if argv[0] == "measure":
        job, path, n_rows, n_features, opts = argv[1:]
        res = measure(job, path, int(n_rows), int(n_features), json.loads(opts))
        res.pop("result")
        mib = {k: round(v / 2**20, 1) for k, v in res.items() if k != "samples"}
        print(json.dumps({**mib, "samples": res["samples"]}))
        return
    job, path, n_rows, n_features, opts = argv
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # (read-only memmap -> non-writable tensor)
    X = np.memmap(path, dtype=np.float32, mode="r",
                  shape=(int(n_rows), int(n_features)))
    out = _run(job, X, json.loads(opts))
    print("done", flush=True)
    print(json.dumps(out), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1:])
