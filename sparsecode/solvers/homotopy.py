"""The batched lasso homotopy (LARS-lasso path) in Gram form.

Every row follows its regularisation path from ``lambda = max|c|`` down to
``alpha``: its active atoms ("slots", padded with virtual unit atoms so no mask
is needed), their signs, codes and the inverse of their Gram block, updated by
a rank-one step (float64) per breakpoint; rows whose support is singular use
the pseudo-inverse. When 1/8 of the rows remain, `active_set.finish` tries to
jump each to its solution. `homotopy` is the entry point (`greedy.lasso_lars`
and `greedy.lars` call it); design notes: docs/design.md, section 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .active_set import cholesky_checked, extended_gram, finish, gram_block, pinv_solve

__all__ = ["homotopy", "spd_solve"]

_F64 = torch.float64
_TAIL = 8  # the active-set finisher takes over at 1/_TAIL of the rows


@dataclass
class _Rows:
    """The state of the rows still on their path."""

    todo: torch.Tensor  # (n,) row numbers in the input
    idx: torch.Tensor  # (n, s) atom of each slot (K + slot when free)
    sgn: torch.Tensor  # (n, s) float64, +-1 on active slots, 0 on free ones
    code: torch.Tensor  # (n, s) float64 codes of the slots
    PQ: torch.Tensor  # (n, W) [lam - c | lam + c] (inf on active atoms)
    lam: torch.Tensor  # (n, 1) float64 current penalty on the path
    Hinv: torch.Tensor  # (n, s, s) float64 inverse of the slots' Gram block
    d: torch.Tensor  # (n, s) float64 direction Hinv @ sgn (0 on free slots)
    sing: torch.Tensor  # (n, 1) Hinv is a pseudo-inverse (collinear support)
    any_sing: bool = False  # some row may have sing set

    def take(self, keep: torch.Tensor) -> _Rows:
        return _Rows(*(t[keep] for t in (self.todo, self.idx, self.sgn, self.code,
                                          self.PQ, self.lam, self.Hinv, self.d,
                                          self.sing)),
                     any_sing=self.any_sing)

    def refresh(self, rows: torch.Tensor, T: _Tables) -> None:
        """Rebuild ``Hinv`` and ``d`` of some rows from their Gram blocks."""
        inv, d, sing = _inverse(gram_block(T.Ge, self.idx[rows]), self.sgn[rows],
                                T.eps)
        self.Hinv[rows], self.d[rows], self.sing[rows] = inv, d, sing.unsqueeze(1)
        self.any_sing = bool(self.sing.any())


@dataclass
class _Tables:
    """The Gram matrix bordered by ``s`` virtual atoms, in the forms a step reads."""

    Ge: torch.Tensor  # (K + s, K + s) float64, identity on the virtual atoms
    GG: torch.Tensor  # (K + s, W) [-G | G] rows (zero on the virtual atoms)
    eps: float  # precision of G's entries (its input dtype's)

    @classmethod
    def build(cls, G: torch.Tensor, s: int, positive: bool) -> _Tables:
        K = G.shape[0]
        Ge = extended_gram(G, s)
        GG = G.new_zeros(K + s, K if positive else 2 * K)
        GG[:K, :K] = -G
        if not positive:
            GG[:K, K:] = G
        return cls(Ge, GG, torch.finfo(G.dtype).eps)


def _grow(r: _Rows, K: int, s_new: int) -> _Rows:
    """More slots for every row (the new ones free)."""
    n, s = r.idx.shape
    extra = torch.arange(K + s, K + s_new, device=r.idx.device).expand(n, -1)
    r.idx = torch.cat([r.idx, extra], 1)
    r.sgn = torch.cat([r.sgn, r.sgn.new_zeros(n, s_new - s)], 1)
    r.code = torch.cat([r.code, r.code.new_zeros(n, s_new - s)], 1)
    r.d = torch.cat([r.d, r.d.new_zeros(n, s_new - s)], 1)
    Hinv = torch.eye(s_new, dtype=_F64, device=r.Hinv.device).repeat(n, 1, 1)
    Hinv[:, :s, :s] = r.Hinv
    r.Hinv = Hinv
    return r


def spd_solve(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve ``A w = b`` for a batch of PSD matrices (min-norm where singular).

    Parameters
    ----------
    A : torch.Tensor of shape (n, m, m)
    b : torch.Tensor of shape (n, m)

    Returns
    -------
    torch.Tensor of shape (n, m)

    Examples
    --------
    >>> import torch
    >>> from sparsecode.solvers.homotopy import spd_solve
    >>> A = torch.tensor([[[4.0, 2.0], [2.0, 3.0]], [[1.0, 1.0], [1.0, 1.0]]])
    >>> w = spd_solve(A, torch.tensor([[2.0, 1.0], [2.0, 2.0]]))
    >>> torch.allclose(w, torch.tensor([[0.5, 0.0], [1.0, 1.0]]))
    True
    """
    L, singular = cholesky_checked(A)
    w = torch.cholesky_solve(b.unsqueeze(2), L).squeeze(2)
    bad = singular | ~torch.isfinite(w).all(1)
    if bool(bad.any()):  # (nearly) collinear atoms on a support: min-norm solution
        w[bad] = pinv_solve(A[bad], b[bad], torch.finfo(A.dtype).eps)[1].to(w.dtype)
    return w


