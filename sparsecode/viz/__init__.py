"""Figures of arrays (``[viz]``): atom grids and spectra, FVU-L0 frontiers,
density histograms, denoising before/after, unmixing results, detections, volume slices.

Plots take plain arrays and rows and import nothing of sparsecode outside
this package."""

from .atoms import plot_atoms, plot_spectra
from .denoising import plot_denoising
from .detections import plot_detections
from .frontier import plot_density_histograms, plot_frontier
from .unmixing import plot_unmixing
from .volumes import plot_slices

__all__ = [
    "plot_atoms",
    "plot_denoising",
    "plot_density_histograms",
    "plot_detections",
    "plot_frontier",
    "plot_slices",
    "plot_spectra",
    "plot_unmixing",
]
