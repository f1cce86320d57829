"""Synthetic data with known ground-truth features (Sharkey et al. 2022).

``make_superposition`` draws ``n_true`` unit directions in ``n_features``
dimensions (more directions than dimensions gives superposition) and forms each
sample as a sparse non-negative combination of them. Feature ``i`` is active with a
probability decaying like ``decay**i``; activations may be correlated through a
Gaussian copula. Dictionary learners and sparse autoencoders can then be scored
against the truth with :func:`sparsecode.metrics.mmcs`.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtr
from sklearn.utils import check_random_state

from ._checks import check_int

__all__ = ["make_superposition"]

_COEF_KINDS = ("uniform", "exponential", "lognormal")


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------
def _check_real(
    value: Any, name: str, low: float, high: float, low_open: bool
) -> float:
    """Return ``value`` as float, raising ValueError unless it lies in the range."""
    if isinstance(value, bool) or not isinstance(value, Real) or np.isnan(value):
        raise ValueError(f"{name} must be a real number, got {value!r}.")
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value}.")
    return float(value)


def _check_params(
    n_true: int,
    mean_active: float,
    decay: float,
    correlated: bool,
    correlation: float,
    coef: str,
    dtype: Any,
) -> np.dtype:
    """Validate the distribution parameters; return the output dtype."""
    _check_real(mean_active, "mean_active", 0.0, float(n_true), low_open=True)
    _check_real(decay, "decay", 0.0, 1.0, low_open=True)
    _check_real(correlation, "correlation", -1.0, 1.0, low_open=False)
    if coef not in _COEF_KINDS:
        raise ValueError(f"coef must be one of {_COEF_KINDS}, got {coef!r}.")
    if correlated and n_true < 2:
        raise ValueError("correlated=True needs n_true >= 2.")
    out_dtype = np.dtype(dtype)
    if out_dtype.kind != "f":
        raise ValueError(f"dtype must be a floating dtype, got {out_dtype}.")
    return out_dtype


# ---------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------
def _activation_probabilities(
    n_true: int, mean_active: float, decay: float
) -> np.ndarray:
    """Probabilities ``p_i = min(1, c * decay**i)`` with ``sum_i p_i = mean_active``.

    The scale ``c`` is found by water-filling: the first ``k`` (most frequent)
    features are clipped to probability 1 and the rest rescaled, with the
    smallest ``k`` that keeps every probability <= 1. When no clipping is needed
    this is just ``mean_active * decay**i / sum_j decay**j``.
    """
    weights = decay ** np.arange(n_true, dtype=np.float64)
    tails = np.cumsum(weights[::-1])[::-1]  # tails[k] = sum_{i >= k} weights[i]
    n_clipped = np.arange(n_true)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (mean_active - n_clipped) / tails
        valid = scale * weights <= 1.0 + 1e-12
    if not np.any(valid):
        raise ValueError(
            f"decay={decay} is too small to reach mean_active={mean_active} "
            "(the probabilities underflow)."
        )
    k = int(np.argmax(valid))
    probs = np.ones(n_true)
    probs[k:] = np.minimum(scale[k] * weights[k:], 1.0)
    return probs


def _unit_rows(rng: np.random.RandomState, n_rows: int, n_cols: int) -> np.ndarray:
    """Gaussian random rows normalised to unit Euclidean norm."""
    rows = rng.standard_normal((n_rows, n_cols))
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    while np.any(norms == 0):  # measure-zero event, kept for correctness
        bad = norms[:, 0] == 0
        rows[bad] = rng.standard_normal((int(bad.sum()), n_cols))
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / norms


def _copula_factor(
    rng: np.random.RandomState, n_true: int, correlation: float, n_partners: int
) -> sp.csr_array:
    """Sparse factor ``B`` with ``B.T @ B = I + correlation * S`` (unit diagonal).

    A random graph links each feature to ``n_partners`` random others (so on
    average ``2 * n_partners`` neighbours), with edge weights ``w ~ U(0, 1)``.
    Each edge ``(i, j)`` contributes a row ``sqrt(w) * (e_i + s * e_j)`` with
    ``s = sign(correlation)`` (signless / signed graph incidence). Scaling column
    ``i`` by ``d_i**-0.5`` (``d_i`` the weighted degree) gives unit variances and
    off-diagonal correlations ``s * w_ij / sqrt(d_i d_j)``: all of the sign of
    ``correlation``. Mixing with independent noise (done by the caller) scales
    them by ``|correlation|``.
    """
    n_edges = n_true * n_partners
    src = np.repeat(np.arange(n_true), n_partners)
    dst = (src + rng.randint(1, n_true, size=n_edges)) % n_true  # never src
    sqrt_w = np.sqrt(1.0 - rng.random_sample(n_edges))  # w in (0, 1]
    sign = 1.0 if correlation >= 0 else -1.0
    rows = np.concatenate([np.arange(n_edges), np.arange(n_edges)])
    cols = np.concatenate([src, dst])
    vals = np.concatenate([sqrt_w, sign * sqrt_w])
    incidence = sp.csr_array((vals, (rows, cols)), shape=(n_edges, n_true))
    degree = np.bincount(cols, weights=np.concatenate([sqrt_w, sqrt_w]) ** 2)
    return incidence @ sp.diags_array(1.0 / np.sqrt(degree))


def _correlated_uniforms(
    rng: np.random.RandomState,
    n_samples: int,
    n_true: int,
    correlation: float,
    n_partners: int,
) -> np.ndarray:
    """Uniform(0, 1) marginals with a Gaussian-copula dependence.

    ``Z = sqrt(1 - |c|) G + sqrt(|c|) E @ B`` with ``G``, ``E`` standard normal, so
    ``Z`` has unit variances and correlation matrix ``I + c * S``;
    ``norm.cdf(Z)`` then has exactly uniform marginals.
    """
    factor = _copula_factor(rng, n_true, correlation, n_partners)
    strength = abs(correlation)
    # Work in (n_true, n_samples) layout so the sparse product needs no copies.
    z_T = np.sqrt(1.0 - strength) * rng.standard_normal((n_true, n_samples))
    edge_noise_T = rng.standard_normal((factor.shape[0], n_samples))
    z_T += np.sqrt(strength) * (factor.T @ edge_noise_T)
    return ndtr(z_T).T  # ndtr is the standard normal CDF (scipy.stats.norm.cdf)


def _coefficients(rng: np.random.RandomState, size: int, coef: str) -> np.ndarray:
    """Positive coefficient magnitudes for ``size`` active (sample, feature) pairs."""
    if coef == "uniform":
        return 1.0 - rng.random_sample(size)  # U(0, 1], never exactly 0
    if coef == "exponential":
        return rng.exponential(1.0, size=size)
    return rng.lognormal(0.0, 1.0, size=size)


# ---------------------------------------------------------------------------
# public generator
# ---------------------------------------------------------------------------
def make_superposition(
    n_samples: int,
    n_features: int,
    n_true: int,
    *,
    mean_active: float = 5.0,
    decay: float = 0.99,
    correlated: bool = False,
    correlation: float = 0.5,
    n_partners: int = 2,
    coef: str = "uniform",
    dtype: Any = np.float32,
    random_state: Any = None,
    return_probs: bool = False,
    return_codes: bool = False,
) -> tuple[np.ndarray, ...]:
    """Sparse combinations of ground-truth directions (Sharkey et al. 2022).

    Draws ``n_true`` ground-truth directions (Gaussian, rows normalised to unit
    norm) in ``n_features`` dimensions. Sample ``x = sum_i a_i c_i f_i`` where
    ``a_i`` is a Bernoulli activation with probability ``p_i``, ``c_i > 0`` a
    random coefficient and ``f_i`` the i-th direction.

    The probabilities are ``p_i = min(1, s * decay**i)`` with the scale ``s``
    chosen so that ``sum_i p_i = mean_active`` (the expected number of active
    features per sample). When the plain rescaling would push the most frequent
    features above 1, they are clipped to 1 and the remaining ones rescaled so
    the expectation is still exactly ``mean_active``.

    Parameters
    ----------
    n_samples : int
        Number of samples.
    n_features : int
        Dimension of the data space.
    n_true : int
        Number of ground-truth features (``n_true > n_features`` gives
        superposition; Sharkey et al. use 512 in 256 dimensions).
    mean_active : float, default=5.0
        Expected number of active features per sample, in ``(0, n_true]``.
    decay : float, default=0.99
        Ratio between consecutive feature probabilities, in ``(0, 1]``
        (1 gives equal probabilities).
    correlated : bool, default=False
        If True, activations are dependent: a Gaussian vector ``Z`` with a random
        sparse correlation matrix is mapped through the normal CDF to uniforms
        ``U`` and feature ``i`` is active when ``U_i < p_i``, so the marginal
        probabilities are still exactly ``p_i``.
    correlation : float, default=0.5
        Strength and sign of the dependence in ``[-1, 1]``, used only when
        ``correlated=True``. Every nonzero off-diagonal entry of the latent
        Gaussian correlation matrix has the sign of ``correlation`` and magnitude
        ``|correlation| * w_ij / sqrt(d_i d_j)`` (random weights ``w``, weighted
        degrees ``d``), so activation indicators of linked features are
        positively correlated for ``correlation > 0`` (they fire together) and
        negatively for ``correlation < 0`` (they tend to exclude each other).
    n_partners : int, default=2
        Used only when ``correlated=True``: each feature is linked to this many
        random partners (about ``2 * n_partners`` neighbours on average); fewer
        partners give fewer but stronger pairwise correlations.
    coef : {"uniform", "exponential", "lognormal"}, default="uniform"
        Distribution of the coefficients of active features: ``U(0, 1]`` (as in
        the paper), ``Exp(1)`` or ``exp(N(0, 1))``.
    dtype : numpy dtype, default=numpy.float32
        Floating dtype of the returned ``X``, ``true_features`` and codes.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducibility (see :func:`sklearn.utils.check_random_state`).
    return_probs : bool, default=False
        If True, also return the activation probabilities.
    return_codes : bool, default=False
        If True, also return the codes (coefficient times activation).

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, n_features)
        The data, ``X = codes @ true_features``.
    true_features : numpy.ndarray of shape (n_true, n_features)
        The ground-truth unit directions, one per row.
    probs : numpy.ndarray of shape (n_true,), float64
        Activation probabilities ``p_i`` (non-increasing, sum ``mean_active``).
        Only when ``return_probs=True``.
    codes : numpy.ndarray of shape (n_samples, n_true)
        Non-negative codes, zero where a feature is inactive. Only when
        ``return_codes=True`` (returned last).

    Raises
    ------
    ValueError
        For invalid sizes or parameters.

    References
    ----------
    L. Sharkey, D. Braun, B. Millidge, "Taking features out of superposition
    with sparse autoencoders", AI Alignment Forum, 2022.

    Examples
    --------
    >>> from sparsecode.data.toy import make_superposition
    >>> X, F = make_superposition(1000, 16, 32, mean_active=3, random_state=0)
    >>> X.shape, F.shape
    ((1000, 16), (32, 16))
    """
    n_samples = check_int(n_samples, "n_samples", 1)
    n_features = check_int(n_features, "n_features", 1)
    n_true = check_int(n_true, "n_true", 1)
    n_partners = check_int(n_partners, "n_partners", 1)
    out_dtype = _check_params(
        n_true, mean_active, decay, correlated, correlation, coef, dtype
    )
    rng = check_random_state(random_state)

    true_features = _unit_rows(rng, n_true, n_features)
    probs = _activation_probabilities(n_true, float(mean_active), float(decay))
    if correlated:
        u = _correlated_uniforms(rng, n_samples, n_true, correlation, n_partners)
    else:
        u = rng.random_sample((n_samples, n_true))
    active = u < probs
    codes = np.zeros((n_samples, n_true))
    codes[active] = _coefficients(rng, int(np.count_nonzero(active)), coef)
    X = codes @ true_features

    out = (X.astype(out_dtype), true_features.astype(out_dtype))
    if return_probs:
        out += (probs,)
    if return_codes:
        out += (codes.astype(out_dtype),)
    return out
