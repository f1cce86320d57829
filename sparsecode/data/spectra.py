"""Real reflectance spectra (shipped with colour-science) and linear mixtures.

`load_reflectance_spectra` reads measured reflectance spectra of colour
charts and test colour samples that ship inside ``colour-science`` (offline).
`make_unmixing` draws a synthetic hyperspectral image from them by the linear
mixing model ``X = A E + noise``: endmembers ``E`` picked among the spectra,
Dirichlet abundances ``A`` (non-negative, summing to one), capped at a purity,
and white Gaussian noise at a given signal-to-noise ratio; the ground truth
is returned with the data.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

from ._packages import require

__all__ = ["REFLECTANCE_SETS", "load_reflectance_spectra", "make_unmixing"]

#: Names accepted by `load_reflectance_spectra`: colour-science's colour
#: checkers, the CIE 1995 test colour samples ("TCS") and the NIST CQS 9.0
#: samples ("VS").
REFLECTANCE_SETS = ("BabelColor Average", "ColorChecker N Ohta", "ISO 17321-1",
                    "PMC", "TCS", "VS")


def _spectral_sets(name: str) -> dict:
    printing = np.get_printoptions()
    colour = require("colour", "spectra")
    np.set_printoptions(**printing)  # (importing colour changes numpy's)
    if name == "TCS":
        return dict(colour.quality.datasets.SDS_TCS["CIE 1995"])
    if name == "VS":
        return dict(colour.quality.datasets.SDS_VS["NIST CQS 9.0"])
    return dict(colour.SDS_COLOURCHECKERS[name])


def load_reflectance_spectra(
    name: str = "BabelColor Average", *, wavelengths: Any = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Measured reflectance spectra shipped with colour-science.

    Parameters
    ----------
    name : str, default="BabelColor Average"
        One of `REFLECTANCE_SETS`: the 24 patches of the ColorChecker
        ("BabelColor Average", 380-730 nm every 10 nm; "ColorChecker N Ohta"
        and "ISO 17321-1", 380-780 nm every 5 nm), the 30 "PMC" patches
        (400-700 nm), the 14 CIE test colour samples ("TCS") or the 15 NIST
        CQS samples ("VS") (360-830 nm every 5 nm).
    wavelengths : array-like of float, default=None
        Wavelengths (nm) to interpolate the spectra at (linearly), inside the
        measured range; the measured grid when None.

    Returns
    -------
    wavelengths : numpy.ndarray of shape (n_bands,)
    spectra : numpy.ndarray of shape (n_spectra, n_bands)
        Reflectances (mostly in [0, 1]).
    names : list of str
        Patch names.

    Raises
    ------
    ValueError
        If ``name`` is unknown or ``wavelengths`` leaves the measured range.
    ImportError
        If colour-science is not installed (the ``[spectra]`` extra).

    Examples
    --------
    >>> from sparsecode.data.spectra import load_reflectance_spectra
    >>> wl, spectra, names = load_reflectance_spectra()
    >>> float(wl[0]), float(wl[-1]), spectra.shape, names[3]
    (380.0, 730.0, (24, 36), 'foliage')
    """
    if name not in REFLECTANCE_SETS:
        raise ValueError(f"name must be one of {REFLECTANCE_SETS}, got {name!r}.")
    sds = _spectral_sets(name)
    names = list(sds)
    wl = np.asarray(sds[names[0]].wavelengths, dtype=np.float64)
    spectra = np.stack([np.asarray(sds[n].values, dtype=np.float64) for n in names])
    if wavelengths is None:
        return wl, spectra, names
    grid = np.asarray(wavelengths, dtype=np.float64).ravel()
    if grid.size == 0 or not np.all(np.isfinite(grid)) or grid.min() < wl[0] \
            or grid.max() > wl[-1]:
        raise ValueError(f"wavelengths must be finite values in the measured range "
                         f"[{wl[0]:g}, {wl[-1]:g}] nm of {name!r}.")
    return grid, np.stack([np.interp(grid, wl, s) for s in spectra]), names


