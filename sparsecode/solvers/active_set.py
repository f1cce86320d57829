"""An active-set finisher for the last rows of the lasso homotopy.

`finish` solves the lasso at ``alpha`` from a guessed support by primal-dual
active-set iterations (solve the KKT system on the support, then change every
violated condition at once) and reports the rows it settled, checked against
the optimality conditions; the others stay on the homotopy path. Also the
Gram-block helpers both share (`extended_gram`, `gram_block`,
`cholesky_checked`, `pinv_solve`). Linear algebra in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["cholesky_checked", "extended_gram", "finish", "gram_block", "pinv_solve"]

_F64 = torch.float64


def _slots(act: torch.Tensor, m: int, K: int, cols: torch.Tensor) -> torch.Tensor:
    """Padded support lists of boolean rows: the atom of each of ``m`` slots.

    The active columns are written to their rank among the row's active
    columns (a cumulative sum, no sort); free slots point at virtual atoms
    ``K + slot`` (unit Gram rows, zero correlation), as in the homotopy, so
    nothing downstream needs a mask.
    """
    n = act.shape[0]
    rank = torch.where(act, act.cumsum(1) - 1, m)  # inactive -> a spare slot m
    idx = torch.arange(K, K + m + 1, device=act.device).repeat(n, 1)
    return idx.scatter_(1, rank, cols.expand(n, K))[:, :m]


def cholesky_checked(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cholesky factors of a batch of PSD matrices and a mask of the singular ones.

    A matrix counts as singular when the factorisation fails or when a pivot's
    square (the Schur complement of its atom against the atoms before it) is
    at most ``sqrt(eps)`` times the diagonal entry: such a block has (nearly)
    collinear atoms, and its Cholesky factor, though it may exist in floating
    point, gives an inverse too large to trust (whether it exists depends on
    the CPU's rounding).

    Parameters
    ----------
    A : torch.Tensor of shape (n, m, m)

    Returns
    -------
    L : torch.Tensor of shape (n, m, m)
        Lower Cholesky factors (not to be used where singular).
    singular : torch.Tensor of shape (n,), bool

    Examples
    --------
    >>> import torch
    >>> from sparsecode.solvers.active_set import cholesky_checked
    >>> A = torch.tensor([[[4.0, 2.0], [2.0, 3.0]], [[1.0, 1.0], [1.0, 1.0]]])
    >>> L, singular = cholesky_checked(A)
    >>> singular.tolist(), torch.allclose(L[0] @ L[0].T, A[0])
    ([False, True], True)
    """
    L, info = torch.linalg.cholesky_ex(A)
    piv = L.diagonal(dim1=1, dim2=2)
    tol = torch.finfo(A.dtype).eps ** 0.5
    near = (piv * piv <= tol * A.diagonal(dim1=1, dim2=2)).any(1)
    return L, (info != 0) | near


