"""Selecting the active latents of a batch: top-k, support positions, dead latents."""

from __future__ import annotations

import torch

__all__ = ["aux_select", "support_positions", "topk_indices"]

_CHUNK = 8  # entries per chunk in the two-stage top-k

_SAME_SIZE_INT = {torch.float64: torch.int64, torch.float32: torch.int32,
                  torch.bfloat16: torch.int16, torch.float16: torch.int16}


def topk_indices(pre_BM: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of ``k`` entries of each row holding its ``k`` largest positives.

    Read as integers of the same size, the bit patterns of non-negative
    floats keep their order and lie above those of all negative floats (whose
    order they reverse). So the top ``k`` of that view are the row's largest
    positive entries and, if it has fewer than ``k``, some negative ones --
    which the ReLU turns into zero codes with zero gradient: the codes are
    those of ``topk`` on the floats, and torch's CPU ``topk`` is faster on
    integers (and needs no ReLU pass first).

    On the CPU, wide rows take two smaller ``topk`` calls: the columns form
    chunks of ``_CHUNK`` (chunk ``j`` holds columns ``j, j + n, j + 2n, ...``
    for ``n`` chunks, so the chunk maxima are one vectorised ``amax``), and the
    row's top ``k`` lie in the ``k`` chunks with the largest maxima (an entry
    of any other chunk is below ``k`` chunk maxima), so the second ``topk``
    looks at ``k * _CHUNK`` candidates only.

    Parameters
    ----------
    pre_BM : torch.Tensor of shape (batch, m)
        Floating-point pre-activations.
    k : int

    Returns
    -------
    torch.Tensor of shape (batch, k), int64
        In no particular order.

    Examples
    --------
    >>> sorted(topk_indices(torch.tensor([[3.0, -1.0, 5.0, 0.5]]), 2)[0].tolist())
    [0, 2]
    """
    keys = pre_BM.view(_SAME_SIZE_INT[pre_BM.dtype])
    B, M = keys.shape
    n = M // _CHUNK
    if keys.device.type != "cpu" or M % _CHUNK or n < 4 * k:
        return keys.topk(k, dim=-1, sorted=False).indices
    chunks = keys.reshape(B, _CHUNK, n)
    top_c = chunks.amax(1).topk(k, dim=-1, sorted=False).indices  # (B, k) chunks
    cand = chunks.gather(2, top_c.unsqueeze(1).expand(B, _CHUNK, k))
    sel = cand.reshape(B, _CHUNK * k).topk(k, dim=-1, sorted=False).indices
    return sel.div(k, rounding_mode="floor") * n + top_c.gather(1, sel.remainder(k))



def support_positions(flat: torch.Tensor, limit: float, *, count_first: bool
               ) -> torch.Tensor | None:
    """Positions of the ``True`` entries of ``flat``, None if more than ``limit``.

    One host synchronisation either way. ``count_first`` (for GPUs) counts,
    then fills a buffer of that size, so a dense mask's positions are never
    formed; otherwise (CPU) the positions come first, their number from them:
    one pass over the mask less.

    Parameters
    ----------
    flat : torch.Tensor of shape (n,), bool
    limit : float
        The most positions returned.
    count_first : bool

    Returns
    -------
    torch.Tensor of shape (nnz,), int64, or None

    Examples
    --------
    >>> flat = torch.tensor([True, False, True])
    >>> support_positions(flat, 5, count_first=False).tolist()
    [0, 2]
    >>> support_positions(flat, 1, count_first=False) is None
    True
    """
    if count_first:
        nnz = int(torch.count_nonzero(flat))
        return None if nnz > limit else torch.nonzero_static(flat, size=nnz).squeeze(1)
    pos = flat.nonzero().squeeze(1)
    return None if pos.shape[0] > limit else pos


def aux_select(
    pre_BM: torch.Tensor, dead_M: torch.Tensor, k_aux: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the ``k_aux`` largest dead pre-activations and a validity mask.

    Parameters
    ----------
    pre_BM : torch.Tensor of shape (batch, m)
    dead_M : torch.Tensor of shape (m,), bool
        The dead latents.
    k_aux : int
        Capped at ``m``.

    Returns
    -------
    idx : torch.Tensor of shape (batch, k_aux), int64
        In no particular order.
    valid : torch.Tensor of shape (batch, k_aux), bool
        False where a row has fewer than ``k_aux`` dead latents.

    Examples
    --------
    >>> pre, dead = torch.tensor([[3.0, -1.0, 5.0]]), torch.tensor([True, True, False])
    >>> idx, valid = aux_select(pre, dead, 3)
    >>> sorted(idx[valid].tolist()), int(valid.sum())
    ([0, 1], 2)
    """
    k_aux = min(int(k_aux), pre_BM.shape[1])
    masked = torch.where(dead_M, pre_BM, float("-inf"))
    vals, idx = masked.topk(k_aux, dim=-1, sorted=False)
    return idx, torch.isfinite(vals)
