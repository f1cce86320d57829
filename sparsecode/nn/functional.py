"""Sparse autograd primitives for autoencoders with sparse codes.

With few active latents per row (``k`` for TopK, varying by row for trained
ReLU-family activations) only the encoder forward needs a dense ``(batch, m)`` matmul.
The rest works on the active (row, latent) pairs, held by a `Pattern` in CSR order
with values as flat ``(nnz,)`` tensors: :func:`pattern_linear` reads ``x @ W.T + b``
at the pattern from a pre-activation computed without autograd, its backward
(``embedding_bag`` calls) touching only the active rows of ``W``;
:func:`pattern_decode` is ``S @ W`` by ``embedding_bag``, its value gradient sampled
dot products (`torch.sparse.sampled_addmm`); :func:`gather_linear`,
:func:`sparse_decode` do the same for TopK's ``(batch, k)`` index/value pairs. All
take plain tensors, work under ``torch.autocast`` (sparse parts in the weights'
dtype), and never sync with the device, except `Pattern.from_mask` when not told the
number of pairs.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

__all__ = [
    "Pattern",
    "gather_linear",
    "pattern_decode",
    "pattern_linear",
    "sampled_dot",
    "scatter_rows",
    "sparse_decode",
]


class Pattern:
    """Active ``(row, col)`` pairs of a ``(batch, m)`` matrix, in CSR order.

    Parameters
    ----------
    crow : torch.Tensor of shape (batch + 1,), int64
        Row pointers: the pairs of row ``b`` are ``crow[b]:crow[b + 1]``.
    col, row : torch.Tensor of shape (nnz,), int64
        Column (latent) and row of each pair.
    m : int
        Number of columns.

    Attributes
    ----------
    flat : torch.Tensor of shape (nnz,) or None
        The flat positions ``row * m + col`` (from `from_flat`, `from_mask`).

    Examples
    --------
    >>> Pattern.from_mask(torch.tensor([[1, 0, 1], [0, 1, 0]]) > 0).crow.tolist()
    [0, 2, 3]
    """

    __slots__ = ("_by_col", "col", "crow", "flat", "m", "row")

    def __init__(self, crow: torch.Tensor, col: torch.Tensor, row: torch.Tensor,
                 m: int) -> None:
        self.crow, self.col, self.row, self.m = crow, col, row, int(m)
        self.flat: torch.Tensor | None = None  # row * m + col, when known
        self._by_col: tuple[torch.Tensor, ...] | None = None

    @classmethod
    def from_indices(cls, idx_BK: torch.Tensor, m: int) -> Pattern:
        """``k`` pairs per row at ``idx`` (repeated indices allowed)."""
        B, K = idx_BK.shape
        dev = idx_BK.device
        crow = torch.arange(0, B * K + 1, K, device=dev)
        row = torch.arange(B, device=dev).repeat_interleave(K)
        return cls(crow, idx_BK.reshape(-1), row, m)

    @classmethod
    def from_mask(cls, mask_BM: torch.Tensor, nnz: int | None = None) -> Pattern:
        """The ``True`` entries of a boolean mask; ``nnz``, their number, is
        counted when not given (on a GPU, a host synchronisation)."""
        flat = mask_BM.reshape(-1)
        if nnz is None or flat.device.type == "cpu":
            pos = flat.nonzero().squeeze(1)
        else:
            pos = torch.nonzero_static(flat, size=int(nnz)).squeeze(1)
        return cls.from_flat(pos, *mask_BM.shape)

    @classmethod
    def from_flat(cls, pos: torch.Tensor, batch: int, m: int) -> Pattern:
        """The pairs at the increasing flat positions ``pos`` (``row * m + col``)
        of a ``(batch, m)`` matrix; `flat` keeps ``pos``."""
        row = pos.div(m, rounding_mode="floor")
        col = pos - row * m
        crow = torch.searchsorted(row, torch.arange(batch + 1, device=pos.device))
        pattern = cls(crow, col, row, m)
        pattern.flat = pos
        return pattern

    @property
    def batch(self) -> int:
        """Number of rows."""
        return self.crow.shape[0] - 1

    @property
    def nnz(self) -> int:
        """Number of pairs."""
        return self.col.shape[0]

    def by_col(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The pattern sorted by column (computed once, then cached): ``ccol``,
        column pointers (m + 1,); ``row``, rows in column order (increasing
        within a column); ``order``, positions of those pairs in CSR order."""
        if self._by_col is None:
            order = torch.argsort(self.col.to(_index_dtype(self.m)), stable=True)
            counts = torch.zeros(self.m, dtype=torch.int64, device=self.col.device)
            counts.index_add_(0, self.col, torch.ones_like(self.col))  # no sync
            ccol = counts.new_zeros(self.m + 1)
            torch.cumsum(counts, 0, out=ccol[1:])
            self._by_col = (ccol, self.row.index_select(0, order), order)
        return self._by_col

    def csr(self, values: torch.Tensor) -> torch.Tensor:
        """A ``(batch, m)`` sparse CSR tensor with ``values`` at the pairs."""
        with warnings.catch_warnings():  # torch's "beta" warning
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(self.crow, self.col, values,
                                           (self.batch, self.m))

    def matmul(self, values: torch.Tensor, W_MD: torch.Tensor) -> torch.Tensor:
        """``S @ W`` for ``S`` holding ``values`` at the pairs: (batch, d)."""
        return F.embedding_bag(self.col, W_MD, self.crow, mode="sum",
                               per_sample_weights=values, include_last_offset=True)

    def t_matmul(self, values: torch.Tensor, rhs_BD: torch.Tensor) -> torch.Tensor:
        """``S.T @ rhs`` for ``S`` holding ``values`` at the pairs: (m, d).
        Repeated pairs are summed."""
        ccol, row, order = self.by_col()
        return F.embedding_bag(row, rhs_BD, ccol, mode="sum",
                               per_sample_weights=values.index_select(0, order),
                               include_last_offset=True)

    def sampled_dot(self, g_BD: torch.Tensor, W_MD: torch.Tensor) -> torch.Tensor:
        """``out[p] = g[row[p]] . W[col[p]]`` for every pair: (nnz,). A sampled
        dense-dense matmul; pairs must be distinct."""
        pattern = self.csr(g_BD.new_zeros(self.nnz))
        return torch.sparse.sampled_addmm(pattern, g_BD, W_MD.T, beta=0.0).values()


