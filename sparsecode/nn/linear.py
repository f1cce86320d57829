"""The encoder matmul ``x @ W.T + b``, by oneDNN on the CPU when it can.

`linear` runs oneDNN's linear with the bias fused (the kernel torch's own CPU
compiler emits) for float32 CPU tensors outside autocast when torch provides
it (checked once against `F.linear`), and `F.linear` everywhere else; its
gradients are `F.linear`'s. Why: docs/design.md, "The encoder matmul".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["linear", "onednn_available", "uses_onednn"]

_ONEDNN: bool | None = None  # whether the oneDNN path works (checked once)


def _onednn_linear(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None
                   ) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(
        x.contiguous(), W.contiguous(), None if b is None else b.contiguous(),
        "none", [], "")


def onednn_available() -> bool:
    """Whether oneDNN's fused-bias linear exists here and equals `F.linear`.

    Checked once, then cached.

    Returns
    -------
    bool

    Examples
    --------
    >>> onednn_available() in (True, False)
    True
    """
    global _ONEDNN
    if _ONEDNN is None:
        try:
            g = torch.Generator().manual_seed(0)
            x, W = torch.randn(5, 7, generator=g), torch.randn(3, 7, generator=g)
            b = torch.randn(3, generator=g)
            _ONEDNN = bool(torch.backends.mkldnn.is_available()) and all(
                torch.allclose(_onednn_linear(x, W, bias), F.linear(x, W, bias),
                               rtol=1e-5, atol=1e-5) for bias in (b, None))
        except (AttributeError, NotImplementedError, RuntimeError, TypeError):
            _ONEDNN = False
    return _ONEDNN


def uses_onednn(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None) -> bool:
    """Whether `linear` takes the oneDNN path for these tensors.

    Parameters
    ----------
    x, W : torch.Tensor
        The input (2-D) and the weight.
    b : torch.Tensor or None
        The bias.

    Returns
    -------
    bool
        True for float32 CPU tensors outside autocast, where oneDNN works.

    Examples
    --------
    >>> x, W = torch.ones(2, 3), torch.ones(4, 3)
    >>> uses_onednn(x, W, None) == onednn_available(), uses_onednn(x.double(), W, None)
    (True, False)
    """
    tensors = (x, W) if b is None else (x, W, b)
    return (x.dim() == 2 and all(t.device.type == "cpu" and t.dtype == torch.float32
                                 for t in tensors)
            and not torch.is_autocast_enabled("cpu") and onednn_available())


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, b):
        ctx.save_for_backward(x, W)
        ctx.has_bias = b is not None
        return _onednn_linear(x, W, b)

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        gx = g @ W if ctx.needs_input_grad[0] else None
        gW = g.T @ x if ctx.needs_input_grad[1] else None
        gb = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gW, gb


def linear(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None = None
           ) -> torch.Tensor:
    """``x @ W.T + b`` like `torch.nn.functional.linear` (same gradients).

    Parameters
    ----------
    x : torch.Tensor of shape (batch, d)
    W : torch.Tensor of shape (m, d)
    b : torch.Tensor of shape (m,), optional

    Returns
    -------
    torch.Tensor of shape (batch, m)
        Equal to ``F.linear(x, W, b)`` up to the rounding of a different
        summation order.

    Examples
    --------
    >>> x, W = torch.ones(2, 3), torch.arange(6.0).reshape(2, 3)
    >>> linear(x, W, torch.tensor([1.0, -1.0])).tolist()
    [[4.0, 11.0], [4.0, 11.0]]
    """
    if not uses_onednn(x, W, b):
        return F.linear(x, W, b)
    if torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (x, W, b)):
        return _Linear.apply(x, W, b)
    return _onednn_linear(x, W, b)
