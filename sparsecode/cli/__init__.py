"""Command-line interface: ``sparsecode demo|compare|extract|fit``.

One module per command group (`demo`, `compare`, `store` for ``extract`` and
``fit``), each with ``add_command(s)`` registering its subparsers and a
``run`` function; `main` dispatches.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import compare, demo, store

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparsecode", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo.add_command(sub)
    compare.add_command(sub)
    store.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sparsecode`` command."""
    args = _parser().parse_args(argv)
    runners = {"demo": demo.run, "compare": compare.run, "extract": store.run_extract,
               "fit": store.run_fit}
    runners[args.command](args)
    return 0