def _index_dtype(m: int) -> torch.dtype:
    """The narrowest integer type holding ``0..m-1`` (faster stable sorts)."""
    return (torch.int16 if m <= 2**15 else torch.int32 if m <= 2**31
            else torch.int64)


def _vec_mat(v_M: torch.Tensor, W_MD: torch.Tensor) -> torch.Tensor:
    """``v @ W``; on the CPU a multiply-and-sum (beats GEMM for uncached W)."""
    if W_MD.device.type == "cpu":
        return (W_MD * v_M.unsqueeze(1)).sum(0)
    return v_M @ W_MD


class _PatternLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_BD, W_MD, b_M, center_D, pattern, pre_N):
        x_c = x_BD if center_D is None else x_BD - center_D
        ctx.save_for_backward(x_c, W_MD)
        ctx.pattern, ctx.x_dtype = pattern, x_BD.dtype
        return pre_N.to(W_MD.dtype)

    @staticmethod
    def backward(ctx, g_N):
        x_c, W_MD = ctx.saved_tensors
        pattern = ctx.pattern
        g_N = g_N.to(W_MD.dtype)
        gx = gW = gb = gc = None
        if ctx.needs_input_grad[0]:
            gx = pattern.matmul(g_N, W_MD).to(ctx.x_dtype)
        if ctx.needs_input_grad[1]:
            gW = pattern.t_matmul(g_N, x_c.to(W_MD.dtype))
        if ctx.needs_input_grad[2] or ctx.needs_input_grad[3]:
            gb = g_N.new_zeros(pattern.m).index_add_(0, pattern.col, g_N)
            if ctx.needs_input_grad[3]:  # sum_b -gx[b], without forming gx
                gc = -_vec_mat(gb, W_MD)
            if not ctx.needs_input_grad[2]:
                gb = None
        return gx, gW, gb, gc, None, None


