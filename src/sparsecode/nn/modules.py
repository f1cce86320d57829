"""The sparse autoencoder `nn.Module` and its initialisation.

``codes = act(W_enc (x - b_pre) + b_enc)`` and ``x_hat = codes @ W_dec + b_pre``
with ``W_enc`` and ``W_dec`` both of shape ``(n_components, n_features)``
(``W_dec`` rows are the dictionary atoms). The activation is a registered
module (`sparsecode.nn.activations`). Training runs the dense encoder matmul
and then, when the codes are sparse, only sparse operations
(`sparsecode.nn.functional`): always for TopK (a fixed ``k`` per row), and for
activations with a ``support`` (ReLU) whenever the batch's active fraction is
at most `SparseAutoencoderModule.sparse_max_density`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .activations import Activation, make_activation
from .functional import Pattern, pattern_decode, pattern_linear
from .linear import linear
from .losses import DECODER_PROJECTING_TERMS

__all__ = ["SparseAutoencoderModule", "geometric_median"]


def geometric_median(
    X: torch.Tensor, n_iter: int = 100, eps: float = 1e-8, tol: float = 1e-7
) -> torch.Tensor:
    """Geometric median of the rows of ``X`` by Weiszfeld's iterations.

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, n_features)
    n_iter : int, default=100
        Maximum number of iterations.
    eps : float, default=1e-8
        Floor on distances (avoids division by zero at a data point).
    tol : float, default=1e-7
        Stop when an iteration moves the estimate by less than ``tol`` times
        the data's RMS distance to it (checked every 10 iterations).

    Returns
    -------
    torch.Tensor of shape (n_features,)
    """
    X = X.double()
    y = X.mean(0)
    for it in range(n_iter):
        dist = torch.linalg.vector_norm(X - y, dim=1)
        w = 1.0 / dist.clamp_min(eps)
        y_new = (w @ X) / w.sum()
        if it % 10 == 9:
            scale = float(dist.pow(2).mean().sqrt())
            if float(torch.linalg.vector_norm(y_new - y)) <= tol * max(scale, eps):
                return y_new
        y = y_new
    return y


class SparseAutoencoderModule(nn.Module):
    """Sparse autoencoder with pre-encoder bias ``b_pre`` (= decoder bias).

    Parameters
    ----------
    n_features : int
    n_components : int
    activation : str or Activation
        Registered name or an activation instance.
    activation_kwargs : dict, optional
        Constructor arguments when ``activation`` is a name.
    dtype : torch.dtype, default=torch.float32
    device : torch.device or str, default="cpu"

    Attributes
    ----------
    sparse_max_density : float
        Class attribute (may be set per instance): the largest active
        fraction of a training batch -- pairs of the activation's ``support``
        over ``batch * n_components`` -- trained by the sparse path; denser
        batches (e.g. early in an L1 run) take the dense one. Both give the
        same result up to rounding, so this only trades speed: measured on
        a 2-core CPU (batch 1024, d=384, 3072 latents) a sparse ReLU step is
        2.6-2.9x faster than a dense one at 1-2% density, 1.4-1.7x at 5%, 1.3x
        at 10% and slower from about 12-15%. 0 disables the sparse path.
    project_decoder_grad : bool
        Class attribute: whether TopK training (unit-norm decoder, loss
        terms in `sparsecode.nn.losses.DECODER_PROJECTING_TERMS`) has its
        decodes return the decoder gradient already projected off the rows
        (`pattern_decode`'s ``project``; ``out["decoder_grad_projected"]``
        then tells the training loop to skip `remove_parallel_grad_`). The
        same gradient up to rounding, without two passes over the ``(m, d)``
        gradient and weights after the backward.
    """

    sparse_max_density: float = 0.1
    project_decoder_grad: bool = True

    def __init__(
        self,
        n_features: int,
        n_components: int,
        activation: str | Activation = "topk",
        activation_kwargs: dict | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: Any = "cpu",
    ) -> None:
        super().__init__()
        if isinstance(activation, str):
            activation = make_activation(
                activation, n_components, **(activation_kwargs or {})
            )
        self.n_features, self.n_components = int(n_features), int(n_components)
        self.activation = activation
        kw = {"dtype": dtype, "device": device}
        self.b_pre = nn.Parameter(torch.zeros(n_features, **kw))
        self.W_enc = nn.Parameter(torch.zeros(n_components, n_features, **kw))
        self.b_enc = nn.Parameter(
            torch.zeros(n_components, **kw),
            requires_grad=activation.uses_encoder_bias,
        )
        self.W_dec = nn.Parameter(torch.zeros(n_components, n_features, **kw))
        self.activation.to(**kw)

    # ----------------------------------------------------------------- config
    def config(self) -> dict:
        """JSON-able description that rebuilds the module (see `from_config`)."""
        return {"n_features": self.n_features, "n_components": self.n_components,
                "activation": self.activation.name,
                "activation_kwargs": self.activation.config()}

    @classmethod
    def from_config(cls, config: dict, **kw: Any) -> SparseAutoencoderModule:
        """Build an (uninitialised) module from `config` output."""
        return cls(config["n_features"], config["n_components"],
                   config["activation"], config.get("activation_kwargs"), **kw)

    # ------------------------------------------------------------------- init
    @torch.no_grad()
    def reset_parameters_(
        self,
        X_sample: torch.Tensor,
        generator: torch.Generator,
        *,
        b_pre_init: str = "geometric_median",
        decoder_norm: float = 1.0,
    ) -> None:
        """Tied initialisation from a data sample.

        Decoder rows are random directions of norm ``decoder_norm`` (1 for
        unit-norm variants), ``W_enc = W_dec``, ``b_enc = 0`` and ``b_pre`` the
        geometric median, the mean of ``X_sample``, or zero.
        """
        W = torch.randn(self.W_dec.shape, generator=generator,
                        device=generator.device, dtype=torch.float64)
        W = W / torch.linalg.vector_norm(W, dim=1, keepdim=True).clamp_min(1e-12)
        if not self.activation.unit_norm_decoder:
            W = W * decoder_norm
        self.W_dec.copy_(W)
        self.W_enc.copy_(W)
        self.b_enc.zero_()
        if b_pre_init == "geometric_median":
            self.b_pre.copy_(geometric_median(X_sample))
        elif b_pre_init == "mean":
            self.b_pre.copy_(X_sample.double().mean(0))
        elif b_pre_init == "zeros":
            self.b_pre.zero_()
        else:
            raise ValueError(f"Unknown b_pre_init {b_pre_init!r}.")

    # -------------------------------------------------------------- inference
    def encode_pre(self, x_BD: torch.Tensor) -> torch.Tensor:
        """Pre-activations ``W_enc (x - b_pre) (+ b_enc)``."""
        bias = self.b_enc if self.activation.uses_encoder_bias else None
        return linear(x_BD - self.b_pre, self.W_enc, bias)

    def encode(self, x_BD: torch.Tensor) -> torch.Tensor:
        """Codes of ``x`` (dense, shape (batch, n_components))."""
        return self.activation(self.encode_pre(x_BD))

    def decode(self, codes_BM: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``codes @ W_dec + b_pre``."""
        return codes_BM @ self.W_dec + self.b_pre

    def forward(self, x_BD: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x_BD))

    # --------------------------------------------------------------- training
    def forward_train(
        self, x_BD: torch.Tensor, dead_M: torch.Tensor | None = None, k_aux: int = 0
    ) -> dict[str, torch.Tensor]:
        """Training forward pass; returns what the loss terms need.

        Keys: ``x_hat``, ``pre`` (pre-activations), then either ``codes``
        (dense) or the sparse codes ``vals``/``idx``: shape (batch, k) for
        TopK, flat (nnz,) with their ``pattern`` (`Pattern`) for an activation
        with a ``support`` on a sparse batch. With a ``dead_M`` mask and
        ``k_aux > 0``, also ``aux_vals``/``aux_idx`` (the top ``k_aux``
        pre-activations of dead latents, zero where fewer are dead) and
        ``n_dead``. TopK also sets ``decoder_grad_projected`` (see
        `project_decoder_grad`): whether the decodes return ``W_dec``'s
        gradient already projected off its rows.
        """
        if self.activation.sparse_k is not None:
            return self._forward_topk(x_BD, dead_M, k_aux)
        # W (x - b_pre) + b_enc as x W^T + (b_enc - W b_pre): the gradient of
        # b_pre is then a vector-matrix product, not a (batch x m x d) matmul
        shift = self.W_enc @ self.b_pre
        bias = self.b_enc - shift if self.activation.uses_encoder_bias else -shift
        pre = linear(x_BD, self.W_enc, bias)
        use_aux = dead_M is not None and k_aux > 0
        pattern = None if use_aux else self._sparse_pattern(pre.detach())
        if pattern is not None:
            return self._forward_pattern(x_BD, pre.detach(), pattern)
        codes = self.activation(pre)
        out = {"pre": pre, "codes": codes, "x_hat": self.decode(codes)}
        if use_aux:
            aux_idx, valid = _aux_select(pre.detach(), dead_M, k_aux)
            aux = torch.relu(pre.gather(1, aux_idx))
            out["aux_vals"] = aux * valid.to(aux.dtype)
            out["aux_idx"], out["n_dead"] = aux_idx, dead_M.sum()
        return out

    @torch.no_grad()
    def _sparse_pattern(self, pre_BM: torch.Tensor) -> Pattern | None:
        """The activation's support if sparse enough (one host sync), else None."""
        if self.sparse_max_density <= 0:
            return None
        support = self.activation.support(pre_BM)
        if support is None:
            return None
        flat = support.reshape(-1)
        pos = _positions(flat, self.sparse_max_density * flat.numel(),
                         count_first=flat.device.type != "cpu")
        return None if pos is None else Pattern.from_flat(pos, *support.shape)

    def _forward_pattern(self, x_BD, pre_BM, pattern) -> dict[str, torch.Tensor]:
        """Sparse training pass on the pairs of ``pattern`` (see `functional`)."""
        act = self.activation
        bias = self.b_enc if act.uses_encoder_bias else None
        pre_N = pre_BM.reshape(-1).index_select(0, pattern.flat)  # (`from_flat`)
        h_N = pattern_linear(x_BD, self.W_enc, bias, pattern, pre_N, self.b_pre)
        vals = act.sparse_codes(h_N, pattern.col)
        x_hat = pattern_decode(vals, pattern, self.W_dec) + self.b_pre
        return {"pre": pre_BM, "pre_vals": h_N, "vals": vals, "idx": pattern.col,
                "pattern": pattern, "x_hat": x_hat}

    def _forward_topk(self, x_BD, dead_M, k_aux) -> dict[str, torch.Tensor]:
        k, m = self.activation.sparse_k, self.n_components
        with torch.no_grad():
            pre = linear(x_BD - self.b_pre, self.W_enc, self.b_enc)
            idx = _topk_indices(pre, k)
        out: dict[str, torch.Tensor] = {"pre": pre, "idx": idx}
        idx_all = idx
        if dead_M is not None and k_aux > 0:
            aux_idx, valid = _aux_select(pre, dead_M, k_aux)
            idx_all = torch.cat([idx, aux_idx], 1)
        p_all = Pattern.from_indices(idx_all, m)
        pre_all = pre.gather(1, idx_all)
        v_all = pattern_linear(x_BD, self.W_enc, self.b_enc, p_all,
                               pre_all.reshape(-1), self.b_pre).view(idx_all.shape)
        out["vals"] = torch.relu(v_all[:, :k])
        p_dec = p_all if idx_all is idx else Pattern.from_indices(idx, m)
        act = self.activation
        project = (self.project_decoder_grad and act.unit_norm_decoder
                   and set(act.loss_terms) <= DECODER_PROJECTING_TERMS)
        x_hat = pattern_decode(out["vals"].reshape(-1), p_dec, self.W_dec, project)
        out["x_hat"] = x_hat + self.b_pre
        out["decoder_grad_projected"] = project
        if idx_all is not idx:
            aux = torch.relu(v_all[:, k:])
            out["aux_vals"] = aux * valid.to(aux.dtype)
            out["aux_idx"], out["n_dead"] = aux_idx, dead_M.sum()
        return out

    # ------------------------------------------------------------ constraints
    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Rescale decoder rows to unit norm."""
        norms = torch.linalg.vector_norm(self.W_dec, dim=1, keepdim=True)
        self.W_dec.div_(norms.clamp_min(torch.finfo(self.W_dec.dtype).tiny))

    @torch.no_grad()
    def remove_parallel_grad_(self) -> None:
        """Remove from each decoder row's gradient its component along the row."""
        g = self.W_dec.grad
        if g is not None:  # in place: no (n_components, n_features) temporaries
            along = torch.linalg.vecdot(g, self.W_dec, dim=1).unsqueeze(1)
            g.addcmul_(along, self.W_dec, value=-1)

    @torch.no_grad()
    def fold_scale_(self, scale: float) -> None:
        """Make the module act on ``x / scale`` with codes divided by ``scale``.

        A module trained on ``scale * x`` then maps raw ``x`` to the same
        codes divided by ``scale`` and reconstructs raw ``x``; decoder rows
        (and their norms) are unchanged. ``fold_scale_(1 / scale)`` undoes it.
        """
        self.b_pre.div_(scale)
        self.b_enc.div_(scale)
        self.activation.fold_scale_(scale)