def pinv_solve(
    A: torch.Tensor, b: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-inverses of a batch of PSD matrices and their products with ``b``.

    By an eigendecomposition in float64. The entries of ``A`` carry rounding
    of ``eps`` relative, which moves its eigenvalues by up to about
    ``m eps w_max`` (``m`` the order): eigenvalues below ten times that are
    known to no better than 10%, a direction along them would move the
    solution by an unknown amount, and they are taken for zero (negative
    ones, the rounding of a singular matrix, included). ``x = Q diag(1/w)
    Q^T b`` is formed from the factors, not from the explicit
    pseudo-inverse, whose entries reach ``1 / (10 m eps)``: their product
    with ``b`` would lose that much more to cancellation (the direction of a
    support with nearly collinear atoms came out wrong by 0.4% that way, and
    its codes off the lasso path). A zero diagonal entry (a zero atom) gets
    an exact zero.

    Parameters
    ----------
    A : torch.Tensor of shape (n, m, m)
    b : torch.Tensor of shape (n, m)
    eps : float
        Relative precision of ``A``'s entries (that of the input's dtype).

    Returns
    -------
    inv : torch.Tensor of shape (n, m, m), float64
    x : torch.Tensor of shape (n, m), float64

    Examples
    --------
    The second matrix is singular: ``x`` is its min-norm solution.

    >>> import torch
    >>> from sparsecode.solvers.active_set import pinv_solve
    >>> A = torch.tensor([[[4.0, 2.0], [2.0, 3.0]], [[1.0, 1.0], [1.0, 1.0]]])
    >>> inv, x = pinv_solve(A, torch.tensor([[2.0, 1.0], [2.0, 2.0]]), 1e-7)
    >>> torch.allclose(x, torch.tensor([[0.5, 0.0], [1.0, 1.0]], dtype=torch.float64))
    True
    >>> inv[1].round(decimals=6).tolist()
    [[0.25, 0.25], [0.25, 0.25]]
    """
    w, Q = torch.linalg.eigh(A.to(_F64))
    top = w[:, -1:].clamp_min(torch.finfo(_F64).tiny)
    w_inv = torch.where(w > 10 * A.shape[-1] * eps * top, w.reciprocal(), 0.0)
    x = (Q @ (w_inv * (Q.mT @ b.to(_F64).unsqueeze(2)).squeeze(2)).unsqueeze(2)
         ).squeeze(2)
    inv = (Q * w_inv.unsqueeze(1)) @ Q.mT
    zero = A.diagonal(dim1=1, dim2=2) <= 0  # (PSD: its row and column are zero)
    inv.masked_fill_(zero.unsqueeze(1) | zero.unsqueeze(2), 0.0)
    return inv, x.masked_fill_(zero, 0.0)


def extended_gram(G: torch.Tensor, m: int) -> torch.Tensor:
    """``G`` in float64 bordered by ``m`` virtual atoms ``K .. K + m - 1``,
    orthogonal to everything and of unit norm: the Gram block of a padded
    support list is then positive definite without masking.

    Parameters
    ----------
    G : torch.Tensor of shape (K, K)
    m : int
        Virtual atoms.

    Returns
    -------
    torch.Tensor of shape (K + m, K + m), float64

    Examples
    --------
    >>> import torch
    >>> from sparsecode.solvers.active_set import extended_gram
    >>> extended_gram(torch.tensor([[1.0, 0.5], [0.5, 1.0]]), 1).tolist()
    [[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    K = G.shape[0]
    Ge = G.new_zeros(K + m, K + m, dtype=_F64)
    Ge[:K, :K] = G
    Ge[K:, K:] = torch.eye(m, dtype=_F64, device=G.device)
    return Ge


def gram_block(Ge: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``G[S, S]`` of every row's padded support list ``idx`` (n, m).

    Parameters
    ----------
    Ge : torch.Tensor of shape (K', K')
        A Gram matrix, as from `extended_gram`.
    idx : torch.Tensor of shape (n, m), int64

    Returns
    -------
    torch.Tensor of shape (n, m, m)

    Examples
    --------
    >>> import torch
    >>> from sparsecode.solvers.active_set import extended_gram, gram_block
    >>> Ge = extended_gram(torch.tensor([[1.0, 0.5], [0.5, 1.0]]), 1)
    >>> gram_block(Ge, torch.tensor([[0, 1], [1, 2]])).tolist()
    [[[1.0, 0.5], [0.5, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]
    """
    return Ge.take(idx.unsqueeze(2) * Ge.shape[0] + idx.unsqueeze(1))


def _tables(G: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`extended_gram` and the table of ``u @ G`` in ``G``'s dtype (the
    correlations need only be accurate to the rounding tolerance; the solve
    is in float64)."""
    Gk = G.new_zeros(G.shape[0] + m, G.shape[0])
    Gk[:G.shape[0]] = G
    return extended_gram(G, m), Gk


def finish(
    G: torch.Tensor, C: torch.Tensor, sgn_K: torch.Tensor, alpha: float,
    positive: bool, max_iter: int = 6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Active-set iterations for the lasso of rows ``C`` from signs ``sgn_K``.

    Parameters
    ----------
    G : torch.Tensor of shape (K, K)
        Gram matrix of the atoms.
    C : torch.Tensor of shape (n, K)
        Correlations of the rows with the atoms.
    sgn_K : torch.Tensor of shape (n, K)
        Guessed signs (0 off the support), float64.
    alpha : float
    positive : bool
        Non-negative codes.
    max_iter : int
        Iterations before giving up on a row (each works on the rows not
        settled yet).

    Returns
    -------
    done : torch.Tensor of shape (n,), bool
        Rows whose solution was found.
    codes : torch.Tensor of shape (n, K), float64
        Their solutions (zero on the other rows).

    Examples
    --------
    From an empty support, the exact lasso solution:

    >>> import torch
    >>> from sparsecode.solvers import lasso_lars
    >>> from sparsecode.solvers.active_set import finish
    >>> g = torch.Generator().manual_seed(0)
    >>> V = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=1)
    >>> X = torch.randn(3, 8, generator=g)
    >>> G, C = V @ V.T, X @ V.T
    >>> done, codes = finish(G, C, torch.zeros(3, 4, dtype=torch.float64), 0.1, False)
    >>> ref = lasso_lars(G, C, 0.1).codes
    >>> done.tolist(), torch.allclose(codes.float(), ref, atol=1e-5)
    ([True, True, True], True)
    """
    n, K = C.shape
    tol = alpha * (1e-4 if C.dtype != _F64 else 1e-9)  # rounding of the correlations
    cols = torch.arange(K, device=C.device)
    cap = 0
    done = torch.zeros(n, dtype=torch.bool, device=C.device)
    U = C.new_zeros(n, 2 * K, dtype=_F64)  # (columns >= K: virtual atoms)
    rows = torch.arange(n, device=C.device)  # the rows not settled yet
    C64 = C.to(_F64)
    for _ in range(max_iter):
        act = sgn_K != 0
        m = max(1, int(act.sum(1).max()))
        if m > cap:  # room for the support to grow without rebuilding each time
            cap = min(K, m + 16)
            Ge, Gk = _tables(G, cap)
        idx = _slots(act, m, K, cols)
        free, atom = idx >= K, idx.clamp_max(K - 1)  # (atom: gatherable from C)
        sgn = sgn_K.gather(1, atom).masked_fill_(free, 0.0)
        G_SS = gram_block(Ge, idx)
        rhs = (C64.gather(1, atom) - alpha * sgn).masked_fill_(free, 0)
        L, singular = cholesky_checked(G_SS)
        codes = torch.cholesky_solve(rhs.unsqueeze(2), L).squeeze(2)
        ok = ~singular & torch.isfinite(codes).all(1)
        corr = C64 - F.embedding_bag(idx, Gk, per_sample_weights=codes.to(Gk.dtype),
                                     mode="sum")
        wrong_sign = (codes * sgn <= 0) & ~free
        over = (corr > alpha + tol) if positive else (corr.abs() > alpha + tol)
        joins = ~act & over
        settled = ok & ~wrong_sign.any(1) & ~joins.any(1)
        U[rows[settled].unsqueeze(1), idx[settled]] = codes[settled]
        done[rows[settled]] = True
        keep = ~settled
        if not bool(keep.any()):
            break
        # every violated condition of the other rows changes at once
        drop_K = torch.zeros_like(sgn_K).scatter_add_(
            1, atom, wrong_sign.to(_F64)) > 0
        sgn_K = torch.where(drop_K, 0.0, sgn_K)
        sgn_K = torch.where(joins, 1.0 if positive else corr.sign(), sgn_K)[keep]
        rows, C64 = rows[keep], C64[keep]
    return done, U[:, :K]
