"""Command line: ``sparsecode demo|compare|extract|fit|transform|evaluate|reproduce``.

One module per command group (`demo`, `compare`, `store` for ``extract`` and
``fit``, `model` for ``transform`` and ``evaluate``, `reproduce`), each with
``add_command(s)`` registering its subparsers and a ``run`` function; `main`
dispatches. A user error (bad
value, missing file, missing optional package) exits with status 2 and one
line on stderr; ``-v`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import compare, demo, model, reproduce, store

__all__ = ["build_parser", "main"]

#: errors that mean the user asked for something that cannot be done
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError,
               IsADirectoryError, PermissionError, ImportError)


def build_parser() -> argparse.ArgumentParser:
    """The ``sparsecode`` argument parser with every subcommand."""
    from .. import __version__

    parser = argparse.ArgumentParser(prog="sparsecode", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"sparsecode {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    demo.add_command(sub)
    compare.add_command(sub)
    store.add_commands(sub)
    model.add_commands(sub)
    reproduce.add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sparsecode`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        0 on success, 2 on a user error (after one line on stderr).

    Examples
    --------
    >>> from sparsecode.cli import main
    >>> main(["reproduce", "nope"])
    2
    """
    args = build_parser().parse_args(argv)
    runners = {"demo": demo.run, "compare": compare.run, "extract": store.run_extract,
               "fit": store.run_fit, "transform": model.run_transform,
               "evaluate": model.run_evaluate, "reproduce": reproduce.run}
    try:
        runners[args.command](args)
    except USER_ERRORS as err:
        if args.verbose:
            raise
        print(f"sparsecode {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0