_SAME_SIZE_INT = {torch.float64: torch.int64, torch.float32: torch.int32,
                  torch.bfloat16: torch.int16, torch.float16: torch.int16}


def _topk_indices(pre_BM: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of ``k`` entries of each row holding its ``k`` largest positives.

    Read as integers of the same size, the bit patterns of non-negative
    floats keep their order and lie above those of all negative floats (whose
    order they reverse). So the top ``k`` of that view are the row's largest
    positive entries and, if it has fewer than ``k``, some negative ones --
    which the ReLU turns into zero codes with zero gradient: the codes are
    those of ``topk`` on the floats, and torch's CPU ``topk`` is faster on
    integers (and needs no ReLU pass first).

    On the CPU, wide rows take two smaller ``topk`` calls (1.8x faster at
    3072 latents, k = 32): the columns form chunks of ``_CHUNK`` (chunk ``j``
    holds columns ``j, j + n, j + 2n, ...`` for ``n`` chunks, so the chunk
    maxima are one vectorised ``amax``), and the row's top ``k`` lie in the
    ``k`` chunks with the largest maxima -- an entry of any other chunk is
    below ``k`` chunk maxima -- so the second ``topk`` looks at ``k * _CHUNK``
    candidates only.
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


_CHUNK = 8  # entries per chunk in the two-stage top-k (measured best of 4-32)


def _positions(flat: torch.Tensor, limit: float, *, count_first: bool
               ) -> torch.Tensor | None:
    """Positions of the ``True`` entries of ``flat``, None if more than ``limit``.

    One host synchronisation either way. ``count_first`` (for GPUs) counts,
    then fills a buffer of that size, so a dense mask's positions are never
    formed; otherwise (CPU) the positions come first, their number from them:
    one pass over the mask less.
    """
    if count_first:
        nnz = int(torch.count_nonzero(flat))
        return None if nnz > limit else torch.nonzero_static(flat, size=nnz).squeeze(1)
    pos = flat.nonzero().squeeze(1)
    return None if pos.shape[0] > limit else pos


def _aux_select(
    pre_BM: torch.Tensor, dead_M: torch.Tensor, k_aux: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the ``k_aux`` largest dead pre-activations and a validity mask."""
    k_aux = min(int(k_aux), pre_BM.shape[1])
    masked = torch.where(dead_M, pre_BM, float("-inf"))
    vals, idx = masked.topk(k_aux, dim=-1, sorted=False)
    return idx, torch.isfinite(vals)
