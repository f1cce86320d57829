"""Argument types and the help format shared by the subcommands."""

from __future__ import annotations

import argparse

__all__ = ["FORMAT", "positive_float", "positive_int"]

#: every subcommand's help shows the defaults
FORMAT = argparse.ArgumentDefaultsHelpFormatter


def positive_int(text: str) -> int:
    """An int > 0 (argparse type: a bad value is a usage error, exit 2).

    Examples
    --------
    >>> positive_int("3")
    3
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer > 0, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected an integer > 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite float > 0 (argparse type).

    Examples
    --------
    >>> positive_float("0.5")
    0.5
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {value}")
    return value
