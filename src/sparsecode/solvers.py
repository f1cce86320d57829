"""Batched sparse-coding solvers: pure torch functions, CPU or CUDA.

Every solver works in *Gram form*: with a dictionary ``V`` (n_components,
n_features), a batch ``X`` (n_samples, n_features), ``G = V V^T`` and
``C = X V^T``, the per-sample lasso problem

    min_u 0.5 * ||x - u V||^2 + alpha * ||u||_1     (u >= 0 if positive)

is ``min_u 0.5 u G u^T - u.c + alpha ||u||_1`` up to a constant. All samples
are solved at once with matrix products; there is no Python loop over
samples. Iterative solvers check convergence every ``check_every``
iterations only, so on a GPU they do not synchronise with the host each step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._homotopy import homotopy, spd_solve

__all__ = [
    "SolverResult",
    "SOLVERS",
    "fista",
    "ista",
    "lars",
    "lasso_dual_gap",
    "lasso_lars",
    "lasso_objective",
    "omp",
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
    """

    codes: torch.Tensor
    n_iter: int
    converged: bool


def soft_threshold(Z: torch.Tensor, thr: float, positive: bool = False) -> torch.Tensor:
    """Proximal operator of ``thr * ||.||_1`` (plus ``u >= 0`` if positive)."""
    if positive:
        return (Z - thr).clamp_min(0)
    return Z.sign() * (Z.abs() - thr).clamp_min(0)


def threshold(C: torch.Tensor, alpha: float, positive: bool = False) -> SolverResult:
    """Soft thresholding of the correlations: sklearn's ``threshold`` algorithm.

    ``codes = sign(C) * max(|C| - alpha, 0)``, clipped at 0 when positive. It
    does not solve the lasso unless the atoms are orthonormal.
    """
    return SolverResult(soft_threshold(C, alpha, positive), 1, True)


def lasso_objective(
    G: torch.Tensor, C: torch.Tensor, U: torch.Tensor, alpha: float, x_sq: torch.Tensor
) -> torch.Tensor:
    """Per-sample ``0.5||x - uV||^2 + alpha||u||_1`` from Gram quantities."""
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
    """Batched ISTA (proximal gradient without momentum); see `fista`."""
    return _prox_loop(
        G, C, alpha, init=init, max_iter=max_iter, tol=tol, positive=positive,
        x_sq=x_sq, check_every=check_every, accelerate=False,
    )


