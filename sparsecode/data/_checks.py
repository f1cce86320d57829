"""Argument checks shared by the data generators."""

from __future__ import annotations

from numbers import Integral
from typing import Any

__all__ = ["check_int"]


def check_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as int; ``ValueError`` naming ``name`` unless an int >= minimum."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an int, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)