def _check_number(value: Any, name: str, low: float, high: float,
                  integer: bool = False) -> Any:
    kind = Integral if integer else Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{name} must be {'an int' if integer else 'a real number'}, "
                        f"got {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}.")
    return value


def _pick_endmembers(spectra: np.ndarray, n: int, min_angle: float,
                     rng: np.random.RandomState) -> np.ndarray:
    """Indices of ``n`` spectra, drawn at random among those at least
    ``min_angle`` (radians) from every spectrum already drawn."""
    unit = spectra / np.linalg.norm(spectra, axis=1, keepdims=True)
    angles = np.arccos(np.clip(unit @ unit.T, -1.0, 1.0))
    chosen: list[int] = []
    allowed = np.ones(len(spectra), dtype=bool)
    for _ in range(n):
        candidates = np.flatnonzero(allowed)
        if candidates.size == 0:
            raise ValueError(f"cannot pick {n} endmembers pairwise at least "
                             f"min_angle={min_angle} rad apart from these "
                             f"{len(spectra)} spectra; lower min_angle or "
                             f"n_endmembers.")
        chosen.append(int(rng.choice(candidates)))
        allowed &= angles[chosen[-1]] >= min_angle
    return np.array(chosen)


def _draw_endmembers(library: np.ndarray, n: int, min_angle: float,
                     max_condition: float | None,
                     rng: np.random.RandomState) -> np.ndarray:
    """`_pick_endmembers` redrawn until the set is well conditioned."""
    for _ in range(1000):
        E = library[_pick_endmembers(library, n, min_angle, rng)]
        if max_condition is None or np.linalg.cond(E) <= max_condition:
            return E
    raise ValueError(f"no {n} spectra with condition number <= max_condition="
                     f"{max_condition} found in 1000 draws; raise max_condition "
                     f"or lower n_endmembers.")


def _cap_purity(A: np.ndarray, purity: float) -> np.ndarray:
    """Shrink the rows whose largest abundance exceeds ``purity`` towards the
    simplex centre until it equals ``purity`` (sums stay one)."""
    r = A.shape[1]
    top = A.max(axis=1, keepdims=True)
    over = top > purity
    shrink = np.where(over, (purity - 1 / r) / np.maximum(top - 1 / r, 1e-300), 1.0)
    return 1 / r + shrink * (A - 1 / r)


def _dirichlet(n_pixels: Any, r: int, concentration: float, smoothness: float,
               rng: np.random.RandomState) -> np.ndarray:
    """Dirichlet rows; on an image, from spatially smooth Gamma fields (a
    Gaussian copula), so that each pixel is still exactly Dirichlet."""
    if isinstance(n_pixels, Integral):
        return rng.dirichlet(np.full(r, concentration), size=int(n_pixels))
    from scipy.ndimage import gaussian_filter
    from scipy.special import ndtr
    from scipy.stats import gamma

    fields = rng.standard_normal((r, *n_pixels))
    fields = np.stack([gaussian_filter(f, smoothness, mode="wrap") for f in fields])
    fields = (fields - fields.mean()) / fields.std()
    g = gamma.ppf(np.clip(ndtr(fields), 1e-12, 1 - 1e-12), concentration)
    g = g.reshape(r, -1).T
    return g / g.sum(1, keepdims=True)


