"""Proximal solvers of the batched lasso: soft thresholding, ISTA and FISTA.

Gram form (see `sparsecode.solvers`); all rows at once, convergence checked
every ``check_every`` iterations by the duality gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "SolverResult",
    "fista",
    "ista",
    "lasso_dual_gap",
    "lasso_objective",
    "soft_threshold",
    "threshold",
]


@dataclass
class SolverResult:
    """What a solver returns.

    Attributes
    ----------
    codes : torch.Tensor of shape (n_samples, n_components)
    n_iter : int
        Iterations run (1 for one-shot solvers, steps for OMP/LARS).
    converged : bool
        False when an iterative solver stopped at ``max_iter``.

    Examples
    --------
    >>> import torch
    >>> from sparsecode.solvers import SolverResult, threshold
    >>> res = threshold(torch.tensor([[-2.0, 0.5, 3.0]]), 1.0)
    >>> isinstance(res, SolverResult), res.codes.tolist(), res.n_iter, res.converged
    (True, [[-1.0, 0.0, 2.0]], 1, True)
    """

    codes: torch.Tensor
    n_iter: int
    converged: bool


def soft_threshold(Z: torch.Tensor, thr: float, positive: bool = False) -> torch.Tensor:
    """Proximal operator of ``thr * ||.||_1`` (plus ``u >= 0`` if positive).

    Parameters
    ----------
    Z : torch.Tensor
        Values to shrink, elementwise.
    thr : float
        Threshold.
    positive : bool
        Also clip at 0.

    Returns
    -------
    torch.Tensor of the shape of ``Z``

    Examples
    --------
    >>> import torch
    >>> from sparsecode.solvers import soft_threshold
    >>> z = torch.tensor([-2.0, 0.5, 3.0])
    >>> soft_threshold(z, 1.0).tolist(), soft_threshold(z, 1.0, positive=True).tolist()
    ([-1.0, 0.0, 2.0], [0.0, 0.0, 2.0])
    """
    if positive:
        return (Z - thr).clamp_min(0)
    return Z.sign() * (Z.abs() - thr).clamp_min(0)


def threshold(C: torch.Tensor, alpha: float, positive: bool = False) -> SolverResult:
    """Soft thresholding of the correlations: sklearn's ``threshold`` algorithm.

    ``codes = sign(C) * max(|C| - alpha, 0)``, clipped at 0 when positive. It
    does not solve the lasso unless the atoms are orthonormal.

    Parameters
    ----------
    C : torch.Tensor of shape (n_samples, n_components)
        Correlations ``X V^T``.
    alpha : float
        Threshold.
    positive : bool
        Non-negative codes.

    Returns
    -------
    SolverResult
        With ``n_iter=1`` and ``converged=True``.

    Examples
    --------
    >>> import torch
    >>> from sparsecode.solvers import threshold
    >>> threshold(torch.tensor([[-2.0, 0.5, 3.0]]), 1.0, positive=True).codes.tolist()
    [[0.0, 0.0, 2.0]]
    """
    return SolverResult(soft_threshold(C, alpha, positive), 1, True)


def lasso_objective(
    G: torch.Tensor, C: torch.Tensor, U: torch.Tensor, alpha: float, x_sq: torch.Tensor
) -> torch.Tensor:
    """Per-sample ``0.5||x - uV||^2 + alpha||u||_1`` from Gram quantities.

    Parameters
    ----------
    G : torch.Tensor of shape (n_components, n_components)
        Gram matrix ``V V^T``.
    C : torch.Tensor of shape (n_samples, n_components)
        Correlations ``X V^T``.
    U : torch.Tensor of shape (n_samples, n_components)
        Codes.
    alpha : float
        L1 penalty.
    x_sq : torch.Tensor of shape (n_samples,)
        Squared norms of the samples.

    Returns
    -------
    torch.Tensor of shape (n_samples,)

    Examples
    --------
    With orthonormal atoms, ``0.5 * ||[3, 0.5] - [2, 0]||^2 + 1 * 2``:

    >>> import torch
    >>> from sparsecode.solvers import lasso_objective
    >>> G, C, U = torch.eye(2), torch.tensor([[3.0, 0.5]]), torch.tensor([[2.0, 0.0]])
    >>> lasso_objective(G, C, U, 1.0, x_sq=torch.tensor([9.25])).tolist()
    [2.625]
    """
    UG = U @ G
    quad = 0.5 * (UG * U).sum(1) - (U * C).sum(1) + 0.5 * x_sq
    return quad.clamp_min(0) + alpha * U.abs().sum(1)


def lasso_dual_gap(
    G: torch.Tensor,
    C: torch.Tensor,
    U: torch.Tensor,
    alpha: float,
    x_sq: torch.Tensor,
    positive: bool = False,
    UG: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample duality gap of the lasso (an upper bound on suboptimality).

    The dual point is the residual rescaled to be feasible:
    ``nu = s r`` with ``s = min(1, alpha / ||V r||_inf)`` (``max(V r)`` for the
    positive problem), and everything is computed from ``G``, ``C`` and
    ``||x||^2`` without forming residuals in feature space.

    Parameters
    ----------
    G, C, U, alpha, x_sq
        As in `lasso_objective`.
    positive : bool
        The gap of the non-negative lasso.
    UG : torch.Tensor of shape (n_samples, n_components), optional
        ``U @ G`` if already computed.

    Returns
    -------
    torch.Tensor of shape (n_samples,)
        Non-negative; zero at the solution.

    Examples
    --------
    >>> import torch
    >>> from sparsecode.solvers import lasso_dual_gap
    >>> G, C, x_sq = torch.eye(2), torch.tensor([[3.0, 0.5]]), torch.tensor([9.25])
    >>> lasso_dual_gap(G, C, torch.tensor([[2.0, 0.0]]), 1.0, x_sq).tolist()
    [0.0]
    >>> round(lasso_dual_gap(G, C, torch.zeros(1, 2), 1.0, x_sq).item(), 3)
    2.056
    """
    if UG is None:
        UG = U @ G
    corr = C - UG  # V r for each sample
    uc = (U * C).sum(1)
    ugu = (UG * U).sum(1)
    r_sq = (x_sq - 2 * uc + ugu).clamp_min(0)
    r_x = x_sq - uc
    primal = 0.5 * r_sq + alpha * U.abs().sum(1)
    dual_norm = corr.amax(1).clamp_min(0) if positive else corr.abs().amax(1)
    s = torch.clamp(alpha / dual_norm.clamp_min(torch.finfo(G.dtype).tiny), max=1.0)
    dual = s * r_x - 0.5 * s * s * r_sq
    return (primal - dual).clamp_min(0)