def _inverse(A: torch.Tensor, b: torch.Tensor, eps: float
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverses of a batch of PSD matrices (pseudo-inverses where singular).

    Returns the inverses, their products with ``b`` and a mask of the rows
    that needed the pseudo-inverse (`pinv_solve`; ``eps`` is the precision
    of the entries, that of the input's dtype).
    """
    L, singular = cholesky_checked(A)
    eye = torch.eye(A.shape[1], dtype=A.dtype, device=A.device)
    inv = torch.cholesky_inverse(torch.where(singular.view(-1, 1, 1), eye, L))
    x = (inv @ b.unsqueeze(2)).squeeze(2)
    sing = singular | ~torch.isfinite(inv).flatten(1).all(1)
    if bool(sing.any()):  # (nearly) collinear atoms on a support: min-norm solution
        inv[sing], x[sing] = pinv_solve(A[sing], b[sing], eps)
    return inv, x, sing


@dataclass
class _Consts:
    """Constants a step reads, made once per call (Python scalars in ``where``
    cost a tensor each time)."""

    K: int
    rev: torch.Tensor  # (W,) W - column number, in the input dtype
    n_cols: int  # W
    n_cols_t: torch.Tensor  # W, in the input dtype
    big: torch.Tensor  # 1 / (10 eps) of the input dtype: larger rates are skipped
    inf: torch.Tensor  # inf, float64
    zero64: torch.Tensor
    plus: torch.Tensor  # +1, float64
    minus: torch.Tensor  # -1, float64
    alpha: torch.Tensor  # float64
    side: torch.Tensor  # (1,) [+1] or (2,) [+1, -1]: tie values lam * (1 - s * side)
    growth: torch.Tensor  # largest trusted rank-one term of an inverse, float64

    @classmethod
    def build(cls, K: int, W: int, alpha: float, like: torch.Tensor,
              G: torch.Tensor) -> _Consts:
        def f64(v):
            return torch.tensor(v, dtype=_F64, device=like.device)

        dev = like.device
        return cls(
            K, W - torch.arange(W, device=dev, dtype=like.dtype), W,
            like.new_tensor(float(W)),
            like.new_tensor(1 / (torch.finfo(like.dtype).eps * 10)),
            f64(float("inf")), f64(0.0), f64(1.0), f64(-1.0),
            f64(alpha), f64([1.0] if W == K else [1.0, -1.0]),
            torch.finfo(_F64).eps ** (-1 / 3) / G.diagonal().amax().to(_F64).clamp_min(
                torch.finfo(_F64).tiny),
        )


def _update_inverse(
    Ge: torch.Tensor, r: _Rows, c: _Consts, j_in: torch.Tensor, slot: torch.Tensor,
    enter: torch.Tensor, moving: torch.Tensor, new_sgn: torch.Tensor,
) -> torch.Tensor:
    """Rank-one update of ``r.Hinv`` and ``r.d`` for one slot changing on every
    moving row.

    Call before the slot is rewritten. An atom ``j`` entering the free slot
    ``p`` borders the block with ``b = G[j, S]``: with ``y = Hinv b`` and the
    Schur complement ``sch = G[j, j] - b.y``, ``Hinv += w w^T / sch - e_p e_p^T``
    for ``w = y - e_p``. An atom leaving slot ``p`` frees it: with
    ``y = Hinv e_p``, ``Hinv += -y y^T / y_p + e_p e_p^T``. Returns the rows
    whose update is not trustworthy, for the caller to rebuild their inverse
    from the Gram block: a row whose block was singular, and a row whose
    rank-one term ``w w^T / sch`` exceeds ``eps^(-1/3) / max G_jj`` in norm
    (an atom nearly collinear with the support joining, or one of such a
    group leaving). An update multiplies the error already in ``Hinv`` by
    about that norm, so two in a row within the bound leave ``G Hinv``
    within ``eps^(1/3)`` of the identity; without the bound, three updates
    on a block of condition 1e9 (each with a Schur complement above
    ``sqrt(eps)``) once left it off by 0.6, and a LARS path off its
    equiangular direction.
    """
    e_p = torch.zeros_like(r.code).scatter_(1, slot, 1.0)
    b = Ge.take(j_in * Ge.shape[0] + r.idx)  # G[j, S] (0 on the virtual atoms)
    y = (r.Hinv * torch.where(enter, b, e_p).unsqueeze(1)).sum(2)
    g_jj = Ge.diagonal().take(j_in)
    sch = torch.where(enter, g_jj - (b * y).sum(1, keepdim=True), -y.gather(1, slot))
    w = torch.where(enter, y - e_p, y)
    beta = torch.where(moving, sch.reciprocal(), c.zero64)
    r.Hinv.addcmul_((beta * w).unsqueeze(2), w.unsqueeze(1))
    tau = torch.where(enter, c.minus, torch.where(moving, c.plus, c.zero64))
    r.Hinv.diagonal(dim1=1, dim2=2).scatter_add_(1, slot, tau)
    # the direction for the new signs: d += eta w, with eta = (b.d - new sign)
    # / sch for an entering atom and d_p / sch = -d_p / y_p for a leaving one
    eta = torch.where(enter, (b * r.d).sum(1, keepdim=True) - new_sgn,
                      r.d.gather(1, slot))
    r.d.addcmul_(beta * eta, w)
    size = beta.abs() * (w * w).sum(1, keepdim=True)  # (NaN: not trusted either)
    bad = moving & ~(size <= c.growth)
    return bad | (moving & r.sing) if r.any_sing else bad


def _put(T: torch.Tensor, j: torch.Tensor, value: torch.Tensor, where: torch.Tensor):
    """``T[row, j[row]] = value[row]`` where ``where`` holds (all ``(n, 1)``)."""
    T.scatter_(1, j, torch.where(where, value, T.gather(1, j)))


def _step(T: _Tables, r: _Rows, c: _Consts, positive: bool, lasso: bool
          ) -> torch.Tensor:
    """One breakpoint for every row, in place on ``r``; returns rows to repair.

    Per-row quantities are ``(n, 1)`` columns, so they broadcast without views.
    """
    K, dt = c.K, r.PQ.dtype
    d = r.d
    # [1 - a | 1 + a] for the rate of change a = d @ G of the correlations:
    # c reaches +lam after P / (1 - a) and -lam after Q / (1 + a), so the next
    # atom to join has the largest positive rate den / PQ; rates past 1/eps (an
    # atom at its tie at rounding level, e.g. one that has just left) and 0/0
    # are skipped
    den = F.embedding_bag(r.idx, T.GG, per_sample_weights=d.to(dt),
                          mode="sum").add_(1.0)
    rate = den / r.PQ
    r_in = rate.amax(1, keepdim=True)
    if not bool((r_in <= c.big).all()):
        rate.masked_fill_(~(rate <= c.big), 0.0)
        r_in = rate.amax(1, keepdim=True)
    # the first column reaching it, with float passes only: (rate - r_in) is 0
    # there and negative elsewhere (on the CPU, comparisons, boolean where and
    # the index-tracking max(1) are 3-5x slower than float arithmetic)
    at_max = torch.sub(rate, r_in).sign_()  # 0 at the maximum, -1 elsewhere
    j2 = c.n_cols - torch.addcmul(c.rev, at_max, c.n_cols_t).amax(1, keepdim=True
                                                                  ).long()
    j_in, up = (j2, None) if positive else (j2.remainder(K), j2 < K)
    g_in = r_in.to(_F64).clamp_min_(1e-300).reciprocal_()  # ~inf when none can join
    # an active code moving against its sign leaves when it reaches zero
    if lasso:
        g_out, slot_out = torch.where(r.sgn * d < 0, torch.div(r.code, d).neg_(),
                                      c.inf).min(1, keepdim=True)
    else:
        g_out, slot_out = c.inf.expand_as(g_in), torch.zeros_like(j_in)
    to_end = r.lam - c.alpha
    gamma = torch.minimum(torch.minimum(g_in, g_out), to_end).clamp_min_(0)
    r.code.addcmul_(gamma, d)
    r.PQ.addcmul_(gamma.to(dt), den, value=-1.0)
    finished = gamma >= to_end
    r.lam = torch.where(finished, c.alpha, r.lam - gamma)
    moving = ~finished
    drop = moving & (g_out <= g_in)
    enter = moving ^ drop
    # a leaving atom is back at its tie (c = s_out * lam); an entering one is
    # excluded from joining again while active
    j = torch.where(drop, r.idx.gather(1, slot_out).clamp_max_(K - 1), j_in)
    s_out = r.sgn.gather(1, slot_out)
    tie = torch.where(drop, torch.addcmul(r.lam, r.lam * s_out, c.side, value=-1.0),
                      c.inf)
    r.PQ.scatter_(1, j if positive else torch.cat([j, j + K], 1), tie.to(dt))
    # one slot changes per moving row: the leaving atom's, or the first free one
    slot = torch.where(drop, slot_out, r.sgn.abs().argmin(1, keepdim=True))
    new_sgn = c.plus if positive else torch.where(up, c.plus, c.minus)
    bad = _update_inverse(T.Ge, r, c, j_in, slot, enter, moving, new_sgn)
    _put(r.idx, slot, torch.where(drop, slot + K, j_in), moving)
    _put(r.sgn, slot, torch.where(drop, c.zero64, new_sgn), moving)
    _put(r.code, slot, c.zero64.expand_as(g_in), drop)
    return bad


def _start(G: torch.Tensor, Ct: torch.Tensor, lam: torch.Tensor, todo: torch.Tensor,
           s: int, positive: bool) -> _Rows:
    """Every row with its largest correlation's atom in slot 0."""
    n, K = Ct.shape
    j0 = (Ct if positive else Ct.abs()).argmax(1, keepdim=True)
    idx = torch.arange(K, K + s, device=Ct.device).repeat(n, 1)
    idx[:, :1] = j0
    sgn = Ct.new_zeros(n, s, dtype=_F64)
    sgn[:, :1] = Ct.gather(1, j0).sign().to(_F64)
    lam1 = lam.unsqueeze(1)
    PQ = lam1 - Ct if positive else torch.cat([lam1 - Ct, lam1 + Ct], 1)
    PQ.scatter_(1, j0 if positive else torch.cat([j0, j0 + K], 1), float("inf"))
    Hinv = torch.eye(s, dtype=_F64, device=Ct.device).repeat(n, 1, 1)
    Hinv[:, 0, 0] = 1 / G.diagonal()[j0.squeeze(1)].to(_F64)
    return _Rows(todo, idx, sgn, torch.zeros_like(sgn), PQ, lam1.to(_F64), Hinv,
                 Hinv.diagonal(dim1=1, dim2=2) * sgn,
                 torch.zeros_like(lam1, dtype=torch.bool))


def homotopy(
    G: torch.Tensor, C: torch.Tensor, alpha: float, *, max_steps: int,
    positive: bool, lasso: bool,
) -> tuple[torch.Tensor, int, bool]:
    """Follow every row's homotopy path from ``max|c|`` down to ``alpha``.

    Parameters
    ----------
    G : torch.Tensor of shape (K, K)
        Gram matrix of the atoms.
    C : torch.Tensor of shape (n, K)
        Correlations of the samples with the atoms.
    alpha : float
        Where the path stops (0 with ``lasso=False`` for plain LARS).
    max_steps : int
        Breakpoints at most.
    positive : bool
        Non-negative codes.
    lasso : bool
        Let atoms leave the support when their code reaches 0 (LARS-lasso).

    Returns
    -------
    codes, steps, converged

    Examples
    --------
    >>> import torch
    >>> from sparsecode.solvers import lasso_lars
    >>> from sparsecode.solvers.homotopy import homotopy
    >>> g = torch.Generator().manual_seed(0)
    >>> V = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=1)
    >>> C = torch.randn(3, 8, generator=g) @ V.T
    >>> codes, steps, done = homotopy(V @ V.T, C, 0.1, max_steps=100, positive=False,
    ...                               lasso=True)
    >>> done, torch.allclose(codes, lasso_lars(V @ V.T, C, 0.1).codes, atol=1e-5)
    (True, True)
    """
    with torch.inference_mode():  # (no autograd bookkeeping on ~100 small ops a step)
        codes, it, done = _path(G, C, alpha, max_steps, positive, lasso)
    return codes.clone(), it, done


def _finish_tail(G: torch.Tensor, C: torch.Tensor, r: _Rows, alpha: float,
                 positive: bool, U_out: torch.Tensor) -> _Rows:
    """Solve the rows that `finish` settles from their current signs; return
    the rest (for the homotopy to carry on)."""
    K = C.shape[1]
    sgn_K = r.sgn.new_zeros(r.idx.shape[0], K + r.idx.shape[1])
    sgn_K = sgn_K.scatter_(1, r.idx, r.sgn)[:, :K]
    ok, codes = finish(G, C[r.todo], sgn_K, alpha, positive)
    if not bool(ok.any()):
        return r
    U_out[r.todo[ok], :K] = codes[ok].to(U_out.dtype)
    return r.take(~ok)


def _path(G: torch.Tensor, C: torch.Tensor, alpha: float, max_steps: int,
          positive: bool, lasso: bool) -> tuple[torch.Tensor, int, bool]:
    n_all, K = C.shape
    U_out = C.new_zeros(n_all, K + K)
    lam0 = C.amax(1) if positive else C.abs().amax(1)
    todo = torch.nonzero(lam0 > alpha).squeeze(1)
    if todo.numel() == 0 or max_steps <= 0:
        return U_out[:, :K], 0, todo.numel() == 0
    s = min(K, 8)
    r = _start(G, C[todo], lam0[todo], todo, s, positive)
    T = _Tables.build(G, s, positive)
    c = _Consts.build(K, r.PQ.shape[1], alpha, C, G)

    def write(rows: _Rows, sel: torch.Tensor | slice = slice(None)) -> None:
        U_out[rows.todo[sel].unsqueeze(1), rows.idx[sel]] = rows.code[sel].to(
            U_out.dtype)

    it, tail, tried = 0, max(16, todo.numel() // _TAIL), not lasso
    while it < max_steps and r.todo.numel() > 0:
        if not tried and r.todo.numel() <= tail:
            tried = True  # the last rows: try to jump to their solutions
            r = _finish_tail(G, C, r, alpha, positive, U_out)
            if r.todo.numel() == 0:
                break
        it += 1
        bad = _step(T, r, c, positive, lasso).squeeze(1)
        done = (r.lam <= alpha).squeeze(1)
        n_done, n_full, n_bad = (int(v) for v in torch.stack([
            done.sum(), (r.sgn.abs().amin(1) > 0).sum(), bad.sum()]).tolist())
        if n_bad:  # rebuild the inverses that a rank-one update cannot give
            r.refresh(bad, T)
        if n_done and (n_done == r.todo.numel() or n_done * 4 > r.todo.numel()):
            write(r, done)
            r = r.take(~done)
        s = r.idx.shape[1]
        if n_full and s < K:  # a row may need another slot next step
            r = _grow(r, K, min(K, s + 4))
            if T.Ge.shape[0] < K + r.idx.shape[1]:  # (spare virtual atoms are unused)
                T = _Tables.build(G, min(K, r.idx.shape[1] + 12), positive)
    if r.todo.numel() > 0:
        write(r)
    return U_out[:, :K], it, r.todo.numel() == 0
