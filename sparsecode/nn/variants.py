"""The registry of SAE variants: activations from pre-activations to codes.

Every variant is an `Activation`, an `nn.Module` mapping pre-activations
``(batch, m)`` to non-negative codes ``(batch, m)``, registered by name in
`ACTIVATIONS` (a taken name raises). Everything about a variant is declared on
its class; the estimator, `sparsecode.compare` and the SAELens/sparsify
readers read it from here:

* ``default_alpha`` -- the estimator's sparsity coefficient when ``alpha`` is
  None (inputs normalised to ``E||x||^2 = n_features``); 0 without a penalty;
* ``takes_k`` -- whether the variant takes ``k`` (active latents per row);
* ``saelens_names`` / ``sparsify_names`` -- the architecture names of
  SAELens's and sparsify's files that load as this variant;

* ``loss_terms`` -- names of the terms of `sparsecode.nn.losses` to add;
* ``unit_norm_decoder`` -- keep decoder rows at unit norm (the gradient
  component parallel to each row is removed before each step);
* ``sparse_k`` -- a fixed number of active latents per row, which lets the
  module decode sparsely (TopK);
* ``uses_encoder_bias`` -- whether the module adds its encoder bias;
* ``project_`` -- a constraint applied to the module after each step.

An activation whose codes and gradients vanish outside a ``support`` (a mask
of the pre-activations) also defines ``sparse_codes`` on the flat support
values; the module then trains sparse batches on the support alone.
`JumpReLU` is in `sparsecode.nn.jumprelu` (registered when `sparsecode.nn`
is imported).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "BatchTopK",
    "Gated",
    "Matryoshka",
    "ReLU",
    "TopK",
    "make_activation",
    "register_activation",
    "saelens_activation",
]

ACTIVATIONS: dict[str, type[Activation]] = {}


def register_activation(name: str):
    """Class decorator registering an `Activation` subclass under ``name``.

    Parameters
    ----------
    name : str
        A name not yet in `ACTIVATIONS` (a taken one raises ``ValueError``).

    Examples
    --------
    >>> import torch
    >>> from sparsecode.nn import ACTIVATIONS, Activation, register_activation
    >>> @register_activation("doc_example_abs")
    ... class Abs(Activation):
    ...     def forward(self, pre_BM):
    ...         return pre_BM.abs()
    >>> ACTIVATIONS["doc_example_abs"].takes_k
    False
    >>> del ACTIVATIONS["doc_example_abs"]
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"an activation name must be a non-empty str, got {name!r}.")
    if name in ACTIVATIONS:
        raise ValueError(f"an activation named {name!r} is already registered "
                         f"({ACTIVATIONS[name].__qualname__}).")

    def deco(cls: type[Activation]) -> type[Activation]:
        if name in ACTIVATIONS:
            raise ValueError(f"an activation named {name!r} is already registered.")
        cls.name = name
        ACTIVATIONS[name] = cls
        return cls

    return deco


def saelens_activation(architecture: str) -> str | None:
    """The registered variant whose ``saelens_names`` include ``architecture``."""
    for name, cls in ACTIVATIONS.items():
        if architecture in cls.saelens_names:
            return name
    return None


def make_activation(name: str, n_components: int, **kwargs: Any) -> Activation:
    """Build the registered activation ``name`` for ``n_components`` latents.

    Parameters
    ----------
    name : str
        A key of `ACTIVATIONS`.
    n_components : int
        Number of latents.
    **kwargs
        Passed to the activation's constructor (``k``, ``bandwidth``, ...).

    Returns
    -------
    Activation
    """
    if name not in ACTIVATIONS:
        raise ValueError(
            f"Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}."
        )
    return ACTIVATIONS[name](n_components, **kwargs)


class Activation(nn.Module):
    """Base class: pre-activations -> codes. See the module docstring."""

    name = "base"
    default_alpha: float = 0.0
    takes_k: bool = False
    saelens_names: tuple[str, ...] = ()
    sparsify_names: tuple[str, ...] = ()
    loss_terms: tuple[str, ...] = ("mse",)
    unit_norm_decoder = False
    uses_encoder_bias = True
    sparse_k: int | None = None
    lr_scale = 1.0  # learning-rate multiplier of the activation's own parameters

    def __init__(self, n_components: int) -> None:
        super().__init__()
        self.n_components = int(n_components)

    def config(self) -> dict:
        """JSON-able keyword arguments that rebuild this activation."""
        return {}

    @torch.no_grad()
    def fold_scale_(self, scale: float) -> None:
        """Adapt to codes divided by ``scale`` (input normalisation folding)."""

    @torch.no_grad()
    def project_(self, model: nn.Module) -> None:
        """Constraint on ``model`` after each optimiser step (none here)."""

    def support(self, pre_BM: torch.Tensor) -> torch.Tensor | None:
        """Mask of the entries where codes or any gradient can be nonzero.

        None (the default): no sparse training path.
        """
        return None

    def sparse_codes(self, pre_N: torch.Tensor, col_N: torch.Tensor) -> torch.Tensor:
        """Codes at the support pairs from their pre-activations (flat)."""
        raise NotImplementedError


