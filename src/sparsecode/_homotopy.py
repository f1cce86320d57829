"""The batched lasso homotopy (LARS-lasso path) in Gram form.

Every row follows its regularisation path from ``lambda = max|c|`` down to
``alpha``. The state of a row is its *slots*: a padded list of its active
atoms (``idx``), their signs (``sgn``, 0 on a free slot) and their codes
(``code``), the current ``lambda`` and, for every atom, its distances to the
two ties: ``P = lambda - c`` and ``Q = lambda + c`` for the correlation ``c``
of the atom with the residual (``inf`` for the active atoms, which never
enter again while active). A free slot points to a *virtual atom* of its
own (index ``K + slot``) whose Gram row is a unit vector, so the Gram block
of the slots is the true ``G[S, S]`` bordered by an identity: it is
positive definite without any masking, and the direction on a free slot is 0.

One breakpoint costs one batched Cholesky solve on the slots, one sparse
product ``d @ G`` (an ``embedding_bag`` over the slots) and eight element-wise
passes over ``(rows, K)``; entering and leaving atoms are written with
gathers and scatters, without boolean indexing, so a step synchronises with
the host only for the loop's bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["homotopy", "spd_solve"]


@dataclass
class _Rows:
    """The state of the rows still on their path."""

    todo: torch.Tensor  # (n,) row numbers in the input
    idx: torch.Tensor  # (n, s) atom of each slot (K + slot when free)
    sgn: torch.Tensor  # (n, s) +-1 on active slots, 0 on free ones
    code: torch.Tensor  # (n, s) codes of the slots
    P: torch.Tensor  # (n, K) lam - c (inf on active atoms)
    Q: torch.Tensor  # (n, K) lam + c (inf on active atoms; unused if positive)
    lam: torch.Tensor  # (n,) current penalty on the path

    def take(self, keep: torch.Tensor) -> _Rows:
        return _Rows(*(t[keep] for t in (self.todo, self.idx, self.sgn, self.code,
                                          self.P, self.Q, self.lam)))


def _extended_gram(G: torch.Tensor, s: int) -> torch.Tensor:
    """``G`` bordered by ``s`` virtual unit atoms orthogonal to everything."""
    K = G.shape[0]
    Ge = G.new_zeros(K + s, K + s)
    Ge[:K, :K] = G
    Ge[K:, K:] = torch.eye(s, dtype=G.dtype, device=G.device)
    return Ge


def _grow(r: _Rows, K: int, s_new: int) -> _Rows:
    """More slots for every row (the new ones free)."""
    n, s = r.idx.shape
    extra = torch.arange(K + s, K + s_new, device=r.idx.device).expand(n, -1)
    r.idx = torch.cat([r.idx, extra], 1)
    r.sgn = torch.cat([r.sgn, r.sgn.new_zeros(n, s_new - s)], 1)
    r.code = torch.cat([r.code, r.code.new_zeros(n, s_new - s)], 1)
    return r


def spd_solve(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve ``A w = b`` for a batch of PSD matrices (min-norm where singular)."""
    L, info = torch.linalg.cholesky_ex(A)
    w = torch.cholesky_solve(b.unsqueeze(2), L).squeeze(2)
    bad = (info != 0) | ~torch.isfinite(w).all(1)
    if bool(bad.any()):  # (nearly) collinear atoms on a support: min-norm solution
        w[bad] = (torch.linalg.pinv(A[bad], hermitian=True)
                  @ b[bad].unsqueeze(2)).squeeze(2)
    return w


def _direction(Ge: torch.Tensor, idx: torch.Tensor, sgn: torch.Tensor) -> torch.Tensor:
    """Solve ``G[S, S] d = sgn`` on every row's slots (min-norm if singular)."""
    s = idx.shape[1]
    flat = idx.unsqueeze(2) * Ge.shape[0] + idx.unsqueeze(1)
    G_SS = Ge.reshape(-1).index_select(0, flat.reshape(-1)).reshape(idx.shape[0], s, s)
    return spd_solve(G_SS, sgn)


def _put(T: torch.Tensor, j: torch.Tensor, value: torch.Tensor, where: torch.Tensor):
    """``T[row, j[row]] = value[row]`` on the rows where ``where`` holds."""
    j = j.unsqueeze(1)
    new = torch.where(where.unsqueeze(1), value.unsqueeze(1), T.gather(1, j))
    T.scatter_(1, j, new)


def _entering(r: _Rows, a: torch.Tensor, positive: bool, eps: float):
    """Step to the next atom joining, its index, its side, and ``1 -+ a``."""
    # c reaches +lam after P / (1 - a) and -lam after Q / (1 + a); the next
    # atom to join has the largest positive rate (1 - a) / P or (1 + a) / Q
    up_den = 1 - a
    rate = up_den / r.P
    dn_den = None
    if not positive:
        dn_den = 1 + a
        rate = torch.fmax(rate, dn_den.div(r.Q), out=rate)
    r_in, j_in = rate.max(1)
    if not bool((r_in <= 1 / eps).all()):  # a step below eps (an atom at its tie
        rate.masked_fill_(~(rate <= 1 / eps), 0.0)  # at rounding level, e.g. one
        r_in, j_in = rate.max(1)  # that has just left) or a 0/0: skip it
    j1 = j_in.unsqueeze(1)
    up_rate = (up_den.gather(1, j1) / r.P.gather(1, j1)).squeeze(1)
    up = (up_rate >= r_in) & (up_rate <= 1 / eps)
    inf = torch.full_like(r_in, float("inf"))
    return torch.where(r_in > 0, 1 / r_in, inf), j_in, up, up_den, dn_den