class _PatternDecode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, vals_N, pattern, W_MD, project):
        vals_N = vals_N.to(W_MD.dtype)
        ctx.save_for_backward(vals_N, W_MD)
        ctx.pattern, ctx.project = pattern, project
        return pattern.matmul(vals_N, W_MD)

    @staticmethod
    def backward(ctx, g_BD):
        vals_N, W_MD = ctx.saved_tensors
        g_BD = g_BD.to(W_MD.dtype)
        gv = gW = None
        project = ctx.project and ctx.needs_input_grad[2]
        if ctx.needs_input_grad[0] or project:
            gv = ctx.pattern.sampled_dot(g_BD, W_MD)
        if ctx.needs_input_grad[2]:
            gW = ctx.pattern.t_matmul(vals_N, g_BD)
            if project:  # gW_m . W_m = sum of v_p gv_p over the pairs of latent m
                along = gv.new_zeros(ctx.pattern.m).index_add_(
                    0, ctx.pattern.col, vals_N * gv)
                gW.addcmul_(along.unsqueeze(1), W_MD, value=-1)
        return (gv if ctx.needs_input_grad[0] else None), None, gW, None


def pattern_linear(
    x_BD: torch.Tensor,
    W_MD: torch.Tensor,
    b_M: torch.Tensor | None,
    pattern: Pattern,
    pre_N: torch.Tensor,
    center_D: torch.Tensor | None = None,
) -> torch.Tensor:
    """Differentiable ``(x - center) @ W.T + b`` at the pairs of ``pattern``.

    Parameters
    ----------
    x_BD : torch.Tensor of shape (batch, d)
        Encoder input.
    W_MD : torch.Tensor of shape (m, d)
        Encoder weight.
    b_M : torch.Tensor of shape (m,) or None
        Encoder bias (None: no bias).
    pattern : Pattern
        The pairs to read.
    pre_N : torch.Tensor of shape (nnz,)
        The values at the pairs, computed without autograd (any dtype).
    center_D : torch.Tensor of shape (d,), optional
        The pre-encoder bias, subtracted from ``x``; gradient ``-(g_b @ W)`` (``g_b``
        the bias gradient), with no (batch, d) gradient unless ``x`` requires grad.

    Returns
    -------
    torch.Tensor of shape (nnz,)
        Gradients flow to ``x``, ``W``, ``b`` and ``center`` at the pairs only.

    Examples
    --------
    >>> x, W = torch.ones(2, 4), torch.arange(12.0).reshape(3, 4).requires_grad_()
    >>> p = Pattern.from_indices(torch.tensor([[0], [1]]), 3)
    >>> pattern_linear(x, W, None, p, (x @ W.T).detach()[p.row, p.col]).tolist()
    [6.0, 22.0]
    """
    return _PatternLinear.apply(x_BD, W_MD, b_M, center_D, pattern, pre_N)


def pattern_decode(
    vals_N: torch.Tensor, pattern: Pattern, W_MD: torch.Tensor,
    project: bool = False,
) -> torch.Tensor:
    """``S @ W`` for the sparse codes ``S`` holding ``vals`` at ``pattern``.

    Parameters
    ----------
    vals_N : torch.Tensor of shape (nnz,)
    pattern : Pattern
        Distinct pairs (the value gradient is a sampled matmul).
    W_MD : torch.Tensor of shape (m, d)
        Decoder rows.
    project : bool, default=False
        Return ``W``'s gradient without its component along each unit-norm row
        (`SparseAutoencoderModule.remove_parallel_grad_`'s linear projection, per
        term), the row dots ``gW_m . W_m = sum_p v_p gv_p`` (pairs of row ``m``)
        taken from the value gradient, not from the ``(m, d)`` gradient.

    Returns
    -------
    torch.Tensor of shape (batch, d)

    Examples
    --------
    >>> p, W = Pattern.from_mask(torch.eye(2, 3) > 0), torch.arange(6.0).reshape(3, 2)
    >>> pattern_decode(torch.tensor([2.0, 3.0]), p, W).tolist()  # 2 W[0], 3 W[1]
    [[0.0, 2.0], [6.0, 9.0]]
    """
    return _PatternDecode.apply(vals_N, pattern, W_MD, bool(project))


