"""Solvers on a growing support: the exact lasso path (LARS-lasso), LARS and OMP.

All work in Gram form (``G = V V^T``, ``C = X V^T``) on a batch of rows at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .homotopy import homotopy, spd_solve
from .proximal import SolverResult, soft_threshold

__all__ = ["lars", "lasso_lars", "masked_solve", "omp", "padded_support"]


def padded_support(active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (n, s_max) of each row's True entries, padded; and their validity.

    Parameters
    ----------
    active : torch.Tensor of shape (n, K), bool

    Returns
    -------
    idx : torch.Tensor of shape (n, s_max), int64
        Each row's active columns (in no set order), then padding.
    valid : torch.Tensor of shape (n, s_max), bool
        False on the padding.

    Examples
    --------
    >>> import torch
    >>> from sparsecode.solvers import padded_support
    >>> idx, valid = padded_support(torch.tensor([[True, False, True],
    ...                                           [False, False, True]]))
    >>> tuple(idx.shape), [sorted(i[v].tolist()) for i, v in zip(idx, valid)]
    ((2, 2), [[0, 2], [2]])
    """
    s_max = max(int(active.sum(1).max()), 1)
    idx = torch.topk(active.to(torch.uint8), s_max, dim=1, sorted=False).indices
    return idx, active.gather(1, idx)


def masked_solve(
    G: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor, rhs: torch.Tensor
) -> torch.Tensor:
    """Solve ``G[S, S] w = rhs`` per row on the valid part of a padded support.

    Parameters
    ----------
    G : torch.Tensor of shape (K, K)
        Gram matrix.
    idx, valid : torch.Tensor of shape (n, s)
        A padded support, as from `padded_support`.
    rhs : torch.Tensor of shape (n, s)
        Right-hand sides on the support slots.

    Returns
    -------
    torch.Tensor of shape (n, s)
        The solutions, 0 on the padding.

    Examples
    --------
    >>> import torch
    >>> from sparsecode.solvers import masked_solve, padded_support
    >>> G = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 4.0]])
    >>> c = torch.tensor([[2.0, 1.0, 4.0], [1.0, 3.0, 4.0]])
    >>> idx, valid = padded_support(torch.tensor([[True, False, True],
    ...                                           [False, False, True]]))
    >>> w = masked_solve(G, idx, valid, c.gather(1, idx))
    >>> torch.zeros(2, 3).scatter(1, idx, w).round(decimals=4).tolist()
    [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    """
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

    Parameters
    ----------
    G : torch.Tensor of shape (n_components, n_components)
        Gram matrix ``V V^T``.
    C : torch.Tensor of shape (n_samples, n_components)
        Correlations ``X V^T``.
    alpha : float
        L1 penalty.
    max_iter : int
        Breakpoints per sample at most.
    positive : bool
        Non-negative codes.

    Returns
    -------
    SolverResult

    Examples
    --------
    >>> import torch
    >>> from sparsecode.solvers import lasso_dual_gap, lasso_lars
    >>> g = torch.Generator().manual_seed(0)
    >>> V = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=1)
    >>> X = torch.randn(3, 8, generator=g)
    >>> G, C = V @ V.T, X @ V.T
    >>> res = lasso_lars(G, C, 0.1)
    >>> gap = lasso_dual_gap(G, C, res.codes, 0.1, (X * X).sum(1))
    >>> res.converged, (res.codes != 0).sum(1).tolist(), bool(gap.max() < 1e-4)
    (True, [2, 4, 3], True)
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
    selection the codes on the support are the least-squares fit, from the
    Cholesky factor of the support's Gram block, bordered by one row per
    selection. With ``tol`` (and ``x_sq``), a sample stops growing its
    support once its squared residual is below ``tol``, like sklearn's
    ``orthogonal_mp_gram``. A selected atom (nearly) in the span of the
    sample's support, or zero, is left out of it with a zero code (see
    `_border`).

    Parameters
    ----------
    G : torch.Tensor of shape (n_components, n_components)
        Gram matrix ``V V^T``.
    C : torch.Tensor of shape (n_samples, n_components)
        Correlations ``X V^T``.
    n_nonzero_coefs : int
        Atoms per sample at most.
    x_sq : torch.Tensor of shape (n_samples,), optional
        Squared norms of the samples (needed by ``tol``).
    tol : float, optional
        Squared residual at which a sample stops.

    Returns
    -------
    SolverResult

    Examples
    --------
    >>> import torch
    >>> from sparsecode.solvers import omp
    >>> g = torch.Generator().manual_seed(0)
    >>> V = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=1)
    >>> X = torch.randn(3, 8, generator=g)
    >>> G, C = V @ V.T, X @ V.T
    >>> res = omp(G, C, 2)
    >>> (res.codes != 0).sum(1).tolist(), res.n_iter
    ([2, 2, 2], 2)

    With every atom, the least-squares fit:

    >>> ls = torch.linalg.lstsq(V.T, X.T).solution.T
    >>> torch.allclose(omp(G, C, 4).codes, ls, atol=1e-4)
    True
    """
    n, K = C.shape
    s = min(int(n_nonzero_coefs), K)
    idx = torch.zeros(n, 0, dtype=torch.long, device=C.device)
    valid = torch.zeros(n, 0, dtype=torch.bool, device=C.device)
    L = C.new_zeros(n, 0, 0)
    codes = torch.zeros_like(C)
    corr = C.clone()
    active = torch.ones(n, dtype=torch.bool, device=C.device)
    taken = torch.zeros_like(C, dtype=torch.bool)
    for _ in range(s):
        score = corr.abs().masked_fill(taken, -1.0)
        j = score.argmax(1)
        # a sample whose residual is already explained adds an atom with 0 weight
        L, ok = _border(G, L, idx, valid, j)
        idx = torch.cat([idx, j.unsqueeze(1)], 1)
        valid = torch.cat([valid, ok.unsqueeze(1)], 1)
        taken.scatter_(1, j.unsqueeze(1), True)
        rhs = torch.where(valid, C.gather(1, idx), 0.0).unsqueeze(2)
        w = torch.cholesky_solve(rhs, L).squeeze(2) * active.unsqueeze(1)
        new = torch.zeros_like(C).scatter_(1, idx, w)
        codes = torch.where(active.unsqueeze(1), new, codes)
        corr = C - codes @ G
        if tol is not None and x_sq is not None:
            res_sq = x_sq - (codes * C).sum(1)  # ||x||^2 - u.c at a LS solution
            active = active & (res_sq > tol)
            if not bool(active.any()):
                break
    return SolverResult(codes, idx.shape[1], True)


def _border(
    G: torch.Tensor, L: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor,
    j: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Border the Cholesky factors ``L`` of the supports ``idx`` with atom ``j``.

    The new row is ``l = L^{-1} G[S, j]`` and the pivot ``sqrt(G[j, j] - l.l)``,
    the square root of the atom's Schur complement against the support. At
    most ``sqrt(eps) G[j, j]`` (the singularity test of `cholesky_checked`),
    the atom is (nearly) in the support's span: its gain is at rounding
    level, and keeping it would make the block singular to working precision
    and the fit unreliable (a residual could grow as the support did), so it
    is left out: a unit row, as for an atom orthogonal to everything, with a
    zero right-hand side. Left-out entries of ``idx`` are invalid, with zero
    rows in ``G[S, j]``. Returns the bordered factors and whether ``j`` is in.
    """
    t = idx.shape[1]
    b = torch.where(valid, G[j.unsqueeze(1), idx], 0.0).unsqueeze(2)
    l = torch.linalg.solve_triangular(L, b, upper=False).squeeze(2)
    g = G.diagonal()[j]
    sch = g - (l * l).sum(1)
    ok = sch > torch.finfo(G.dtype).eps ** 0.5 * g  # (never for a zero atom)
    row = torch.cat([l * ok.unsqueeze(1), torch.where(ok, sch, 1.0).sqrt()
                     .unsqueeze(1)], 1)
    L = F.pad(L, (0, 1, 0, 1))
    L[:, t] = row
    return L, ok