@register_activation("relu")
class ReLU(Activation):
    """ReLU codes; trained with the decoder-norm-weighted L1 penalty."""

    default_alpha = 1.0
    saelens_names = ("standard",)
    loss_terms = ("mse", "l1")

    def forward(self, pre_BM: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre_BM)

    def support(self, pre_BM: torch.Tensor) -> torch.Tensor:
        return pre_BM > 0

    def sparse_codes(self, pre_N: torch.Tensor, col_N: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre_N)


@register_activation("topk")
class TopK(Activation):
    """Keep the ``k`` largest pre-activations of each row (then ReLU).

    Parameters
    ----------
    n_components : int
    k : int
        Active latents per row.
    """

    takes_k = True
    saelens_names = ("topk",)
    sparsify_names = ("topk",)
    loss_terms = ("mse", "auxk")
    unit_norm_decoder = True

    def __init__(self, n_components: int, k: int) -> None:
        super().__init__(n_components)
        if not 1 <= int(k) <= n_components:
            raise ValueError(f"k must be in [1, n_components={n_components}], got {k}.")
        self.k = int(k)
        self.sparse_k = self.k

    def config(self) -> dict:
        return {"k": self.k}

    def forward(self, pre_BM: torch.Tensor) -> torch.Tensor:
        vals, idx = pre_BM.topk(self.k, dim=-1, sorted=False)
        return torch.zeros_like(pre_BM).scatter(-1, idx, torch.relu(vals))


@register_activation("batchtopk")
class BatchTopK(Activation):
    """Top ``k * batch`` pre-activations over the whole batch (training).

    In training mode the kept set depends on the batch; every step also
    updates a bias-corrected exponential moving average of the smallest kept
    positive value. In eval mode (``transform``) codes are
    ``pre * (pre > threshold)`` with that running threshold, so they do not
    depend on the batch.

    Parameters
    ----------
    n_components : int
    k : int
        Mean active latents per row.
    threshold_lr : float, default=0.01
        Weight of each step in the moving average.
    """

    takes_k = True
    saelens_names = ("batchtopk",)
    loss_terms = ("mse", "auxk")
    unit_norm_decoder = True
    #: set by `sparsecode.sae.distributed` on several processes: (flat ReLU values,
    #: k) -> the k * global_batch largest of the global batch, same on all.
    global_top = None

    def __init__(self, n_components: int, k: int, threshold_lr: float = 0.01) -> None:
        super().__init__(n_components)
        if not 1 <= int(k) <= n_components:
            raise ValueError(f"k must be in [1, n_components={n_components}], got {k}.")
        self.k = int(k)
        self.threshold_lr = float(threshold_lr)
        self.register_buffer("threshold_num", torch.zeros(()))
        self.register_buffer("threshold_den", torch.zeros(()))

    def config(self) -> dict:
        return {"k": self.k, "threshold_lr": self.threshold_lr}

    @property
    def threshold(self) -> torch.Tensor:
        """The inference threshold (0 before any training step)."""
        return self.threshold_num / self.threshold_den.clamp_min(1e-30)

    def forward(self, pre_BM: torch.Tensor) -> torch.Tensor:
        if not self.training:
            thr = self.threshold.to(pre_BM.dtype)
            return torch.where(pre_BM > thr.clamp_min(0), pre_BM, 0.0)
        relu_BM = torch.relu(pre_BM)
        if self.global_top is not None:
            return self._global_forward(relu_BM)
        flat = relu_BM.reshape(-1)
        n_keep = min(self.k * pre_BM.shape[0], flat.numel())
        idx = flat.topk(n_keep, sorted=False).indices
        mask = torch.zeros_like(flat, dtype=torch.bool).index_fill_(0, idx, True)
        codes = relu_BM * mask.view_as(relu_BM)
        self._update_threshold(codes.detach())
        return codes

    def _global_forward(self, relu_BM: torch.Tensor) -> torch.Tensor:
        top = self.global_top(relu_BM.detach().reshape(-1), self.k)
        cut = top.min().to(relu_BM.dtype)
        self._update_threshold(top)  # the kept values of the global batch
        return relu_BM * ((relu_BM >= cut) & (relu_BM > 0))

    @torch.no_grad()
    def _update_threshold(self, codes_BM: torch.Tensor) -> None:
        inf = torch.tensor(float("inf"), device=codes_BM.device, dtype=codes_BM.dtype)
        smallest = torch.where(codes_BM > 0, codes_BM, inf).min().float()
        valid = torch.isfinite(smallest)
        rate = torch.where(valid, self.threshold_lr, 0.0)
        smallest = torch.where(valid, smallest, 0.0)
        self.threshold_num.mul_(1 - rate).add_(rate * smallest)
        self.threshold_den.mul_(1 - rate).add_(rate)

    @torch.no_grad()
    def fold_scale_(self, scale: float) -> None:
        self.threshold_num.div_(scale)


