"""`TrainOutput`: what `SparseAutoencoderModule.forward_train` returns."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

__all__ = ["TrainOutput"]


class TrainOutput(NamedTuple):
    """The training forward pass of a batch: what the loss terms read.

    The codes come in one of three forms: dense ``codes``; TopK's ``vals`` and
    ``idx`` of shape (batch, k); or, for an activation with a ``support`` on a
    sparse batch, flat ``vals``/``idx`` of shape (nnz,) with their ``pattern``
    and ``pre_vals``. The fields a form does not use are None.

    Examples
    --------
    >>> out = TrainOutput(x_hat=torch.zeros(2, 3), pre=torch.zeros(2, 4),
    ...                   codes=torch.zeros(2, 4))
    >>> out.sparse, out.vals is None, tuple(out.x_hat.shape)
    (False, True, (2, 3))
    """

    x_hat: torch.Tensor
    """Reconstruction of the batch, (batch, n_features)."""

    pre: torch.Tensor
    """Pre-activations, (batch, n_components)."""

    codes: torch.Tensor | None = None
    """Dense codes, (batch, n_components); None on the sparse paths."""

    vals: torch.Tensor | None = None
    """Nonzero-pattern values of the codes (TopK: (batch, k); sparse batch: flat)."""

    idx: torch.Tensor | None = None
    """The latent of each entry of ``vals`` (same shape)."""

    pattern: Any = None
    """The `sparsecode.nn.functional.Pattern` of a sparse batch, else None."""

    pre_vals: torch.Tensor | None = None
    """Pre-activations at the pattern of a sparse batch (flat), else None."""

    aux_vals: torch.Tensor | None = None
    """AuxK: ReLU of the top ``k_aux`` dead pre-activations, (batch, k_aux)."""

    aux_idx: torch.Tensor | None = None
    """AuxK: their latents, (batch, k_aux)."""

    n_dead: torch.Tensor | None = None
    """AuxK: number of dead latents (a 0-d tensor)."""

    decoder_grad_projected: bool = False
    """The decodes return ``W_dec``'s gradient already projected off its rows,
    so the training loop skips `SparseAutoencoderModule.remove_parallel_grad_`."""

    @property
    def sparse(self) -> bool:
        """Whether the codes are in ``vals``/``idx`` rather than ``codes``."""
        return self.codes is None