def lars(G: torch.Tensor, C: torch.Tensor, n_nonzero_coefs: int) -> SolverResult:
    """Batched least-angle regression with ``n_nonzero_coefs`` active atoms.

    The homotopy of `lasso_lars` without the lasso modification (atoms never
    leave) and without a penalty floor: ``n_nonzero_coefs`` steps, each
    ending where the next atom would join, as sklearn's
    ``Lars(n_nonzero_coefs=k)`` (``lars_path`` with ``max_iter=k``).

    Parameters
    ----------
    G : torch.Tensor of shape (n_components, n_components)
        Gram matrix ``V V^T``.
    C : torch.Tensor of shape (n_samples, n_components)
        Correlations ``X V^T``.
    n_nonzero_coefs : int
        Steps, hence active atoms per sample.

    Returns
    -------
    SolverResult

    Examples
    --------
    >>> import torch
    >>> from sparsecode.solvers import lars
    >>> g = torch.Generator().manual_seed(0)
    >>> V = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=1)
    >>> X = torch.randn(3, 8, generator=g)
    >>> G, C = V @ V.T, X @ V.T
    >>> (lars(G, C, 2).codes != 0).sum(1).tolist()
    [2, 2, 2]
    >>> ls = torch.linalg.lstsq(V.T, X.T).solution.T
    >>> torch.allclose(lars(G, C, 4).codes, ls, atol=1e-4)
    True
    """
    k = min(int(n_nonzero_coefs), C.shape[1])
    codes, steps, _ = homotopy(G, C, 0.0, max_steps=k, positive=False, lasso=False)
    return SolverResult(codes, steps, True)