def _lipschitz(G: torch.Tensor) -> float:
    """Largest eigenvalue of the PSD Gram matrix (the gradient's Lipschitz constant)."""
    if G.shape[0] == 0:
        return 1.0
    top = torch.linalg.eigvalsh(G.double())[-1].item()
    return max(top, 1e-12)


def _check_done(
    G, C, U, UG, alpha, x_sq, positive, tol, U_prev
) -> bool:
    """Stopping rule: total dual gap <= tol * total ||x||^2 (or code change)."""
    if x_sq is not None:
        gap = lasso_dual_gap(G, C, U, alpha, x_sq, positive, UG=UG).sum()
        return bool(gap <= tol * x_sq.sum().clamp_min(1e-30))
    delta = (U - U_prev).abs().amax()
    return bool(delta <= tol * U.abs().amax().clamp_min(1e-30))


def _prox_loop(
    G, C, alpha, *, init, max_iter, tol, positive, x_sq, check_every, accelerate
) -> SolverResult:
    step = 1.0 / _lipschitz(G)
    thr = alpha * step
    U = torch.zeros_like(C) if init is None else init.to(C).clone()
    Y, t = U, 1.0
    UG = U @ G
    YG = UG
    U_prev = U
    for it in range(1, max_iter + 1):
        U_new = soft_threshold(Y + step * (C - YG), thr, positive)
        UG_new = U_new @ G
        if accelerate:
            t_new = 0.5 * (1.0 + (1.0 + 4.0 * t * t) ** 0.5)
            mom = (t - 1.0) / t_new
            Y = U_new + mom * (U_new - U)
            YG = UG_new + mom * (UG_new - UG)
            t = t_new
        else:
            Y, YG = U_new, UG_new
        U_prev, U, UG = U, U_new, UG_new
        if it % check_every == 0 or it == max_iter:
            if _check_done(G, C, U, UG, alpha, x_sq, positive, tol, U_prev):
                return SolverResult(U, it, True)
            if accelerate:  # restart the momentum: robust on ill-conditioned G
                Y, YG, t = U, UG, 1.0
    return SolverResult(U, max_iter, max_iter == 0)


