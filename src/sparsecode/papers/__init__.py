"""Reproductions of historic applications: each module has ``run(quick=False)``
returning a `Report` (our numbers beside the paper's)."""

from ._report import Report

__all__ = ["Report"]