def _padded_support(active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (n, s_max) of each row's True entries, padded; and their validity."""
    s_max = max(int(active.sum(1).max()), 1)
    idx = torch.topk(active.to(torch.uint8), s_max, dim=1, sorted=False).indices
    return idx, active.gather(1, idx)


def _masked_solve(
    G: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor, rhs: torch.Tensor
) -> torch.Tensor:
    """Solve ``G[S, S] w = rhs`` per row on the valid part of a padded support."""
    G_SS = G[idx.unsqueeze(2), idx.unsqueeze(1)]
    eye = torch.eye(idx.shape[1], dtype=G.dtype, device=G.device)
    pad = ~(valid.unsqueeze(2) & valid.unsqueeze(1))
    G_SS = torch.where(pad, eye.expand_as(G_SS), G_SS)
    return torch.where(valid, spd_solve(G_SS, rhs), 0.0)


def lasso_lars(
    G: torch.Tensor,
    C: torch.Tensor,
    alpha: float,
    *,
    max_iter: int = 1000,
    positive: bool = False,
    **_: object,
) -> SolverResult:
    """Exact batched lasso by the homotopy (LARS-lasso) path, in Gram form.

    Every sample follows its regularisation path from ``lambda = max|c|``
    down to ``alpha``: the active atoms' correlations with the residual stay
    tied at ``lambda`` while the codes move along the equiangular direction;
    atoms join when their correlation catches up and leave when their code
    reaches zero (the lasso modification). Rows that reach ``alpha`` are
    frozen and, once enough have, removed from the batch, so later steps pay
    only for the rows still moving. The result is the exact lasso solution
    (up to rounding), as sklearn's ``LassoLars`` computes one sample at a time.

    ``max_iter`` bounds the number of breakpoints per sample.

    Mutually orthogonal atoms (an SVD initialisation, a PCA basis) decouple
    the problem: each code is its soft-thresholded correlation divided by the
    atom's squared norm, the end of the same path in closed form.
    """
    K = G.shape[0]
    if max_iter >= K and _orthogonal(G):  # (a path has at most K events then)
        g = G.diagonal()
        codes = soft_threshold(C, alpha, positive) / torch.where(g > 0, g, 1.0)
        return SolverResult(codes, 1, True)
    codes, steps, done = homotopy(G, C, alpha, max_steps=max_iter, positive=positive,
                                  lasso=True)
    return SolverResult(codes, steps, done)


def _orthogonal(G: torch.Tensor) -> bool:
    """Whether the atoms of Gram matrix ``G`` are orthogonal to rounding level."""
    g = G.diagonal().clamp_min(0).sqrt()
    off = (G - torch.diag_embed(G.diagonal())).abs()
    tol = 100 * torch.finfo(G.dtype).eps
    return bool((off <= tol * torch.outer(g, g)).all())


def omp(
    G: torch.Tensor,
    C: torch.Tensor,
    n_nonzero_coefs: int,
    *,
    x_sq: torch.Tensor | None = None,
    tol: float | None = None,
) -> SolverResult:
    """Batched orthogonal matching pursuit in Gram form (Batch-OMP).

    Each sample greedily selects up to ``n_nonzero_coefs`` atoms; after every
    selection the codes on the support are the least-squares fit. With
    ``tol`` (and ``x_sq``), a sample stops growing its support once its
    squared residual is below ``tol``, like sklearn's ``orthogonal_mp_gram``.
    """
    n, K = C.shape
    s = min(int(n_nonzero_coefs), K)
    idx = torch.zeros(n, 0, dtype=torch.long, device=C.device)
    codes = torch.zeros_like(C)
    corr = C.clone()
    active = torch.ones(n, dtype=torch.bool, device=C.device)
    taken = torch.zeros_like(C, dtype=torch.bool)
    for _ in range(s):
        score = corr.abs().masked_fill(taken, -1.0)
        j = score.argmax(1)
        # a sample whose residual is already explained adds an atom with 0 weight
        idx = torch.cat([idx, j.unsqueeze(1)], 1)
        taken.scatter_(1, j.unsqueeze(1), True)
        valid = torch.ones_like(idx, dtype=torch.bool)
        w = _masked_solve(G, idx, valid, C.gather(1, idx))
        w = w * active.unsqueeze(1)
        new = torch.zeros_like(C).scatter_(1, idx, w)
        codes = torch.where(active.unsqueeze(1), new, codes)
        corr = C - codes @ G
        if tol is not None and x_sq is not None:
            res_sq = x_sq - (codes * C).sum(1)  # ||x||^2 - u.c at a LS solution
            active = active & (res_sq > tol)
            if not bool(active.any()):
                break
    return SolverResult(codes, idx.shape[1], True)


def lars(G: torch.Tensor, C: torch.Tensor, n_nonzero_coefs: int) -> SolverResult:
    """Batched least-angle regression with ``n_nonzero_coefs`` active atoms.

    The homotopy of `lasso_lars` without the lasso modification (atoms never
    leave) and without a penalty floor: ``n_nonzero_coefs`` steps, each
    ending where the next atom would join, as sklearn's
    ``Lars(n_nonzero_coefs=k)`` (``lars_path`` with ``max_iter=k``).
    """
    k = min(int(n_nonzero_coefs), C.shape[1])
    codes, steps, _ = homotopy(G, C, 0.0, max_steps=k, positive=False, lasso=False)
    return SolverResult(codes, steps, True)


Solver = Callable[..., SolverResult]

SOLVERS: dict[str, Solver] = {
    "lasso_lars": lasso_lars,
    "fista": fista,
    "ista": ista,
    "omp": omp,
    "lars": lars,
    "threshold": threshold,
}