@register_activation("matryoshka")
class Matryoshka(BatchTopK):
    """BatchTopK whose nested prefixes of latents must each reconstruct x.

    Parameters
    ----------
    n_components : int
    k : int
    prefixes : sequence of int, default=None
        Increasing prefix sizes ending at ``n_components``; by default
        ``m/16, m/8, m/4, m/2, m`` (Bussmann et al. 2025).
    threshold_lr : float, default=0.01
    """

    saelens_names = ()  # (not BatchTopK's: SAELens names Matryoshka apart)
    loss_terms = ("mse", "auxk", "matryoshka")

    def __init__(
        self,
        n_components: int,
        k: int,
        prefixes: list[int] | None = None,
        threshold_lr: float = 0.01,
    ) -> None:
        super().__init__(n_components, k, threshold_lr)
        if prefixes is None:
            prefixes = [n_components // f for f in (16, 8, 4, 2)] + [n_components]
        prefixes = sorted({int(p) for p in prefixes if int(p) >= 1})
        if not prefixes or prefixes[-1] != n_components:
            raise ValueError(
                f"prefixes must be increasing sizes ending at n_components="
                f"{n_components}, got {prefixes}."
            )
        self.prefixes = prefixes

    def config(self) -> dict:
        return {**super().config(), "prefixes": list(self.prefixes)}


@register_activation("gated")
class Gated(Activation):
    """Gated SAE (Rajamanoharan et al. 2024): a gate path and a magnitude path.

    With ``h = W_enc (x - b_pre)`` (the module adds no encoder bias),
    ``codes = H(h + b_gate) * ReLU(exp(r_mag) * h + b_mag)``: the magnitude
    path shares ``W_enc`` up to a per-latent rescale. The gate gets its
    gradient from the L1 and auxiliary terms (``gated_l1``, ``gated_aux``).
    """

    default_alpha = 1.0
    saelens_names = ("gated",)
    loss_terms = ("mse", "gated_l1", "gated_aux")
    unit_norm_decoder = True  # else the L1 is cheated by shrinking decoder rows
    uses_encoder_bias = False

    def __init__(self, n_components: int) -> None:
        super().__init__(n_components)
        self.b_gate = nn.Parameter(torch.zeros(n_components))
        self.r_mag = nn.Parameter(torch.zeros(n_components))
        self.b_mag = nn.Parameter(torch.zeros(n_components))

    def gate_pre(self, pre_BM: torch.Tensor) -> torch.Tensor:
        """Gate pre-activations ``h + b_gate``."""
        return pre_BM + self.b_gate.to(pre_BM.dtype)

    def forward(self, pre_BM: torch.Tensor) -> torch.Tensor:
        # where, not relu(mag) * gate: a closed gate on an overflowed mag is 0
        gate = self.gate_pre(pre_BM) > 0
        mag = pre_BM * self.r_mag.exp().to(pre_BM.dtype) + self.b_mag.to(pre_BM.dtype)
        return torch.where(gate, torch.relu(mag), 0.0)

    def support(self, pre_BM: torch.Tensor) -> torch.Tensor:
        """The open gates: codes and the gate's L1 and auxiliary terms vanish
        (with their gradients) elsewhere."""
        return self.gate_pre(pre_BM.detach()) > 0

    def sparse_gate_pre(self, pre_N: torch.Tensor, col_N: torch.Tensor) -> torch.Tensor:
        """`gate_pre` at the support pairs (flat values, latents ``col_N``)."""
        return pre_N + self.b_gate.to(pre_N.dtype)[col_N]

    def sparse_codes(self, pre_N: torch.Tensor, col_N: torch.Tensor) -> torch.Tensor:
        gate = self.sparse_gate_pre(pre_N, col_N) > 0
        dt = pre_N.dtype
        mag = pre_N * self.r_mag.exp().to(dt)[col_N] + self.b_mag.to(dt)[col_N]
        return torch.where(gate, torch.relu(mag), 0.0)

    @torch.no_grad()
    def fold_scale_(self, scale: float) -> None:
        self.b_gate.div_(scale)
        self.b_mag.div_(scale)
