"""The ``simplex`` activation: abundances of linear spectral unmixing.

Codes are ``ReLU(pre)`` normalised to sum to one in each row (the abundance
sum-to-one and non-negativity constraints) times a common ``total`` (learned
by default; fixed at 1 for unmixing); a row whose pre-activations are all
non-positive gets uniform codes. With ``nonnegative_decoder`` the decoder is
clamped non-negative after each optimiser step (`Simplex.project_`), so
decoder rows are non-negative spectra (endmembers). Decoder rows are *not*
unit-norm: with sum-to-one codes the endmembers carry the scale of the data.
The ``sad`` loss term (mean spectral angle, `sparsecode.nn.losses`) is
weighted by ``alpha``; its default is 0 (mean squared error alone).
`sparsecode.sae.unmixing.UnmixingAutoencoder` is the estimator built on it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .variants import Activation, register_activation

__all__ = ["Simplex"]


@register_activation("simplex")
class Simplex(Activation):
    """ReLU codes rescaled onto the (scaled) probability simplex.

    ``codes = total * ReLU(pre) / sum_j ReLU(pre_j)``; ``total`` is learned
    or fixed at 1, and divided by the input scale when input normalisation
    is folded in (so a module trained on scaled inputs reconstructs raw ones).

    Parameters
    ----------
    n_components : int
        Number of latents (endmembers).
    nonnegative_decoder : bool, default=False
        Clamp the decoder non-negative after every step (`project_`), as
        endmembers of reflectance spectra are.
    learn_total : bool, default=True
        Learn the common row sum ``total`` of the codes (a generic SAE whose
        codes are convex weights up to one scale); False keeps codes on the
        probability simplex (sum one), as abundances are.

    Examples
    --------
    >>> import torch
    >>> from sparsecode.nn import make_activation
    >>> act = make_activation("simplex", 3, learn_total=False)
    >>> act(torch.tensor([[2.0, -1.0, 6.0], [-1.0, -2.0, 0.0]]))
    tensor([[0.2500, 0.0000, 0.7500],
            [0.3333, 0.3333, 0.3333]])
    """

    loss_terms = ("mse", "sad")
    lr_scale = 0.3  # of ``log_total``: a fast-growing total spreads the codes

    def __init__(self, n_components: int, nonnegative_decoder: bool = False,
                 learn_total: bool = True) -> None:
        super().__init__(n_components)
        self.nonnegative_decoder = bool(nonnegative_decoder)
        self.learn_total = bool(learn_total)
        self.log_total = nn.Parameter(torch.zeros(()), requires_grad=self.learn_total)

    def config(self) -> dict:
        return {"nonnegative_decoder": self.nonnegative_decoder,
                "learn_total": self.learn_total}

    @property
    def total(self) -> torch.Tensor:
        """The row sum of the codes, ``exp(log_total)``."""
        return self.log_total.exp()

    def forward(self, pre_BM: torch.Tensor) -> torch.Tensor:
        relu_BM = torch.relu(pre_BM)
        s_B1 = relu_BM.sum(-1, keepdim=True)
        tiny = torch.finfo(pre_BM.dtype).tiny
        codes = torch.where(s_B1 > 0, relu_BM / s_B1.clamp_min(tiny),
                            1.0 / self.n_components)
        return codes * self.total.to(pre_BM.dtype)

    @torch.no_grad()
    def fold_scale_(self, scale: float) -> None:
        self.log_total.sub_(math.log(scale))

    @torch.no_grad()
    def project_(self, model: nn.Module) -> None:
        """Clamp the decoder non-negative if ``nonnegative_decoder``."""
        if self.nonnegative_decoder:
            model.W_dec.clamp_(min=0)