def _step(
    Ge: torch.Tensor, Gk: torch.Tensor, r: _Rows, alpha: float, positive: bool,
    lasso: bool,
) -> None:
    """One breakpoint for every row, in place on ``r``."""
    K = r.P.shape[1]
    eps = torch.finfo(r.P.dtype).eps * 10
    d_S = _direction(Ge, r.idx, r.sgn)  # 0 on free slots
    # rate of change of the correlations: d @ G for a d with s nonzeros per row
    a = F.embedding_bag(r.idx, Gk, per_sample_weights=d_S, mode="sum")
    g_in, j_in, up, up_den, dn_den = _entering(r, a, positive, eps)
    # an active code moving against its sign leaves when it reaches zero
    inf = torch.full_like(g_in, float("inf"))
    if lasso:
        g_drop = torch.where(r.sgn * d_S < 0, -r.code / d_S, inf.unsqueeze(1))
        g_out, slot_out = g_drop.min(1)
    else:
        g_out, slot_out = inf, torch.zeros_like(j_in)
    gamma = torch.minimum(torch.minimum(g_in, g_out), r.lam - alpha).clamp_min_(0)
    g1 = gamma.unsqueeze(1)
    r.code.addcmul_(g1, d_S)
    r.P.addcmul_(g1, up_den, value=-1.0)
    if not positive:
        r.Q.addcmul_(g1, dn_den, value=-1.0)
    finished = gamma >= r.lam - alpha
    r.lam = torch.where(finished, torch.full_like(r.lam, alpha), r.lam - gamma)
    drop = ~finished & (g_out <= g_in)
    enter = ~finished & ~drop
    # a leaving atom is back at its tie: c = sign * lam
    j_out = r.idx.gather(1, slot_out.unsqueeze(1)).squeeze(1).clamp_max(K - 1)
    s_out = r.sgn.gather(1, slot_out.unsqueeze(1)).squeeze(1)
    # (an entering one is excluded from joining again while active)
    changed = drop | enter
    j = torch.where(drop, j_out, j_in)
    _put(r.P, j, torch.where(drop, r.lam * (1 - s_out), inf), changed)
    if not positive:
        _put(r.Q, j, torch.where(drop, r.lam * (1 + s_out), inf), changed)
    # one slot changes per moving row: the leaving atom's, or the first free one
    free = (r.sgn == 0).to(torch.uint8).argmax(1)
    slot = torch.where(drop, slot_out, free)
    new_idx = torch.where(drop, K + slot_out, j_in)
    new_sgn = torch.where(drop, 0.0, torch.where(up, 1.0, -1.0)).to(r.sgn.dtype)
    _put(r.idx, slot, new_idx, changed)
    _put(r.sgn, slot, new_sgn, changed)
    _put(r.code, slot, torch.zeros_like(new_sgn), drop)


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
    """
    n_all, K = C.shape
    U_out = C.new_zeros(n_all, K + K)
    lam0 = C.amax(1) if positive else C.abs().amax(1)
    todo = torch.nonzero(lam0 > alpha).squeeze(1)
    if todo.numel() == 0 or max_steps <= 0:
        return U_out[:, :K], 0, todo.numel() == 0
    Ct, lam = C[todo], lam0[todo]
    n = todo.numel()
    s = min(K, 8)
    j0 = (Ct if positive else Ct.abs()).argmax(1, keepdim=True)
    idx = torch.arange(K, K + s, device=C.device).repeat(n, 1)
    idx[:, :1] = j0
    sgn = C.new_zeros(n, s)
    sgn[:, :1] = Ct.gather(1, j0).sign()
    lam1 = lam.unsqueeze(1)
    P = (lam1 - Ct).scatter_(1, j0, float("inf"))
    Q = C.new_zeros(n, 0) if positive else (lam1 + Ct).scatter_(1, j0, float("inf"))
    r = _Rows(todo, idx, sgn, C.new_zeros(n, s), P, Q, lam)
    Ge = _extended_gram(G, s)
    Gk = Ge[:, :K].contiguous()
    it = 0
    while it < max_steps and r.todo.numel() > 0:
        it += 1
        _step(Ge, Gk, r, alpha, positive, lasso)
        done = r.lam <= alpha
        n_done, n_full = (int(v) for v in torch.stack([
            done.sum(), ((r.sgn != 0).sum(1) == r.idx.shape[1]).sum()]).tolist())
        if n_done and (n_done == r.todo.numel() or n_done * 4 > r.todo.numel()):
            U_out[r.todo[done].unsqueeze(1), r.idx[done]] = r.code[done]
            r = r.take(~done)
        s = r.idx.shape[1]
        if n_full and s < K:  # a row may need another slot next step
            r = _grow(r, K, min(K, 2 * s))
            Ge = _extended_gram(G, r.idx.shape[1])
            Gk = Ge[:, :K].contiguous()
    if r.todo.numel() > 0:
        U_out[r.todo.unsqueeze(1), r.idx] = r.code
    return U_out[:, :K], it, r.todo.numel() == 0
