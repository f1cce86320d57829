"""`ConvSparseAutoencoderModule`: a convolutional sparse autoencoder on image batches.

Shapes: ``x_BCHW`` images (batch, channels, height, width), ``z_BMHW`` code maps
(``M`` = n_components). The encoder is ``conv2d`` with "same" padding, the
codes keep the ``k`` largest rectified responses of each map (spatial top-k),
and the decoder is the adjoint ``conv_transpose2d``, so a code at ``(i, j)``
paints its atom centred at ``(i, j)``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ConvSparseAutoencoderModule", "spatial_topk"]


def spatial_topk(pre_BMHW: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest entries of each map, rectified; zero the rest.

    Parameters
    ----------
    pre_BMHW : torch.Tensor of shape (B, M, H, W)
    k : int
        Entries kept per map (clipped to ``H * W``).

    Returns
    -------
    torch.Tensor of the same shape

    Examples
    --------
    >>> import torch
    >>> z = spatial_topk(torch.arange(8.0).reshape(1, 2, 2, 2) - 5, 1)
    >>> z.flatten().tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]
    """
    B, M, H, W = pre_BMHW.shape
    flat = pre_BMHW.reshape(B, M, H * W)
    vals, idx = flat.topk(min(int(k), H * W), dim=-1)
    out = torch.zeros_like(flat).scatter(-1, idx, F.relu(vals))
    return out.reshape(B, M, H, W)


class ConvSparseAutoencoderModule(nn.Module):
    """Convolutional SAE: ``z = topk(relu(conv(x_n, W_enc) + b_enc))``,
    ``x_hat = conv_transpose(z, W_dec) * scale + b_dec``.

    ``x_n = (x - b_dec) / scale`` is the input normalised by the buffers
    ``b_dec`` (per-channel mean) and ``scale`` (a global standard deviation)
    set by the estimator.

    Parameters
    ----------
    n_channels : int
    n_components : int
        Code maps (atoms).
    kernel_size : int
        Odd side of the square atoms.
    dtype, device : optional

    Examples
    --------
    >>> import torch
    >>> m = ConvSparseAutoencoderModule(1, 4, 5)
    >>> m.reset_parameters_(torch.Generator().manual_seed(0))
    >>> x_hat, z = m(torch.randn(2, 1, 16, 16), k=3)
    >>> tuple(x_hat.shape), tuple(z.shape), int((z != 0).sum((2, 3)).max()) <= 3
    ((2, 1, 16, 16), (2, 4, 16, 16), True)
    """

    def __init__(self, n_channels: int, n_components: int, kernel_size: int, *,
                 dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}.")
        kw = {"dtype": dtype or torch.float32, "device": device}
        shape = (n_components, n_channels, kernel_size, kernel_size)
        self.W_enc = nn.Parameter(torch.zeros(shape, **kw))
        self.W_dec = nn.Parameter(torch.zeros(shape, **kw))
        self.b_enc = nn.Parameter(torch.zeros(n_components, **kw))
        self.register_buffer("b_dec", torch.zeros(n_channels, **kw))
        self.register_buffer("scale", torch.ones((), **kw))
        self.padding = kernel_size // 2

    @torch.no_grad()
    def reset_parameters_(self, gen: torch.Generator) -> None:
        """Random unit-norm atoms, a tied encoder (the decoder's adjoint), zero bias."""
        W = torch.randn(self.W_dec.shape, generator=gen, dtype=torch.float64)
        self.W_dec.copy_(W)
        self.normalize_decoder_()
        self.W_enc.copy_(self.W_dec)
        self.b_enc.zero_()

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Scale every atom to unit Frobenius norm (the constraint after a step)."""
        norms = self.W_dec.flatten(1).norm(dim=1).clamp_min(1e-12)
        self.W_dec.div_(norms[:, None, None, None])

    def preactivations(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        """Encoder responses before the sparsity, ``(B, M, H, W)``."""
        x = (x_BCHW - self.b_dec[:, None, None]) / self.scale
        return F.conv2d(x, self.W_enc, self.b_enc, padding=self.padding)

    def encode(self, x_BCHW: torch.Tensor, k: int) -> torch.Tensor:
        """Sparse code maps: the ``k`` largest rectified responses of each map."""
        return spatial_topk(self.preactivations(x_BCHW), k)

    def decode(self, z_BMHW: torch.Tensor) -> torch.Tensor:
        """Images from code maps (in the input's units)."""
        x = F.conv_transpose2d(z_BMHW, self.W_dec, padding=self.padding)
        return x * self.scale + self.b_dec[:, None, None]

    def detection(self, z_BMHW: torch.Tensor) -> torch.Tensor:
        """Energy the codes paint at each pixel, ``(B, H, W)``: the codes
        decoded with the squared atoms, summed over channels (peaks at the
        centres of the objects the atoms draw, whatever their sign)."""
        W2 = self.W_dec.square().sum(1, keepdim=True)
        return F.conv_transpose2d(z_BMHW, W2, padding=self.padding)[:, 0]

    def forward(self, x_BCHW: torch.Tensor, k: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_hat_BCHW, z_BMHW)``."""
        z = self.encode(x_BCHW, k)
        return self.decode(z), z
