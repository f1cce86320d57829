"""Reproductions of historic applications: each module has ``run(quick=False)``
returning a `Report` (our numbers beside the paper's)."""

from . import cunningham2023, yun2021
from ._report import Report

__all__ = ["Report", "cunningham2023", "yun2021"]