def make_unmixing(
    n_pixels: int | tuple[int, int] = 1000,
    n_endmembers: int = 4,
    *,
    snr_db: float | None = 30.0,
    purity: float = 1.0,
    concentration: float = 1.0,
    smoothness: float = 4.0,
    spectra: str = "BabelColor Average",
    min_angle: float = 0.2,
    max_condition: float | None = 30.0,
    random_state: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A linear mixture of real reflectance spectra, with its ground truth.

    Each pixel is ``x = a E + e``: ``E`` holds ``n_endmembers`` spectra of the
    set ``spectra`` (`load_reflectance_spectra`), drawn at random so that
    every two are at least ``min_angle`` apart (no nearly collinear pair) and
    the condition number of ``E`` is at most ``max_condition`` (redrawn up to
    1000 times: a very dark spectrum such as a black patch is nearly the
    origin and makes unmixing ill-posed);
    ``a ~ Dirichlet(concentration)`` is then capped at ``purity`` (a row whose
    largest abundance exceeds it is moved towards the simplex centre until it
    equals ``purity``, so with ``purity < 1`` there are no pure pixels); ``e``
    is white Gaussian noise with ``10 log10(mean ||aE||^2 / mean ||e||^2) =
    snr_db``. The noise is not clipped, so low SNRs give a few negative
    values.

    Parameters
    ----------
    n_pixels : int or (int, int), default=1000
        A number of independent pixels, or an image shape ``(height,
        width)``: pixels in row-major order whose abundances vary smoothly in
        space (independent Gamma variates of each endmember are made from
        Gaussian fields smoothed over ``smoothness`` pixels, through the
        normal and Gamma distribution functions, and normalised: each pixel
        is still Dirichlet, neighbours are alike).
    n_endmembers : int, default=4
    snr_db : float or None, default=30.0
        Signal-to-noise ratio in dB; None for no noise.
    purity : float, default=1.0
        Largest abundance of any pixel, in ``(1/n_endmembers, 1]``.
    concentration : float, default=1.0
        Dirichlet concentration (1: uniform on the simplex; smaller values
        give purer pixels, larger ones more mixed).
    smoothness : float, default=4.0
        Width (pixels) of the spatial smoothing on an image.
    spectra : str, default="BabelColor Average"
        A name of `REFLECTANCE_SETS`.
    min_angle : float, default=0.2
        Smallest spectral angle (radians) between two endmembers.
    max_condition : float or None, default=30.0
        Largest condition number (ratio of extreme singular values) of the
        endmember matrix; None for no limit.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    X : numpy.ndarray of shape (n_pixels, n_bands)
        (``height * width`` rows for an image.)
        The noisy pixels.
    endmembers : numpy.ndarray of shape (n_endmembers, n_bands)
    abundances : numpy.ndarray of shape (n_pixels, n_endmembers)
        Non-negative, rows summing to one.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode.data.spectra import make_unmixing
    >>> X, E, A = make_unmixing(500, 3, snr_db=30, purity=0.9, random_state=0)
    >>> X.shape, E.shape, bool(np.allclose(A.sum(1), 1)), bool(A.max() <= 0.9 + 1e-12)
    ((500, 36), (3, 36), True, True)
    """
    if isinstance(n_pixels, tuple | list) and len(n_pixels) == 2:
        for size in n_pixels:
            _check_number(size, "n_pixels (an image shape)", 1, np.inf, integer=True)
        n_pixels = (int(n_pixels[0]), int(n_pixels[1]))
        _check_number(smoothness, "smoothness", 0, np.inf)
    else:
        _check_number(n_pixels, "n_pixels", 1, np.inf, integer=True)
    _check_number(n_endmembers, "n_endmembers", 2, np.inf, integer=True)
    if snr_db is not None:
        _check_number(snr_db, "snr_db", -np.inf, np.inf)
    _check_number(purity, "purity", 0, 1)
    if purity <= 1 / n_endmembers:
        raise ValueError(f"purity must be > 1/n_endmembers = {1 / n_endmembers:.4g}, "
                         f"got {purity}.")
    _check_number(concentration, "concentration", 1e-3, np.inf)
    _check_number(min_angle, "min_angle", 0, np.pi / 2)
    if max_condition is not None:
        _check_number(max_condition, "max_condition", 1, np.inf)
    rng = check_random_state(random_state)
    _, library, _ = load_reflectance_spectra(spectra)
    if n_endmembers > len(library):
        raise ValueError(f"n_endmembers={n_endmembers} exceeds the {len(library)} "
                         f"spectra of {spectra!r}.")
    E = _draw_endmembers(library, n_endmembers, min_angle, max_condition, rng)
    A = _cap_purity(_dirichlet(n_pixels, n_endmembers, float(concentration),
                               float(smoothness), rng), purity)
    X = A @ E
    if snr_db is not None:
        sigma = np.sqrt(np.mean(X**2) / 10 ** (snr_db / 10))
        X = X + sigma * rng.standard_normal(X.shape)
    return X, E, A
