"""Sparse autograd primitives for TopK-style autoencoders.

With ``k`` active latents out of ``m``, only the encoder forward needs a dense
``(batch, m)`` matmul. The rest works on ``(batch, k)`` index/value pairs:

* :func:`gather_linear` -- ``x @ W.T + b`` read at given indices, from a
  pre-activation computed without autograd; its backward touches only the
  selected rows (the input gradient is an ``embedding_bag``).
* :func:`sparse_decode` -- ``sum_j vals[:, j] * W[idx[:, j]]`` by
  ``embedding_bag``; its backward computes the value gradient as sampled dot
  products and the weight gradient by one scatter + matmul.

Both accept and return plain tensors and can be used under ``torch.autocast``:
their sparse parts run in the weights' dtype.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

__all__ = ["gather_linear", "sparse_decode", "scatter_rows", "sampled_dot"]


def _csr(crow, col, values, shape) -> torch.Tensor:
    """A CSR tensor, without torch's "beta" warning on every construction."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, shape)


def scatter_rows(
    idx_BK: torch.Tensor, vals_BK: torch.Tensor, rhs_BD: torch.Tensor, m: int
) -> torch.Tensor:
    """``S.T @ rhs`` for the sparse ``S[b, idx[b, j]] = vals[b, j]`` of width ``m``.

    ``S.T`` is built directly in CSR form (one sort of the indices), so the
    cost is ``O(batch * k * d)`` instead of a dense ``(m, batch)`` matmul.
    Repeated indices in a row are summed.

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
    B, K = idx_BK.shape
    flat = idx_BK.reshape(-1)
    order = torch.argsort(flat)
    counts = torch.zeros(m, dtype=torch.int64, device=flat.device)
    counts.index_add_(0, flat, torch.ones_like(flat))  # bincount syncs on CUDA
    crow = torch.zeros(m + 1, dtype=torch.int64, device=flat.device)
    torch.cumsum(counts, 0, out=crow[1:])
    S_MB = _csr(crow, order // K, vals_BK.reshape(-1)[order], (m, B))
    return S_MB @ rhs_BD


def sampled_dot(
    g_BD: torch.Tensor, W_MD: torch.Tensor, idx_BK: torch.Tensor
) -> torch.Tensor:
    """``out[b, j] = g[b] . W[idx[b, j]]`` without forming ``g @ W.T``.

    A sampled dense-dense matmul (`torch.sparse.sampled_addmm`) on the CSR
    pattern of ``idx``; indices must be distinct within a row.

    Parameters
    ----------
    g_BD : torch.Tensor of shape (batch, d)
    W_MD : torch.Tensor of shape (m, d)
    idx_BK : torch.Tensor of shape (batch, k), int64

    Returns
    -------
    torch.Tensor of shape (batch, k)
    """
    B, K = idx_BK.shape
    crow = torch.arange(0, B * K + 1, K, device=idx_BK.device)
    pattern = _csr(crow, idx_BK.reshape(-1), g_BD.new_zeros(B * K),
                   (B, W_MD.shape[0]))
    out = torch.sparse.sampled_addmm(pattern, g_BD, W_MD.T, beta=0.0)
    return out.values().view(B, K)


class _GatherLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_BD, W_MD, b_M, idx_BK, pre_BM):
        ctx.save_for_backward(x_BD, W_MD, idx_BK)
        ctx.m = W_MD.shape[0]
        return pre_BM.gather(1, idx_BK).to(W_MD.dtype)

    @staticmethod
    def backward(ctx, g_BK):
        x_BD, W_MD, idx_BK = ctx.saved_tensors
        g_BK = g_BK.to(W_MD.dtype)
        gx = gW = gb = None
        if ctx.needs_input_grad[0]:
            gx = F.embedding_bag(idx_BK, W_MD, per_sample_weights=g_BK, mode="sum")
            gx = gx.to(x_BD.dtype)
        if ctx.needs_input_grad[1]:
            gW = scatter_rows(idx_BK, g_BK, x_BD.to(W_MD.dtype), ctx.m)
        if ctx.needs_input_grad[2]:
            gb = g_BK.new_zeros(ctx.m).index_add_(0, idx_BK.reshape(-1),
                                                  g_BK.reshape(-1))
        return gx, gW, gb, None, None


class _SparseDecode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, vals_BK, idx_BK, W_MD):
        vals_BK = vals_BK.to(W_MD.dtype)
        ctx.save_for_backward(vals_BK, idx_BK, W_MD)
        return F.embedding_bag(idx_BK, W_MD, per_sample_weights=vals_BK, mode="sum")

    @staticmethod
    def backward(ctx, g_BD):
        vals_BK, idx_BK, W_MD = ctx.saved_tensors
        g_BD = g_BD.to(W_MD.dtype)
        gv = gW = None
        if ctx.needs_input_grad[0]:
            gv = sampled_dot(g_BD, W_MD, idx_BK)
        if ctx.needs_input_grad[2]:
            gW = scatter_rows(idx_BK, vals_BK, g_BD, W_MD.shape[0])
        return gv, None, gW


def gather_linear(
    x_BD: torch.Tensor,
    W_MD: torch.Tensor,
    b_M: torch.Tensor,
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
    b_M : torch.Tensor of shape (m,)
        Encoder bias.
    idx_BK : torch.Tensor of shape (batch, k), int64
        Indices to read.
    pre_BM : torch.Tensor of shape (batch, m)
        ``x @ W.T + b`` computed without autograd (any dtype, e.g. bf16).

    Returns
    -------
    torch.Tensor of shape (batch, k)
        Gradients flow to ``x``, ``W`` and ``b`` at the selected entries only.
    """
    return _GatherLinear.apply(x_BD, W_MD, b_M, idx_BK, pre_BM)


def sparse_decode(
    vals_BK: torch.Tensor, idx_BK: torch.Tensor, W_MD: torch.Tensor
) -> torch.Tensor:
    """``sum_j vals[:, j] * W[idx[:, j]]``: decode ``k`` active latents per row.

    Parameters
    ----------
    vals_BK : torch.Tensor of shape (batch, k)
    idx_BK : torch.Tensor of shape (batch, k), int64
    W_MD : torch.Tensor of shape (m, d)
        Decoder rows.

    Returns
    -------
    torch.Tensor of shape (batch, d)
    """
    return _SparseDecode.apply(vals_BK, idx_BK, W_MD)
