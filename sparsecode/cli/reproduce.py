"""``sparsecode reproduce NAME``: run a `sparsecode.papers` module, write its report."""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

from ..papers import PAPERS
from .options import FORMAT

__all__ = ["add_command", "run"]


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register the ``reproduce`` subcommand."""
    p = sub.add_parser(
        "reproduce", help="reproduce a paper (sparsecode reproduce --list)",
        description="Run a reproduction of sparsecode.papers, print its table "
                    "beside the paper's and write report.md, report.json and "
                    "its figures.",
        formatter_class=FORMAT)
    p.add_argument("name", nargs="?", help="the reproduction (see --list)")
    p.add_argument("--list", action="store_true",
                   help="name every reproduction with one line, then exit")
    p.add_argument("--quick", action="store_true",
                   help="the small setting (minutes at most on two CPU cores)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", default=None,
                   help="output folder (default: reproduce-NAME)")
    p.add_argument("--seed", type=int, default=0, help="random_state of the run")


def run(args: argparse.Namespace) -> None:
    """Run ``sparsecode reproduce`` with parsed arguments."""
    if args.list:
        width = max(map(len, PAPERS))
        for name, line in PAPERS.items():
            print(f"{name:<{width}}  {line}")
        return
    if args.name not in PAPERS:
        raise ValueError(f"unknown reproduction {args.name!r}; expected one of "
                         f"{', '.join(PAPERS)} (sparsecode reproduce --list).")
    out = Path(args.out or f"reproduce-{args.name}")
    module = importlib.import_module(f"sparsecode.papers.{args.name}")
    t0 = time.perf_counter()
    report = module.run(quick=args.quick, device=args.device, out_dir=out,
                        random_state=args.seed)
    report.write(out)  # (the module wrote it too: the same files, atomically)
    print(report.to_markdown())
    print(f"{args.name}: {time.perf_counter() - t0:.0f} s; report in "
          f"{out / 'report.md'}")
