"""Sparse coding against a fixed dictionary: `sparse_encode` and its tensor core.

Maps scikit-learn's algorithm names to the torch solvers of
`sparsecode.solvers` that minimise the same problem:

==============  ==========================================================
name            solver
==============  ==========================================================
``lasso_lars``  exact lasso by the batched homotopy (`solvers.lasso_lars`)
``lasso_cd``    the same exact lasso (sklearn's CD minimises the same
                problem; the homotopy reaches its minimiser exactly)
``fista``       batched FISTA, warm-started from ``init``
``ista``        batched ISTA, warm-started from ``init``
``lars``        batched LARS stopped at ``n_nonzero_coefs`` atoms
``omp``         batched orthogonal matching pursuit
``threshold``   soft thresholding of ``X V^T`` (no rescaling)
==============  ==========================================================

The lasso is ``0.5 * ||x - u V||^2 + alpha * ||u||_1`` per sample, the scaling
of scikit-learn's `sparse_encode`.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
import torch
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array

from .. import solvers
from .._utils import one_thread
from ..base import resolve_device, torch_dtype

__all__ = [
    "ALGORITHMS",
    "check_algorithm",
    "encode_chunks",
    "encode_tensor",
    "sparse_encode",
    "warn_not_converged",
]

ALGORITHMS = ("lasso_lars", "lasso_cd", "lars", "omp", "threshold", "fista", "ista")
_GREEDY = ("lars", "omp")
_CHUNK = 65536


def check_algorithm(algorithm: Any, positive: bool, name: str = "algorithm") -> str:
    """Validate an algorithm name and its compatibility with ``positive``."""
    if algorithm not in ALGORITHMS:
        raise ValueError(
            f"{name} must be one of {list(ALGORITHMS)}, got {algorithm!r}."
        )
    if positive and algorithm in _GREEDY:
        raise ValueError(
            f"Positive constraint not supported for '{algorithm}' coding method."
        )
    return algorithm


def default_n_nonzero(n_features: int, n_components: int) -> int:
    """sklearn's default number of nonzeros for omp/lars."""
    return int(min(max(n_features / 10, 1), n_components))


def encode_tensor(
    X: torch.Tensor,
    V: torch.Tensor,
    *,
    algorithm: str = "lasso_lars",
    alpha: float | None = None,
    n_nonzero_coefs: int | None = None,
    init: torch.Tensor | None = None,
    max_iter: int = 1000,
    positive: bool = False,
    tol: float = 1e-6,
    G: torch.Tensor | None = None,
) -> solvers.SolverResult:
    """Encode the rows of ``X`` against atoms ``V`` (both tensors, same device)."""
    result = _encode(X, V, algorithm, alpha, n_nonzero_coefs, init, max_iter,
                     positive, tol, G)
    if not bool(torch.isfinite(result.codes).all()):
        raise FloatingPointError(
            f"Sparse coding with algorithm={algorithm!r} produced non-finite codes; "
            "check the dictionary for NaN/inf or degenerate (zero) atoms."
        )
    return result


def _encode(X, V, algorithm, alpha, n_nonzero_coefs, init, max_iter, positive, tol,
            G) -> solvers.SolverResult:
    if G is None:
        G = V @ V.T
    C = X @ V.T
    if algorithm in _GREEDY:
        k = n_nonzero_coefs or default_n_nonzero(X.shape[1], V.shape[0])
        return solvers.SOLVERS[algorithm](G, C, k)
    alpha = 1.0 if alpha is None else float(alpha)
    if algorithm == "threshold":
        return solvers.threshold(C, alpha, positive)
    if algorithm in ("lasso_lars", "lasso_cd"):
        return solvers.lasso_lars(G, C, alpha, max_iter=max_iter, positive=positive)
    x_sq = (X * X).sum(1)
    return solvers.SOLVERS[algorithm](
        G, C, alpha, init=init, max_iter=max_iter, tol=tol, positive=positive,
        x_sq=x_sq,
    )


def warn_not_converged(result: solvers.SolverResult, algorithm: str) -> None:
    """Emit sklearn's ConvergenceWarning when an iterative solver hit max_iter."""
    if not result.converged:
        warnings.warn(
            f"Sparse coding with algorithm={algorithm!r} did not converge in "
            f"{result.n_iter} iterations; increase max_iter (transform_max_iter).",
            ConvergenceWarning,
            stacklevel=3,
        )


def _as_tensor(a: Any, device: torch.device, dtype: torch.dtype | None) -> torch.Tensor:
    t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
    return t.to(device=device, dtype=dtype or t.dtype)


