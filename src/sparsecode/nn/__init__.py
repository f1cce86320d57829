"""Torch building blocks of the sparse autoencoder family.

* `activations` -- registered activations (relu, topk, batchtopk, gated,
  matryoshka) and the registry;
* `jumprelu` -- the registered JumpReLU with its straight-through gradients;
* `modules` -- `SparseAutoencoderModule` and its initialisation;
* `losses` -- the named loss terms and `sae_losses`;
* `functional` -- sparse autograd primitives (TopK training, and sparse batches
  of ReLU-family activations).
"""

from .activations import (
    ACTIVATIONS,
    Activation,
    BatchTopK,
    Gated,
    Matryoshka,
    ReLU,
    TopK,
    make_activation,
    register_activation,
)
from .jumprelu import JumpReLU
from .losses import LOSS_TERMS, sae_losses
from .modules import SparseAutoencoderModule, geometric_median

__all__ = [
    "ACTIVATIONS",
    "LOSS_TERMS",
    "Activation",
    "BatchTopK",
    "Gated",
    "JumpReLU",
    "Matryoshka",
    "ReLU",
    "SparseAutoencoderModule",
    "TopK",
    "geometric_median",
    "make_activation",
    "register_activation",
    "sae_losses",
]
