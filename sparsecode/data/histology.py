"""Histology-like images with known nucleus centres (for nucleus detection).

``make_histology`` paints nuclei as noisy, soft-edged ellipses of hematoxylin
on a background of DAB (a smooth field with membrane-like ridges, as in the
immunohistochemistry image of scikit-image) and a little eosin. The three stain
concentrations are mixed into RGB with ``skimage.color.hed2rgb`` (colour
deconvolution after Ruifrok & Johnston 2001), then blurred and noised. Centres
may be as close as ``min_distance``, so nuclei touch and overlap.

The default stain levels `STAINS` were measured on
``load_image("immunohistochemistry")`` with `stain_levels` (``rgb2hed``
percentiles); pass ``stains=stain_levels(rgb)`` to imitate another image.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from scipy import ndimage
from sklearn.utils import check_random_state

from ._checks import check_int
from ._packages import install_hint

__all__ = ["STAINS", "make_histology", "stain_levels"]

#: Stain concentrations (``rgb2hed`` units) of the immunohistochemistry image,
#: as `stain_levels` measures them (rounded to 3 decimals).
STAINS: dict[str, float] = {"background_h": 0.017, "nucleus_h": 0.047,
                            "dab": 0.054, "membrane_dab": 0.145, "eosin": 0.0}


def _skimage_color():
    try:
        import skimage.color
    except ImportError as err:
        raise ImportError("This needs scikit-image: "
                          + install_hint("images")) from err
    return skimage.color


def stain_levels(rgb: Any) -> dict[str, float]:
    """Typical stain concentrations of an H-DAB image, from ``rgb2hed``.

    Background hematoxylin is the median of the H channel and nuclear
    hematoxylin its 95th percentile (nuclei are the most stained pixels);
    background DAB is the median of the D channel and membrane DAB its 95th
    percentile; eosin is the median of the E channel.

    Parameters
    ----------
    rgb : array-like of shape (h, w, 3)
        RGB image in [0, 1].

    Returns
    -------
    dict
        ``background_h``, ``nucleus_h``, ``dab``, ``membrane_dab``, ``eosin``.

    Examples
    --------
    >>> from sparsecode.data.image_files import load_image
    >>> levels = stain_levels(load_image("immunohistochemistry"))
    >>> levels["nucleus_h"] > levels["background_h"]
    True
    """
    rgb = np.asarray(rgb, dtype=float)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must have shape (h, w, 3), got {rgb.shape}.")
    if not np.all(np.isfinite(rgb)) or rgb.min() < 0 or rgb.max() > 1:
        raise ValueError("rgb must hold finite values in [0, 1].")
    hed = _skimage_color().rgb2hed(rgb)
    h, e, d = (hed[..., i].ravel() for i in range(3))
    return {"background_h": float(np.median(h)),
            "nucleus_h": float(np.percentile(h, 95)),
            "dab": float(np.median(d)), "membrane_dab": float(np.percentile(d, 95)),
            "eosin": float(np.median(e))}




def _check_real(value: Any, name: str, low: float, high: float = np.inf, *,
                low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(
            value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}.")
    if (value <= low if low_open else value < low) or value > high:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value}.")
    return float(value)


def _check_stains(stains: Any) -> dict[str, float]:
    if stains is None:
        return dict(STAINS)
    if not isinstance(stains, dict):
        raise TypeError(f"stains must be a dict or None, got {type(stains).__name__}.")
    unknown = set(stains) - set(STAINS)
    if unknown:
        raise ValueError(f"stains has unknown keys {sorted(unknown)}; expected "
                         f"some of {sorted(STAINS)}.")
    out = dict(STAINS)
    for key, value in stains.items():
        out[key] = _check_real(value, f"stains[{key!r}]", 0.0, 5.0)
    return out


def _shape(size: Any) -> tuple[int, int]:
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(f"size must be an int or (h, w), got {size!r}.")
        return check_int(size[0], "size[0]", 8), check_int(size[1], "size[1]", 8)
    side = check_int(size, "size", 8)
    return side, side


def _centres(rng: np.random.RandomState, shape: tuple[int, int], n: int,
             margin: float, min_distance: float) -> np.ndarray:
    """``n`` centres at least ``min_distance`` apart (dart throwing)."""
    lo, hi = margin, np.array(shape, float) - 1 - margin
    if np.any(hi <= lo):
        raise ValueError(f"size {shape} is too small for nuclei of this radius.")
    kept = np.empty((0, 2))
    if n == 0:
        return kept
    for _ in range(200):
        cand = rng.uniform(lo, hi, size=(4 * n, 2))
        for c in cand:
            if len(kept) == n:
                return kept
            if not len(kept) or np.min(np.hypot(*(kept - c).T)) >= min_distance:
                kept = np.vstack([kept, c])
    raise ValueError(f"could not place n_nuclei={n} centres {min_distance:g} px "
                     f"apart in a {shape[0]}x{shape[1]} image; lower n_nuclei "
                     "or min_distance.")


def _nuclei(rng: np.random.RandomState, shape: tuple[int, int], centres: np.ndarray,
            radius: float, elongation: float, intensity_var: float) -> np.ndarray:
    """Hematoxylin of the nuclei: soft ellipses of random size, axis ratio,
    angle and strength, with a speckled (chromatin-like) texture."""
    k = len(centres)
    a = radius * rng.uniform(0.8, 1.2, k) * np.sqrt(rng.uniform(1, elongation, k))
    b = radius**2 * rng.uniform(0.8, 1.2, k) / a
    theta = rng.uniform(0, np.pi, k)
    amp = rng.uniform(1 - intensity_var, 1 + intensity_var, k)
    rr, cc = np.mgrid[: shape[0], : shape[1]].astype(float)
    dr = rr[None] - centres[:, 0, None, None]
    dc = cc[None] - centres[:, 1, None, None]
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    u, v = dr * cos + dc * sin, -dr * sin + dc * cos
    rho = np.sqrt((u / a[:, None, None]) ** 2 + (v / b[:, None, None]) ** 2)
    masks = 1.0 / (1.0 + np.exp((rho - 1.0) * 6.0))  # soft edge, ~1 px wide
    texture = 1 + 0.25 * ndimage.gaussian_filter(rng.normal(size=shape), 1.0) / 0.28
    return (amp[:, None, None] * masks).sum(0) * np.clip(texture, 0.3, None)


def _smooth_field(rng: np.random.RandomState, shape: tuple[int, int],
                  sigma: float) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.normal(size=shape), sigma, mode="wrap")
    return f / (f.std() + 1e-12)


def _image(rng: np.random.RandomState, shape: tuple[int, int], centres: np.ndarray,
           p: dict) -> np.ndarray:
    """One RGB image in [0, 1] from its centres and the parameters ``p``."""
    s = p["stains"]
    nuclei = _nuclei(rng, shape, centres, p["radius"], p["elongation"],
                     p["intensity_var"])
    field = _smooth_field(rng, shape, p["radius"])
    ridges = np.exp(-(field / 0.2) ** 2)  # zero crossings: a membrane network
    grain = 0.3 * _smooth_field(rng, shape, 3 * p["radius"]) + 0.2 * _smooth_field(
        rng, shape, 1.0)
    dab = (s["dab"] * np.clip(1 + grain, 0, None)
           + (s["membrane_dab"] - s["dab"]) * ridges)
    h_bg = s["background_h"] * np.clip(
        1 + 0.3 * _smooth_field(rng, shape, 2 * p["radius"]), 0, None)
    h = h_bg + (s["nucleus_h"] - s["background_h"]) * nuclei
    eosin = np.full(shape, s["eosin"])
    hed = np.stack([h, eosin, dab * (1 - 0.7 * np.clip(nuclei, 0, 1))], axis=-1)
    rgb = _skimage_color().hed2rgb(hed)
    if p["blur"] > 0:
        rgb = ndimage.gaussian_filter(rgb, (p["blur"], p["blur"], 0))
    rgb = rgb + p["noise"] * rng.normal(size=rgb.shape)
    return np.clip(rgb, 0.0, 1.0)


def make_histology(
    n_images: int = 8,
    size: int | tuple[int, int] = 128,
    n_nuclei: int = 20,
    *,
    radius: float = 6.0,
    elongation: float = 2.0,
    min_distance: float | None = None,
    intensity_var: float = 0.3,
    blur: float = 1.0,
    noise: float = 0.02,
    stains: dict[str, float] | None = None,
    random_state: Any = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Generate H-DAB histology-like RGB images and their nucleus centres.

    Parameters
    ----------
    n_images : int, default=8
    size : int or (h, w), default=128
        Image side(s), at least 8 pixels.
    n_nuclei : int, default=20
        Nuclei per image (0 gives background only).
    radius : float, default=6.0
        Typical nucleus radius in pixels (each nucleus varies by +-20% and is
        stretched up to ``elongation``; its area stays about ``pi radius**2``).
    elongation : float, default=2.0
        Largest ratio of a nucleus's long to short axis, before the +-20%
        jitter of each axis (>= 1; 1 gives round nuclei).
    min_distance : float, optional
        Closest allowed centres (default ``1.2 * radius``: neighbours touch or
        overlap).
    intensity_var : float, default=0.3
        Each nucleus's stain is scaled by a uniform draw in ``1 +- intensity_var``.
    blur : float, default=1.0
        Gaussian blur (sigma, pixels) of the RGB image.
    noise : float, default=0.02
        Standard deviation of the Gaussian pixel noise added after the blur.
    stains : dict, optional
        Overrides of `STAINS` (``rgb2hed`` concentrations).
    random_state : int, RandomState instance or None

    Returns
    -------
    images : ndarray of shape (n_images, h, w, 3)
        float64 RGB in [0, 1].
    centres : list of ndarray of shape (n_nuclei, 2)
        (row, column) centre of every nucleus of each image, in pixels.

    Examples
    --------
    >>> images, centres = make_histology(2, size=48, n_nuclei=5, random_state=0)
    >>> images.shape, centres[0].shape
    ((2, 48, 48, 3), (5, 2))
    >>> bool(images.min() >= 0 and images.max() <= 1)
    True
    """
    n_images = check_int(n_images, "n_images", 1)
    shape = _shape(size)
    n_nuclei = check_int(n_nuclei, "n_nuclei", 0)
    radius = _check_real(radius, "radius", 1.0)
    p = {"radius": radius,
         "elongation": _check_real(elongation, "elongation", 1.0, 10.0),
         "intensity_var": _check_real(intensity_var, "intensity_var", 0.0, 0.9),
         "blur": _check_real(blur, "blur", 0.0, 20.0),
         "noise": _check_real(noise, "noise", 0.0, 1.0),
         "stains": _check_stains(stains)}
    min_distance = 1.2 * radius if min_distance is None else _check_real(
        min_distance, "min_distance", 0.0)
    rng = check_random_state(random_state)
    images, centres = np.empty((n_images, *shape, 3)), []
    for i in range(n_images):
        c = _centres(rng, shape, n_nuclei, radius, min_distance)
        images[i] = _image(rng, shape, c, p)
        centres.append(c)
    return images, centres