def sparse_encode(
    X: Any,
    dictionary: Any,
    *,
    gram: Any = None,
    cov: Any = None,
    algorithm: str = "lasso_lars",
    n_nonzero_coefs: int | None = None,
    alpha: float | None = None,
    copy_cov: bool = True,
    init: Any = None,
    max_iter: int = 1000,
    n_jobs: int | None = None,
    check_input: bool = True,
    verbose: int = 0,
    positive: bool = False,
    device: str | torch.device | None = None,
) -> np.ndarray | torch.Tensor:
    """Sparse coding, with scikit-learn's signature and objective, on torch.

    Each row of the result solves
    ``min_u 0.5 * ||x - u V||^2 + alpha * ||u||_1`` (lasso algorithms), or is
    the OMP/LARS code with ``n_nonzero_coefs`` atoms, or the soft threshold.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
    dictionary : array-like or torch.Tensor of shape (n_components, n_features)
    gram : array-like of shape (n_components, n_components), optional
        Precomputed ``dictionary @ dictionary.T``.
    cov : ignored
        Accepted for compatibility; correlations are computed on the device.
    algorithm : {"lasso_lars", "lasso_cd", "lars", "omp", "threshold", \
"fista", "ista"}, default="lasso_lars"
    n_nonzero_coefs : int, optional
        For ``omp``/``lars``; default ``min(max(n_features / 10, 1), n_components)``.
    alpha : float, optional
        L1 penalty (threshold for ``threshold``); default 1. Ignored by omp/lars.
    copy_cov : bool
        Accepted for compatibility (inputs are never modified).
    init : array-like of shape (n_samples, n_components), optional
        Warm start for ``fista``/``ista``.
    max_iter : int, default=1000
        Iterations of ``fista``/``ista``, or breakpoints of the lasso homotopy.
    n_jobs : int, optional
        Number of joblib workers (threads) over chunks of samples.
    check_input : bool
        Validate ``X`` and ``dictionary``.
    verbose : int
        Unused; accepted for compatibility.
    positive : bool
        Constrain codes to be non-negative (not for omp/lars).
    device : str or torch.device, optional
        Where to compute; default: ``X``'s device for tensors, else the CPU.

    Returns
    -------
    codes : ndarray or torch.Tensor of shape (n_samples, n_components)
        A tensor on ``X``'s device when ``X`` is a tensor.
    """
    check_algorithm(algorithm, positive)
    as_tensor = isinstance(X, torch.Tensor)
    if check_input and not as_tensor:
        X = check_array(X, dtype=[np.float64, np.float32])
    if check_input and not isinstance(dictionary, torch.Tensor):
        dictionary = check_array(dictionary, dtype=[np.float64, np.float32])
    dev = resolve_device(device) if device is not None else (
        X.device if as_tensor else torch.device("cpu")
    )
    Xt = _as_tensor(X, dev, None)
    if not Xt.is_floating_point():
        Xt = Xt.to(torch.float32)
    dtype = torch_dtype(Xt.dtype)
    V = _as_tensor(dictionary, dev, dtype)
    _check_shapes(Xt, V, init)
    G = _as_tensor(gram, dev, dtype) if gram is not None else V @ V.T
    init_t = _as_tensor(init, dev, dtype) if init is not None else None
    kw = dict(
        algorithm=algorithm, alpha=alpha, n_nonzero_coefs=n_nonzero_coefs,
        max_iter=max_iter, positive=positive, G=G,
    )
    codes = encode_chunks(Xt, V, init_t, n_jobs=n_jobs, **kw)
    return codes.to(X.device) if as_tensor else codes.cpu().numpy()


def _check_shapes(X: torch.Tensor, V: torch.Tensor, init: Any) -> None:
    if X.ndim != 2 or V.ndim != 2:
        raise ValueError("X and dictionary must be 2D arrays.")
    if X.shape[1] != V.shape[1]:
        raise ValueError(
            f"Dictionary and X have different numbers of features: dictionary has "
            f"{V.shape[1]}, X has {X.shape[1]}."
        )
    if init is not None and tuple(np.shape(init)) != (X.shape[0], V.shape[0]):
        raise ValueError(
            f"init must have shape {(X.shape[0], V.shape[0])}, got {np.shape(init)}."
        )


def encode_chunks(
    X: torch.Tensor,
    V: torch.Tensor,
    init: torch.Tensor | None = None,
    *,
    n_jobs: int | None = None,
    chunk_size: int = _CHUNK,
    **kw: Any,
) -> torch.Tensor:
    """`encode_tensor` over chunks of rows (bounded memory), optionally in threads.

    On the CPU every torch operation runs on one intra-op thread; ``n_jobs``
    chunks run in parallel threads instead (see `sparsecode._utils.one_thread`).

    Warns `ConvergenceWarning` once if any chunk did not converge.
    """
    if n_jobs is not None and not isinstance(n_jobs, numbers.Integral):
        raise TypeError(f"n_jobs must be an int or None, got {n_jobs!r}.")
    n = X.shape[0]
    n_workers = effective_n_jobs(n_jobs)
    size = min(chunk_size, max(1, -(-n // n_workers)))
    bounds = [(i, min(i + size, n)) for i in range(0, n, size)]

    def run(lo: int, hi: int) -> solvers.SolverResult:
        sub = None if init is None else init[lo:hi]
        return encode_tensor(X[lo:hi], V, init=sub, **kw)

    with one_thread(X.device):  # parallel over chunks (n_jobs), not within ops
        if n_workers == 1 or len(bounds) == 1:
            results = [run(lo, hi) for lo, hi in bounds]
        else:
            results = Parallel(n_jobs=n_workers, prefer="threads")(
                delayed(run)(lo, hi) for lo, hi in bounds
            )
    for res in results:
        if not res.converged:
            warn_not_converged(res, kw.get("algorithm", ""))
            break
    return torch.cat([r.codes for r in results], 0)
