"""Torch building blocks of the sparse autoencoder family.

* `variants` -- the registry of SAE variants (`ACTIVATIONS`,
  `register_activation`) and the relu, topk, batchtopk, gated and matryoshka
  activations; `jumprelu` -- JumpReLU and its straight-through gradients;
* `modules` -- `SparseAutoencoderModule` and its initialisation;
* `output` -- `TrainOutput`, what a training forward pass returns;
* `losses` -- the named loss terms (`LOSS_TERMS`, `register_loss_term`) and
  `sae_losses`;
* `functional`, `select`, `linear` -- sparse autograd primitives, the choice
  of active latents, and the fused-bias encoder matmul.

Shape suffixes. Tensors in the torch code carry their shape in their name's
suffix, one capital letter a dimension: ``B`` batch rows, ``D`` input
features (``n_features``), ``M`` latents (``n_components``), ``K`` atoms of a
dictionary, ``N`` nonzero entries of a sparse batch (flat), ``S`` slots of a
support. So ``x_BD`` is a batch of inputs, ``W_dec`` is ``(M, D)`` and
``pre_N`` holds the pre-activations at the ``N`` active (row, latent) pairs.

Examples
--------
>>> import torch
>>> from sparsecode.nn import SparseAutoencoderModule
>>> sae = SparseAutoencoderModule(8, 32, "topk", {"k": 4})
>>> sae.reset_parameters_(torch.randn(64, 8), torch.Generator().manual_seed(0))
>>> codes = sae.encode(torch.randn(5, 8))
>>> tuple(codes.shape), int((codes != 0).sum(1).max()) <= 4
((5, 32), True)
"""

from .init import geometric_median
from .jumprelu import JumpReLU
from .losses import LOSS_TERMS, register_loss_term, sae_losses
from .modules import SparseAutoencoderModule
from .output import TrainOutput
from .simplex import Simplex
from .variants import (
    ACTIVATIONS,
    Activation,
    BatchTopK,
    Gated,
    Matryoshka,
    ReLU,
    TopK,
    make_activation,
    register_activation,
    saelens_activation,
)

__all__ = [
    "ACTIVATIONS",
    "LOSS_TERMS",
    "Activation",
    "BatchTopK",
    "Gated",
    "JumpReLU",
    "Matryoshka",
    "ReLU",
    "Simplex",
    "SparseAutoencoderModule",
    "TopK",
    "TrainOutput",
    "geometric_median",
    "make_activation",
    "register_activation",
    "register_loss_term",
    "sae_losses",
    "saelens_activation",
]
