"""JumpReLU (Rajamanoharan et al. 2024) and its straight-through derivatives.

The Heaviside step ``H(z - theta)`` has zero derivative in ``theta`` almost
everywhere, so its derivative is replaced by a rectangle kernel of width
``eps`` (the ``bandwidth``) around the threshold. `JumpReLUFn` and `StepFn`
take pre-activations ``z`` of shape ``(..., m)`` and thresholds ``theta`` of
shape ``(m,)`` broadcast over the leading dimension, whose gradient is summed
over it; the sparse training path calls them on flat support values as
``z[None]`` with ``theta`` gathered per value.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .variants import Activation, register_activation

__all__ = ["JumpReLU", "JumpReLUFn", "StepFn", "rect"]


def rect(u: torch.Tensor) -> torch.Tensor:
    """Rectangle kernel: 1 on (-1/2, 1/2), else 0.

    Parameters
    ----------
    u : torch.Tensor

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``u``.

    Examples
    --------
    >>> rect(torch.tensor([-1.0, -0.4, 0.0, 0.5])).tolist()
    [0.0, 1.0, 1.0, 0.0]
    """
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class JumpReLUFn(torch.autograd.Function):
    """``z * H(z - theta)``; d/dtheta = -(theta/eps) rect((z - theta)/eps).

    Called as ``JumpReLUFn.apply(z, theta, bandwidth)``.

    Examples
    --------
    >>> z, theta = torch.tensor([[0.5, 2.0]], requires_grad=True), torch.ones(2)
    >>> y = JumpReLUFn.apply(z, theta.requires_grad_(), 2.0)
    >>> y.sum().backward()
    >>> y.tolist(), z.grad.tolist(), theta.grad.tolist()
    ([[0.0, 2.0]], [[0.0, 1.0]], [-0.5, 0.0])
    """

    @staticmethod
    def forward(ctx, z, theta, bandwidth: float):
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return torch.where(z > theta, z, 0.0)

    @staticmethod
    def backward(ctx, g):
        z, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        gz = g * (z > theta)
        gtheta = -(theta / eps) * rect((z - theta) / eps) * g
        return gz, gtheta.sum(0), None


class StepFn(torch.autograd.Function):
    """``H(z - theta)``; d/dtheta = -(1/eps) rect((z - theta)/eps), d/dz = 0.

    Called as ``StepFn.apply(z, theta, bandwidth)``.

    Examples
    --------
    >>> theta = torch.ones(2, requires_grad=True)
    >>> y = StepFn.apply(torch.tensor([[0.5, 2.0]]), theta, 2.0)
    >>> y.sum().backward()
    >>> y.tolist(), theta.grad.tolist()
    ([[0.0, 1.0]], [-0.5, 0.0])
    """

    @staticmethod
    def forward(ctx, z, theta, bandwidth: float):
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx, g):
        z, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        gtheta = -(1.0 / eps) * rect((z - theta) / eps) * g
        return None, gtheta.sum(0), None


@register_activation("jumprelu")
class JumpReLU(Activation):
    """``z * H(z - theta)`` with per-latent thresholds (Rajamanoharan et al. 2024).

    Thresholds are stored as ``log_threshold`` and trained through
    straight-through pseudo-derivatives with a rectangle kernel of width
    ``bandwidth``.

    Parameters
    ----------
    n_components : int
    bandwidth : float, default=0.1
        Kernel width, in pre-activation units (inputs normalised to
        ``E||x||^2 = n_features`` give pre-activations of order 1).
    threshold_init : float, default=0.1
    mode : {"step", "tanh"}, default="step"
        Sparsity penalty: ``"step"`` is the L0 count through `step`;
        ``"tanh"`` is ``sum_j tanh(tanh_scale * f_j * ||W_dec_j||)``.
    tanh_scale : float, default=4.0
    lr_scale : float, default=10.0
        Learning-rate multiplier of ``log_threshold``: thresholds must travel
        far in log space, and short runs would leave them near their
        initial value.

    Examples
    --------
    >>> act = JumpReLU(3, threshold_init=0.5)
    >>> act(torch.tensor([[0.25, 0.75, 1.0]])).tolist(), act.threshold.tolist()
    ([[0.0, 0.75, 1.0]], [0.5, 0.5, 0.5])
    """

    default_alpha = 0.3
    saelens_names = ("jumprelu",)
    loss_terms = ("mse", "l0")

    def __init__(
        self,
        n_components: int,
        bandwidth: float = 0.1,
        threshold_init: float = 0.1,
        mode: str = "step",
        tanh_scale: float = 4.0,
        lr_scale: float = 10.0,
    ) -> None:
        super().__init__(n_components)
        self.lr_scale = float(lr_scale)
        if mode not in ("step", "tanh"):
            raise ValueError(f"mode must be 'step' or 'tanh', got {mode!r}.")
        if not (bandwidth > 0 and threshold_init > 0):
            raise ValueError("bandwidth and threshold_init must be > 0.")
        self.bandwidth = float(bandwidth)
        self.threshold_init = float(threshold_init)
        self.mode = mode
        self.tanh_scale = float(tanh_scale)
        self.log_threshold = nn.Parameter(
            torch.full((n_components,), math.log(threshold_init))
        )

    def config(self) -> dict:
        return {"bandwidth": self.bandwidth, "threshold_init": self.threshold_init,
                "mode": self.mode, "tanh_scale": self.tanh_scale,
                "lr_scale": self.lr_scale}

    @property
    def threshold(self) -> torch.Tensor:
        """Per-latent thresholds ``exp(log_threshold)``."""
        return self.log_threshold.exp()

    def forward(self, pre_BM: torch.Tensor) -> torch.Tensor:
        theta = self.threshold.to(pre_BM.dtype)
        return JumpReLUFn.apply(pre_BM, theta, self.bandwidth)

    def step(self, pre_BM: torch.Tensor) -> torch.Tensor:
        """``H(pre - theta)`` with the threshold pseudo-derivative."""
        theta = self.threshold.to(pre_BM.dtype)
        return StepFn.apply(pre_BM, theta, self.bandwidth)

    def support(self, pre_BM: torch.Tensor) -> torch.Tensor:
        """``pre > theta - eps / 2`` (slightly widened against rounding).

        Below it, codes, steps and both pseudo-derivatives are zero; the
        extra entries of the margin compute to exact zeros as well.
        """
        theta = self.threshold.detach().to(pre_BM.dtype)
        return pre_BM > theta - 0.5 * (1 + 1e-3) * self.bandwidth

    def sparse_codes(self, pre_N: torch.Tensor, col_N: torch.Tensor) -> torch.Tensor:
        theta_N = self.threshold.to(pre_N.dtype)[col_N]
        return JumpReLUFn.apply(pre_N[None], theta_N, self.bandwidth)[0]

    def sparse_step(self, pre_N: torch.Tensor, col_N: torch.Tensor) -> torch.Tensor:
        """`step` at the support pairs (flat values, latents ``col_N``)."""
        theta_N = self.threshold.to(pre_N.dtype)[col_N]
        return StepFn.apply(pre_N[None], theta_N, self.bandwidth)[0]

    @torch.no_grad()
    def fold_scale_(self, scale: float) -> None:
        self.log_threshold.sub_(math.log(scale))