def fista(
    G: torch.Tensor,
    C: torch.Tensor,
    alpha: float,
    *,
    init: torch.Tensor | None = None,
    max_iter: int = 1000,
    tol: float = 1e-4,
    positive: bool = False,
    x_sq: torch.Tensor | None = None,
    check_every: int = 10,
) -> SolverResult:
    """Batched FISTA for the lasso in Gram form (with periodic momentum restart).

    Parameters
    ----------
    G : torch.Tensor of shape (n_components, n_components)
        Gram matrix ``V V^T``.
    C : torch.Tensor of shape (n_samples, n_components)
        Correlations ``X V^T``.
    alpha : float
        L1 penalty.
    init : torch.Tensor, optional
        Warm start codes.
    max_iter : int
        Maximum number of iterations.
    tol : float
        With ``x_sq`` (the squared norms of the samples), stop when the summed
        duality gap is below ``tol * sum(x_sq)``; otherwise stop when the
        largest code change is below ``tol`` times the largest code.
    positive : bool
        Constrain codes to be non-negative.
    x_sq : torch.Tensor of shape (n_samples,), optional
    check_every : int
        Check convergence (a host synchronisation) every this many iterations.

    Returns
    -------
    SolverResult

    Examples
    --------
    The same solution as the exact `lasso_lars`:

    >>> import torch
    >>> from sparsecode.solvers import fista, lasso_lars
    >>> g = torch.Generator().manual_seed(0)
    >>> V = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=1)
    >>> X = torch.randn(3, 8, generator=g)
    >>> G, C = V @ V.T, X @ V.T
    >>> res = fista(G, C, 0.1, x_sq=(X * X).sum(1), tol=1e-6)
    >>> res.converged, torch.allclose(res.codes, lasso_lars(G, C, 0.1).codes, atol=1e-3)
    (True, True)
    """
    return _prox_loop(
        G, C, alpha, init=init, max_iter=max_iter, tol=tol, positive=positive,
        x_sq=x_sq, check_every=check_every, accelerate=True,
    )


def ista(
    G: torch.Tensor,
    C: torch.Tensor,
    alpha: float,
    *,
    init: torch.Tensor | None = None,
    max_iter: int = 1000,
    tol: float = 1e-4,
    positive: bool = False,
    x_sq: torch.Tensor | None = None,
    check_every: int = 10,
) -> SolverResult:
    """Batched ISTA (proximal gradient without momentum); see `fista`.

    Parameters and returns as in `fista`; slower to converge.

    Examples
    --------
    >>> import torch
    >>> from sparsecode.solvers import fista, ista
    >>> g = torch.Generator().manual_seed(0)
    >>> V = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=1)
    >>> X = torch.randn(3, 8, generator=g)
    >>> G, C, x_sq = V @ V.T, X @ V.T, (X * X).sum(1)
    >>> slow, fast = ista(G, C, 0.1, x_sq=x_sq), fista(G, C, 0.1, x_sq=x_sq)
    >>> slow.converged, slow.n_iter >= fast.n_iter
    (True, True)
    """
    return _prox_loop(
        G, C, alpha, init=init, max_iter=max_iter, tol=tol, positive=positive,
        x_sq=x_sq, check_every=check_every, accelerate=False,
    )
