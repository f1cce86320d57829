"""Wall time of every reproduction's quick mode, idle or beside a CPU-bound load.

    python benchmarks/bench_quick.py            # every module of sparsecode.papers
    python benchmarks/bench_quick.py --busy     # one `while True` process beside it
    python benchmarks/bench_quick.py sharkey2022 chen2017

Each run is a fresh ``sparsecode reproduce NAME --quick`` subprocess (imports
and model loading included, as a user runs it); prints seconds per module and
the worst case. The target is under 120 s each on two cores with ``--busy``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

from _load import cpu_load  # benchmarks/_load.py


def main() -> None:
    from sparsecode.papers import PAPERS

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("names", nargs="*", help="modules (default: all)")
    parser.add_argument("--busy", action="store_true",
                        help="run one CPU-bound process beside each run")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    names = args.names or list(PAPERS)
    times = {}
    with cpu_load(args.busy):
        for name in names:
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "sparsecode", "reproduce", name, "--quick",
                     "--device", args.device, "--out", out],
                    capture_output=True, text=True)
                times[name] = time.perf_counter() - t0
            status = "ok" if done.returncode == 0 else f"FAILED ({done.returncode})"
            print(f"{name:<16} {times[name]:7.1f} s  {status}", flush=True)
            if done.returncode:
                print(done.stderr[-2000:], file=sys.stderr)
    worst = max(times, key=times.get)
    print(f"{'busy' if args.busy else 'idle'}: worst {worst} {times[worst]:.1f} s, "
          f"median {sorted(times.values())[len(times) // 2]:.1f} s")


if __name__ == "__main__":
    main()