def scatter_rows(
    idx_BK: torch.Tensor, vals_BK: torch.Tensor, rhs_BD: torch.Tensor, m: int
) -> torch.Tensor:
    """``S.T @ rhs`` for the sparse ``S[b, idx[b, j]] = vals[b, j]`` of width ``m``.

    One sort of the indices, then an ``embedding_bag``: ``O(batch * k * d)``
    instead of a dense ``(m, batch)`` matmul. Repeated indices are summed.

    Parameters
    ----------
    idx_BK : torch.Tensor of shape (batch, k), int64
    vals_BK : torch.Tensor of shape (batch, k)
    rhs_BD : torch.Tensor of shape (batch, d)
    m : int
        Number of rows of the result.

    Returns
    -------
    torch.Tensor of shape (m, d)
    """
    return Pattern.from_indices(idx_BK, m).t_matmul(vals_BK.reshape(-1), rhs_BD)


def sampled_dot(
    g_BD: torch.Tensor, W_MD: torch.Tensor, idx_BK: torch.Tensor
) -> torch.Tensor:
    """``out[b, j] = g[b] . W[idx[b, j]]`` without forming ``g @ W.T`` (distinct
    indices within a row).

    Parameters
    ----------
    g_BD : torch.Tensor of shape (batch, d)
    W_MD : torch.Tensor of shape (m, d)
    idx_BK : torch.Tensor of shape (batch, k), int64

    Returns
    -------
    torch.Tensor of shape (batch, k)

    Examples
    --------
    >>> W = torch.arange(6.0).reshape(3, 2)
    >>> sampled_dot(torch.ones(1, 2), W, torch.tensor([[2, 0]])).tolist()
    [[9.0, 1.0]]
    """
    pattern = Pattern.from_indices(idx_BK, W_MD.shape[0])
    return pattern.sampled_dot(g_BD, W_MD).view(idx_BK.shape)


def gather_linear(
    x_BD: torch.Tensor,
    W_MD: torch.Tensor,
    b_M: torch.Tensor | None,
    idx_BK: torch.Tensor,
    pre_BM: torch.Tensor,
) -> torch.Tensor:
    """Differentiable ``(x @ W.T + b).gather(1, idx)`` from a precomputed ``pre``.

    Parameters
    ----------
    x_BD : torch.Tensor of shape (batch, d)
        Encoder input.
    W_MD : torch.Tensor of shape (m, d)
        Encoder weight.
    b_M : torch.Tensor of shape (m,) or None
        Encoder bias.
    idx_BK : torch.Tensor of shape (batch, k), int64
        Indices to read (repeats allowed).
    pre_BM : torch.Tensor of shape (batch, m)
        ``x @ W.T + b`` computed without autograd (any dtype, e.g. bf16).

    Returns
    -------
    torch.Tensor of shape (batch, k)
        Gradients flow to ``x``, ``W`` and ``b`` at the selected entries only.

    Examples
    --------
    >>> x, W = torch.ones(2, 4), torch.arange(12.0).reshape(3, 4).requires_grad_()
    >>> out = gather_linear(x, W, None, torch.tensor([[0], [2]]), (x @ W.T).detach())
    >>> out.sum().backward(); out.tolist(), W.grad.sum(1).tolist()  # W[1] idle
    ([[6.0], [38.0]], [4.0, 0.0, 4.0])
    """
    pattern = Pattern.from_indices(idx_BK, W_MD.shape[0])
    pre_N = pre_BM.gather(1, idx_BK).reshape(-1)
    return pattern_linear(x_BD, W_MD, b_M, pattern, pre_N).view(idx_BK.shape)


def sparse_decode(
    vals_BK: torch.Tensor, idx_BK: torch.Tensor, W_MD: torch.Tensor,
    project: bool = False,
) -> torch.Tensor:
    """``sum_j vals[:, j] * W[idx[:, j]]``: decode ``k`` active latents per row.

    Parameters
    ----------
    vals_BK : torch.Tensor of shape (batch, k)
    idx_BK : torch.Tensor of shape (batch, k), int64
        Distinct within a row.
    W_MD : torch.Tensor of shape (m, d)
        Decoder rows.
    project : bool, default=False
        See `pattern_decode`.

    Returns
    -------
    torch.Tensor of shape (batch, d)

    Examples
    --------
    >>> W = torch.arange(6.0).reshape(3, 2)  # rows [0, 1], [2, 3], [4, 5]
    >>> sparse_decode(torch.tensor([[2.0, 1.0]]), torch.tensor([[0, 2]]), W).tolist()
    [[4.0, 7.0]]
    """
    pattern = Pattern.from_indices(idx_BK, W_MD.shape[0])
    return pattern_decode(vals_BK.reshape(-1), pattern, W_MD, project)
