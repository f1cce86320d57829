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

import math
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from .. import solvers
from .._guards import reject_bools
from .._utils import one_thread
from ..base import DeviceOption, check_tensor, resolve_device

__all__ = ["ALGORITHMS", "CHUNK_BYTES", "MAX_ROWS", "check_algorithm", "chunk_rows",
           "encode_chunks", "encode_tensor", "sparse_encode", "warn_not_converged"]

ALGORITHMS = ("lasso_lars", "lasso_cd", "lars", "omp", "threshold", "fista", "ista")
_GREEDY = ("lars", "omp")
#: working memory of one chunk of `encode_chunks`, and rows per chunk at most
CHUNK_BYTES = {"cpu": 128 * 2**20, "other": 1024 * 2**20}
MAX_ROWS = {"cpu": 1024, "other": 65536}


def check_algorithm(algorithm: Any, positive: bool, name: str = "algorithm") -> str:
    """Validate an algorithm name and its compatibility with ``positive``."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{name} must be one of {list(ALGORITHMS)}, got "
                         f"{algorithm!r}.")
    if positive and algorithm in _GREEDY:
        raise ValueError(f"Positive constraint not supported for '{algorithm}' "
                         "coding method.")
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
            "check the dictionary for NaN/inf or degenerate (zero) atoms.")
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
        x_sq=x_sq)


def warn_not_converged(result: solvers.SolverResult, algorithm: str) -> None:
    """Emit sklearn's ConvergenceWarning when an iterative solver hit max_iter."""
    if not result.converged:
        warnings.warn(
            f"Sparse coding with algorithm={algorithm!r} did not converge in "
            f"{result.n_iter} iterations; increase max_iter (transform_max_iter).",
            ConvergenceWarning, stacklevel=3)


def _as_tensor(a: Any, device: torch.device, dtype: torch.dtype | None) -> torch.Tensor:
    t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
    return t.to(device=device, dtype=dtype or t.dtype)


def _check_tensor(t: torch.Tensor, name: str) -> None:
    """`check_array` for a tensor: dense (`check_tensor`), 2-D, real, finite."""
    check_tensor(t, name)
    if t.ndim != 2 or t.shape[0] < 1 or t.shape[1] < 1 or t.is_complex():
        raise ValueError(f"Expected a non-empty 2D real {name}, got a {t.dtype} "
                         f"tensor of shape {tuple(t.shape)}.")
    if t.is_floating_point() and not math.isfinite(
            float(torch.linalg.vector_norm(t, math.inf))):
        raise ValueError(f"Input {name} contains NaN or infinity.")


_ARRAY, _ARRAY_OR_NONE, _BOOL = ["array-like"], ["array-like", None], ["boolean"]


_CONSTRAINTS = {  # sparse_encode's, as sklearn 1.9 declares them (plus device)
    "X": _ARRAY, "dictionary": _ARRAY, "gram": _ARRAY_OR_NONE, "cov": _ARRAY_OR_NONE,
    "algorithm": [StrOptions(set(ALGORITHMS))],
    "n_nonzero_coefs": [Interval(Integral, 1, None, closed="left"), None],
    "alpha": [Interval(Real, 0, None, closed="left"), None], "copy_cov": _BOOL,
    "init": _ARRAY_OR_NONE, "max_iter": [Interval(Integral, 0, None, closed="left")],
    "n_jobs": [Integral, None], "check_input": _BOOL, "verbose": ["verbose"],
    "positive": _BOOL, "device": [DeviceOption(), None]}


@validate_params(_CONSTRAINTS, prefer_skip_nested_validation=True)
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

    Each row of the result solves ``min_u 0.5 * ||x - u V||^2 + alpha * ||u||_1`` (lasso
    algorithms), or is the OMP/LARS code with ``n_nonzero_coefs`` atoms, or the soft
    threshold. Parameters are validated as by scikit-learn's `sparse_encode` (its
    ``InvalidParameterError``, a ``ValueError``, and messages); with ``check_input``,
    ``X`` and ``dictionary`` (arrays or tensors) must be finite, non-empty and 2-D.

    The rows are coded in chunks by `encode_chunks`: each chunk's working
    memory is bounded (`chunk_rows`), chunks run through `joblib.Parallel`
    with ``n_jobs`` under the active joblib backend (threads by default;
    ``joblib.parallel_config(backend="loky")``, Dask or Ray for processes),
    and the chunks do not depend on ``n_jobs`` or the backend, so neither
    does the result. A `numpy.memmap` ``X`` is read one chunk at a time: only
    the result and the chunks in flight are held in memory.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
    dictionary : array-like or torch.Tensor of shape (n_components, n_features)
    gram : array-like of shape (n_components, n_components), optional
        Precomputed ``dictionary @ dictionary.T``.
    cov, copy_cov, verbose : ignored
        Accepted for compatibility (correlations are computed on the device;
        inputs are never modified).
    algorithm : {"lasso_lars", "lasso_cd", "lars", "omp", "threshold", \
"fista", "ista"}, default="lasso_lars"
    n_nonzero_coefs : int >= 1, optional
        For ``omp``/``lars``; default ``min(max(n_features / 10, 1), n_components)``.
    alpha : float >= 0, optional
        L1 penalty (threshold for ``threshold``); default 1. Ignored by omp/lars.
    init : array-like of shape (n_samples, n_components), optional
        Warm start for ``fista``/``ista``.
    max_iter : int >= 0, default=1000
        Iterations of ``fista``/``ista``, or breakpoints of the lasso homotopy.
    n_jobs : int, optional
        Joblib workers over chunks of samples (None: the active
        `joblib.parallel_config`'s, else 1; -1: all cores).
    check_input : bool
        Validate ``X`` and ``dictionary``.
    positive : bool
        Constrain codes to be non-negative (not for omp/lars).
    device : str or torch.device, optional
        Where to compute (rows move there a chunk at a time); default:
        ``X``'s device for tensors, else the CPU.

    Returns
    -------
    codes : ndarray or torch.Tensor of shape (n_samples, n_components)
        A tensor on ``X``'s device when ``X`` is a tensor.

    Examples
    --------
    With orthonormal atoms, the lasso code is the soft-thresholded correlation:

    >>> from sparsecode import sparse_encode
    >>> V = [[1.0, 0.0], [0.0, 1.0]]
    >>> sparse_encode([[3.0, 0.5]], V, alpha=1.0, device="cpu").tolist()
    [[2.0, 0.0]]
    """
    check_algorithm(algorithm, positive)
    reject_bools({"n_nonzero_coefs": n_nonzero_coefs, "alpha": alpha,
                  "max_iter": max_iter, "n_jobs": n_jobs}, _CONSTRAINTS,
                 "sparse_encode")
    as_tensor = isinstance(X, torch.Tensor)
    if not as_tensor:  # stays numpy (a memmap is read one chunk at a time)
        X = np.asarray(check_array(X, dtype=[np.float64, np.float32])
                       if check_input else X)
    elif check_input:
        _check_tensor(X, "X")
    if isinstance(dictionary, torch.Tensor):
        if check_input:
            _check_tensor(dictionary, "dictionary")
    elif check_input:
        dictionary = check_array(dictionary, dtype=[np.float64, np.float32])
    dev = resolve_device(device) if device is not None else (
        X.device if as_tensor else torch.device("cpu"))
    dtype = torch.float64 if str(X.dtype).endswith("float64") else torch.float32
    V = _as_tensor(dictionary, dev, dtype)
    _check_shapes(X, V, init, gram)
    G = _as_tensor(gram, dev, dtype) if gram is not None else None
    init_t = _as_tensor(init, dev, dtype) if init is not None else None
    codes = encode_chunks(
        X.detach() if as_tensor else X, V, init_t, n_jobs=n_jobs,
        algorithm=algorithm, alpha=alpha, n_nonzero_coefs=n_nonzero_coefs,
        max_iter=max_iter, positive=positive, G=G)
    return codes.to(X.device) if as_tensor else codes.cpu().numpy()


def _check_shapes(X: Any, V: torch.Tensor, init: Any, gram: Any) -> None:
    if X.ndim != 2 or V.ndim != 2:
        raise ValueError("X and dictionary must be 2D arrays.")
    if X.shape[1] != V.shape[1]:
        raise ValueError(
            "Dictionary and X have different numbers of features: dictionary.shape: "
            f"{tuple(V.shape)} X.shape: {tuple(X.shape)}")
    for name, a, shape in (("init", init, (X.shape[0], V.shape[0])),
                           ("gram", gram, (V.shape[0], V.shape[0]))):
        if a is not None and tuple(np.shape(a)) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {np.shape(a)}.")


def chunk_rows(
    algorithm: str, n_features: int, n_components: int, itemsize: int,
    n_nonzero_coefs: int | None = None, device: torch.device | str = "cpu",
) -> int:
    """Rows per chunk of `encode_chunks`, from the memory a chunk may use.

    At most ``MAX_ROWS[kind]`` rows, and ``CHUNK_BYTES[kind]`` bytes of working memory
    (kind "cpu" or "other" devices) by the estimate per row ``b (d + c K) + m s^2``
    (``b`` the itemsize, ``d`` features, ``K`` components): the row, its correlations,
    codes and solver buffers (``c`` is 5 for threshold, else 12), and per-row support
    matrices: the homotopy (lasso_lars, lasso_cd, lars) keeps ``s = min(K, d + 8)``
    slots (``n_nonzero_coefs + 8`` for lars) and three float64 ``s x s`` inverses
    (``m = 24``), omp ``s = n_nonzero_coefs`` and ``m = 4 b``. Independent of
    ``n_jobs``, so the codes are too.

    Parameters
    ----------
    algorithm : str
        One of `ALGORITHMS`.
    n_features, n_components, itemsize : int
    n_nonzero_coefs : int, optional
        For omp and lars (their default when None).
    device : torch.device or str
        Where the chunks are coded.

    Returns
    -------
    int
    """
    K, d = int(n_components), int(n_features)
    k = min(K, int(n_nonzero_coefs or default_n_nonzero(d, K)))
    kind = "cpu" if torch.device(device).type == "cpu" else "other"
    s, m = {"lasso_lars": (min(K, d + 8), 24), "lasso_cd": (min(K, d + 8), 24),
            "lars": (min(K, k + 8), 24), "omp": (k, 4 * itemsize)}.get(algorithm,
                                                                      (0, 0))
    per_row = itemsize * (d + (5 if algorithm == "threshold" else 12) * K)
    return int(max(1, min(MAX_ROWS[kind], CHUNK_BYTES[kind] // (per_row + m * s * s))))


def encode_chunks(
    X: Any,
    V: torch.Tensor,
    init: torch.Tensor | None = None,
    *,
    n_jobs: int | None = None,
    chunk_size: int | None = None,
    **kw: Any,
) -> torch.Tensor:
    """`encode_tensor` over chunks of rows: bounded memory, parallel through joblib.

    Chunks of ``chunk_size`` rows (default `chunk_rows`: bounded working memory,
    independent of ``n_jobs``) are moved to ``V``'s device and dtype one at a time and
    their codes written into the preallocated result: besides it, only the chunks in
    flight are held (about ``n_jobs`` chunk budgets). On the CPU the chunks go through
    `joblib.Parallel` with ``n_jobs`` under the active backend
    (`joblib.parallel_config`; threads by default, or processes: "loky", Dask, Ray) as
    numpy views, so a process backend is sent each chunk (a memmap's as a reference to
    its file), never the whole array (a backend that cannot stream results, such as
    "multiprocessing" or Ray's, returns them all at the end); each chunk runs on one
    torch intra-op thread (`sparsecode._utils.one_thread`). On other devices chunks run
    in threads. Results are the same for every backend and ``n_jobs``. Warns
    `ConvergenceWarning` once if any chunk did not converge.

    Parameters
    ----------
    X : torch.Tensor or ndarray of shape (n_samples, n_features)
        Any device; an ndarray (a memmap) is converted a chunk at a time.
    V : torch.Tensor of shape (n_components, n_features)
        The atoms, on the device and in the dtype of the computation.
    init : torch.Tensor of shape (n_samples, n_components), optional
    n_jobs, chunk_size : int, optional
    **kw
        Arguments of `encode_tensor` (``algorithm``, ``alpha``, ``G`` ...).

    Returns
    -------
    torch.Tensor of shape (n_samples, n_components)
    """
    n, K = X.shape[0], V.shape[0]
    alg = kw.get("algorithm", "lasso_lars")
    size = int(chunk_size or chunk_rows(alg, X.shape[1], K, V.element_size(),
                                        kw.get("n_nonzero_coefs"), V.device))
    bounds = [(i, min(i + size, n)) for i in range(0, n, size)]
    kw["G"] = V @ V.T if kw.get("G") is None else kw["G"]
    out = V.new_empty(n, K)
    serial = effective_n_jobs(n_jobs) == 1 or len(bounds) <= 1
    backend, args = "threading", ((X, V, init, kw, b) for b in bounds)
    if V.device.type == "cpu" and not serial:  # numpy views: a process backend
        Xn = X if isinstance(X, np.ndarray) else X.detach().cpu().numpy()
        In = None if init is None else init.detach().numpy()  # gets chunks only
        Vn, Gn = V.detach().numpy(), kw["G"].detach().numpy()
        backend, args = None, ((Xn[lo:hi], Vn, None if In is None else In[lo:hi],
                                {**kw, "G": Gn}, (lo, hi), True) for lo, hi in bounds)
    warned = False
    with one_thread(V.device):  # (each chunk on one intra-op thread)
        results = (_code_chunk(*a) for a in args) if serial else _parallel(
            n_jobs, backend)(delayed(_code_chunk)(*a) for a in args)
        for (lo, hi), codes, n_iter, converged in results:
            out[lo:hi] = codes.to(out.device)
            if not (converged or warned):
                warned = True
                warn_not_converged(solvers.SolverResult(codes, n_iter, False), alg)
    return out


def _parallel(n_jobs: int | None, backend: str | None) -> Parallel:
    try:  # results as they come: none held but the chunks in flight
        return Parallel(n_jobs, backend, return_as="generator_unordered",
                        prefer="threads")
    except ValueError:  # a backend without result callbacks (multiprocessing, Ray)
        return Parallel(n_jobs, backend, prefer="threads")


def _tensor_of(a: Any, like: torch.Tensor | None = None) -> torch.Tensor:
    if isinstance(a, np.ndarray):  # (a read-only chunk is copied: torch may write)
        a = torch.from_numpy(a if a.flags.writeable else np.array(a))
    return a if like is None else a.to(device=like.device, dtype=like.dtype)


def _code_chunk(X: Any, V: Any, init: Any, kw: dict, where: tuple[int, int],
                sliced: bool = False) -> tuple[tuple[int, int], Any, int, bool]:
    """Rows ``where`` of ``X`` (and ``init``) for `encode_chunks`, or all of
    them when ``sliced`` (numpy chunks sent to a worker): the bounds, codes,
    iterations and whether the solver converged."""
    lo, hi = (0, X.shape[0]) if sliced else where
    V = _tensor_of(V)
    kw = {**kw, "G": _tensor_of(kw["G"], V)}
    with one_thread(V.device):
        res = encode_tensor(_tensor_of(X[lo:hi], V), V, init=None if init is None
                            else _tensor_of(init[lo:hi], V), **kw)
    return where, res.codes, int(res.n_iter), bool(res.converged)
