"""The sparse autoencoder `nn.Module` and its initialisation.

``codes = act(W_enc (x - b_pre) + b_enc)`` and ``x_hat = codes @ W_dec + b_pre`` with
``W_enc`` and ``W_dec`` both of shape ``(n_components, n_features)`` (``W_dec`` rows are
the dictionary atoms). The activation is a registered module (`sparsecode.nn.variants`).
A transcoder (``n_outputs`` given) maps the input to another output,
``y_hat = codes @ W_dec + b_pre (+ x @ W_skip.T)``: its encoder input is not centred,
``b_pre`` is the output bias. Training runs the dense encoder matmul and then, when the
codes are sparse, only sparse operations (`sparsecode.nn.functional`): always for TopK
(a fixed ``k`` per row), and for activations with a ``support`` (ReLU) whenever the
batch's active fraction is at most `SparseAutoencoderModule.sparse_max_density`.
Inference runs in float64 when a lower-precision input could overflow (`_overflows`).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from .functional import Pattern, pattern_decode, pattern_linear
from .init import centre_of
from .linear import linear
from .losses import DECODER_PROJECTING_TERMS
from .output import TrainOutput
from .select import aux_select, support_positions, topk_indices
from .variants import Activation, make_activation

__all__ = ["SparseAutoencoderModule"]


def _scaled(fn, x_BD: torch.Tensor) -> torch.Tensor:
    """A positively homogeneous row statistic ``fn`` (std, norm) computed on
    rows divided by their largest magnitude: no overflow or underflow."""
    s = x_BD.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(x_BD.dtype).tiny)
    return fn(x_BD / s) * s


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
    input_norm : {"none", "layer_norm", "constant_norm_rescale"}, default="none"
        Per-input normalisation around the SAE, as SAELens defines it: ``layer_norm``
        encodes ``(x - mean(x)) / (std(x) + 1e-5)`` (unbiased std) and maps
        reconstructions back by ``* std + mean``; ``constant_norm_rescale`` encodes
        ``x * sqrt(d) / ||x||`` and divides reconstructions by that factor. `decode`
        works in the normalised space, `forward` reconstructs ``x`` itself.
    n_outputs : int, default=None
        A transcoder's output width; None for an autoencoder.
    skip_connection : bool, default=False
        A transcoder's linear skip term ``x @ W_skip.T`` (zero-initialised).

    Attributes
    ----------
    sparse_max_density : float
        Class attribute (may be set per instance): the largest active
        fraction of a training batch -- pairs of the activation's ``support``
        over ``batch * n_components`` -- trained by the sparse path; denser
        batches (e.g. early in an L1 run) take the dense one. Both give the
        same result up to rounding, so this only trades speed (the measured
        crossover: docs/design.md, section 4). 0 disables the sparse path.
    project_decoder_grad : bool
        Class attribute: whether TopK training (unit-norm decoder, loss terms in
        `sparsecode.nn.losses.DECODER_PROJECTING_TERMS`) has its decodes return the
        decoder gradient already projected off the rows (`pattern_decode`'s ``project``;
        `TrainOutput.decoder_grad_projected` then tells the training loop to skip
        `remove_parallel_grad_`). The same gradient up to rounding, without two passes
        over the ``(m, d)`` gradient and weights after the backward.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0); X = torch.randn(16, 8, generator=g)
    >>> m = SparseAutoencoderModule(8, 32, "topk", {"k": 3}); m.reset_parameters_(X, g)
    >>> tuple(m(X).shape), int((m.encode(X) != 0).sum(1).max())  # <= k per row
    ((16, 8), 3)
    """

    sparse_max_density: float = 0.1
    project_decoder_grad: bool = True
    INPUT_NORMS = ("none", "layer_norm", "constant_norm_rescale")

    def __init__(
        self,
        n_features: int,
        n_components: int,
        activation: str | Activation = "topk",
        activation_kwargs: dict | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: Any = "cpu",
        input_norm: str = "none",
        n_outputs: int | None = None,
        skip_connection: bool = False,
    ) -> None:
        super().__init__()
        if input_norm not in self.INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {self.INPUT_NORMS}, got "
                             f"{input_norm!r}.")
        if skip_connection and n_outputs is None:
            raise ValueError("skip_connection needs n_outputs (a transcoder).")
        if isinstance(activation, str):
            activation = make_activation(
                activation, n_components, **(activation_kwargs or {})
            )
        self.n_features, self.n_components = int(n_features), int(n_components)
        self.transcoder = n_outputs is not None
        self.n_outputs = self.n_features if n_outputs is None else int(n_outputs)
        self.input_norm = input_norm
        self.activation = activation
        kw = {"dtype": dtype, "device": device}
        self.b_pre = nn.Parameter(torch.zeros(self.n_outputs, **kw))
        self.W_enc = nn.Parameter(torch.zeros(n_components, n_features, **kw))
        self.b_enc = nn.Parameter(
            torch.zeros(n_components, **kw),
            requires_grad=activation.uses_encoder_bias or self.transcoder,
        )
        self.W_dec = nn.Parameter(torch.zeros(n_components, self.n_outputs, **kw))
        self.W_skip = (nn.Parameter(torch.zeros(self.n_outputs, n_features, **kw))
                       if skip_connection else None)
        self.activation.to(**kw)

    # ----------------------------------------------------------------- config
    def config(self) -> dict:
        """JSON-able description that rebuilds the module (see `from_config`)."""
        config = {"n_features": self.n_features, "n_components": self.n_components,
                  "activation": self.activation.name,
                  "activation_kwargs": self.activation.config(),
                  "input_norm": self.input_norm}
        if self.transcoder:
            config.update(n_outputs=self.n_outputs,
                          skip_connection=self.W_skip is not None)
        return config

    @classmethod
    def from_config(cls, config: dict, **kw: Any) -> SparseAutoencoderModule:
        """Build an (uninitialised) module from `config` output."""
        extra = {k: config[k] for k in ("input_norm", "n_outputs", "skip_connection")
                 if k in config}
        return cls(config["n_features"], config["n_components"],
                   config["activation"], config.get("activation_kwargs"), **extra,
                   **kw)

    def load_weights_(self, state: dict[str, torch.Tensor]) -> None:
        """``load_state_dict`` after checking names and shapes: a ``ValueError``
        names missing, unexpected or misshapen weights; values take the module's
        dtypes."""
        own = self.state_dict()
        if set(own) != set(state):
            raise ValueError(f"weights do not match the model: missing "
                             f"{sorted(set(own) - set(state))}, unexpected "
                             f"{sorted(set(state) - set(own))}.")
        for key, val in own.items():
            if tuple(state[key].shape) != tuple(val.shape):
                raise ValueError(f"weight {key!r} has shape "
                                 f"{tuple(state[key].shape)}, expected "
                                 f"{tuple(val.shape)}.")
        self.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})

    # ------------------------------------------------------------------- init
    @torch.no_grad()
    def reset_parameters_(
        self,
        X_sample: torch.Tensor,
        generator: torch.Generator,
        *,
        b_pre_init: str = "geometric_median",
        decoder_norm: float = 1.0,
        Y_sample: torch.Tensor | None = None,
    ) -> None:
        """Tied initialisation from a data sample.

        Decoder rows are random directions of norm ``decoder_norm`` (1 for unit-norm
        variants), ``W_enc = W_dec``, ``b_enc = 0`` and ``b_pre`` the geometric median,
        the mean of ``X_sample``, or zero. A transcoder (outputs ``Y_sample``) draws its
        encoder rows as independent unit directions, takes ``b_pre`` from ``Y_sample``
        and starts ``b_enc`` at ``-W_enc c`` with ``c`` the same centre of ``X_sample``
        (so the encoder starts on centred inputs); ``W_skip`` starts at zero.
        """
        W = self._directions(self.W_dec.shape, generator)
        if not self.activation.unit_norm_decoder:
            W = W * decoder_norm
        self.W_dec.copy_(W)
        self.b_enc.zero_()
        if not self.transcoder:
            self.W_enc.copy_(W)
            self.b_pre.copy_(centre_of(X_sample, b_pre_init))
            return
        self.W_enc.copy_(self._directions(self.W_enc.shape, generator))
        self.b_pre.copy_(centre_of(Y_sample, b_pre_init))
        self.b_enc.copy_(-(self.W_enc.double() @ centre_of(X_sample, b_pre_init)))
        if self.W_skip is not None:
            self.W_skip.zero_()

    @staticmethod
    def _directions(shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
        W = torch.randn(shape, generator=generator, device=generator.device,
                        dtype=torch.float64)
        return W / torch.linalg.vector_norm(W, dim=1, keepdim=True).clamp_min(1e-12)

    # -------------------------------------------------------------- inference
    @property
    def centre(self) -> torch.Tensor | None:
        """What the encoder subtracts from its input: ``b_pre``, or None
        for a transcoder."""
        return None if self.transcoder else self.b_pre

    def normalize(self, x_BD: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """``x`` normalised by ``input_norm``, and the statistics to undo it.
        Stds and norms are overflow-free (`_scaled`); a zero row stays zero."""
        if self.input_norm == "layer_norm":
            mu = x_BD.mean(-1, keepdim=True)
            std = _scaled(lambda z: z.std(-1, keepdim=True), x_BD - mu)
            return (x_BD - mu) / (std + 1e-5), (mu, std)
        if self.input_norm == "constant_norm_rescale":
            norm = _scaled(lambda z: torch.linalg.vector_norm(z, dim=-1, keepdim=True),
                           x_BD)
            norm, root_d = torch.where(norm > 0, norm, 1.0), self.n_features ** 0.5
            return x_BD / norm * root_d, (root_d / norm,)
        return x_BD, ()

    def _overflows(self, x_BD: torch.Tensor) -> bool:
        """Whether ``x`` (below float64) or ``b_pre`` has entries beyond
        ``finfo.max / 2**40``, where encoding could overflow."""
        x_dt = x_BD.dtype
        if x_dt == torch.float64 or not (x_BD.is_floating_point() and x_BD.numel()):
            return False
        return max(float(torch.linalg.vector_norm(t, ord=math.inf))
                   for t in (x_BD, self.b_pre.detach())) > torch.finfo(x_dt).max / 2**40

    def _in_float64(self, method: str, x: torch.Tensor) -> torch.Tensor:
        """``method(x)`` by a float64 copy of the module (cast back)."""
        return getattr(copy.deepcopy(self).double(), method)(x.double()).to(x.dtype)

    def denormalize(self, x_hat_BD: torch.Tensor, stats: tuple) -> torch.Tensor:
        """Undo `normalize` on a reconstruction (``stats`` from `normalize`)."""
        if self.input_norm == "layer_norm":
            return x_hat_BD * stats[1] + stats[0]
        if self.input_norm == "constant_norm_rescale":
            return x_hat_BD / stats[0]
        return x_hat_BD

    def encode_pre(self, x_BD: torch.Tensor) -> torch.Tensor:
        """Pre-activations ``W_enc (x - b_pre) (+ b_enc)`` of normalised ``x``."""
        bias = self.b_enc if self.activation.uses_encoder_bias or self.transcoder \
            else None
        centre = self.centre
        return linear(x_BD if centre is None else x_BD - centre, self.W_enc, bias)

    def encode(self, x_BD: torch.Tensor) -> torch.Tensor:
        """Codes of ``x`` (dense, (batch, n_components)); float64 if needed."""
        if self._overflows(x_BD):
            return self._in_float64("encode", x_BD)
        return self.activation(self.encode_pre(self.normalize(x_BD)[0]))

    def decode(self, codes_BM: torch.Tensor) -> torch.Tensor:
        """``codes @ W_dec + b_pre`` (normalised space; no skip term)."""
        if not self.training and self._overflows(codes_BM):
            return self._in_float64("decode", codes_BM)
        return codes_BM @ self.W_dec + self.b_pre

    def skip(self, x_BD: torch.Tensor) -> torch.Tensor | None:
        """A transcoder's skip term ``x @ W_skip.T``, or None."""
        return None if self.W_skip is None else linear(x_BD, self.W_skip)

    def forward(self, x_BD: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``x`` (a transcoder: the prediction); float64 if needed."""
        if self._overflows(x_BD):
            return self._in_float64("forward", x_BD)
        x_n, stats = self.normalize(x_BD)
        out = self.decode(self.activation(self.encode_pre(x_n)))
        skip = self.skip(x_n)
        return self.denormalize(out if skip is None else out + skip, stats)

    # --------------------------------------------------------------- training
    def forward_train(
        self, x_BD: torch.Tensor, dead_M: torch.Tensor | None = None, k_aux: int = 0
    ) -> TrainOutput:
        """Training forward pass; returns what the loss terms need.

        Dense ``codes``, TopK's sparse ``vals``/``idx`` of shape (batch, k),
        or flat ones with their ``pattern`` for an activation with a
        ``support`` on a sparse batch (see `TrainOutput`). With a ``dead_M``
        mask and ``k_aux > 0``, also the AuxK fields (the top ``k_aux``
        pre-activations of dead latents, zero where fewer are dead).
        """
        if self.activation.sparse_k is not None:
            return self._forward_topk(x_BD, dead_M, k_aux)
        # W (x - b_pre) + b_enc as x W^T + (b_enc - W b_pre): the gradient of
        # b_pre is then a vector-matrix product, not a (batch x m x d) matmul
        if self.transcoder:
            bias = self.b_enc
        else:
            shift = self.W_enc @ self.b_pre
            bias = self.b_enc - shift if self.activation.uses_encoder_bias else -shift
        pre = linear(x_BD, self.W_enc, bias)
        use_aux = dead_M is not None and k_aux > 0
        pattern = None if use_aux else self._sparse_pattern(pre.detach())
        if pattern is not None:
            return self._forward_pattern(x_BD, pre.detach(), pattern)
        codes = self.activation(pre)
        out = TrainOutput(self.decode(codes), pre, codes=codes)
        if use_aux:
            aux_idx, valid = aux_select(pre.detach(), dead_M, k_aux)
            aux = torch.relu(pre.gather(1, aux_idx))
            out = out._replace(aux_vals=aux * valid.to(aux.dtype), aux_idx=aux_idx,
                               n_dead=dead_M.sum())
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
        pos = support_positions(flat, self.sparse_max_density * flat.numel(),
                                count_first=flat.device.type != "cpu")
        return None if pos is None else Pattern.from_flat(pos, *support.shape)

    def _forward_pattern(self, x_BD, pre_BM, pattern) -> TrainOutput:
        """Sparse training pass on the pairs of ``pattern`` (see `functional`)."""
        act = self.activation
        bias = self.b_enc if act.uses_encoder_bias or self.transcoder else None
        pre_N = pre_BM.reshape(-1).index_select(0, pattern.flat)  # (`from_flat`)
        h_N = pattern_linear(x_BD, self.W_enc, bias, pattern, pre_N, self.centre)
        vals = act.sparse_codes(h_N, pattern.col)
        x_hat = pattern_decode(vals, pattern, self.W_dec) + self.b_pre
        return TrainOutput(x_hat, pre_BM, vals=vals, idx=pattern.col, pattern=pattern,
                           pre_vals=h_N)

    def _forward_topk(self, x_BD, dead_M, k_aux) -> TrainOutput:
        k, m = self.activation.sparse_k, self.n_components
        with torch.no_grad():
            centre = self.centre
            pre = linear(x_BD if centre is None else x_BD - centre, self.W_enc,
                         self.b_enc)
            idx = topk_indices(pre, k)
        idx_all = idx
        if dead_M is not None and k_aux > 0:
            aux_idx, valid = aux_select(pre, dead_M, k_aux)
            idx_all = torch.cat([idx, aux_idx], 1)
        p_all = Pattern.from_indices(idx_all, m)
        pre_all = pre.gather(1, idx_all)
        v_all = pattern_linear(x_BD, self.W_enc, self.b_enc, p_all,
                               pre_all.reshape(-1), self.centre).view(idx_all.shape)
        vals = torch.relu(v_all[:, :k])
        p_dec = p_all if idx_all is idx else Pattern.from_indices(idx, m)
        act = self.activation
        project = (self.project_decoder_grad and act.unit_norm_decoder
                   and set(act.loss_terms) <= DECODER_PROJECTING_TERMS)
        x_hat = pattern_decode(vals.reshape(-1), p_dec, self.W_dec, project)
        out = TrainOutput(x_hat + self.b_pre, pre, vals=vals, idx=idx,
                          decoder_grad_projected=project)
        if idx_all is not idx:
            aux = torch.relu(v_all[:, k:])
            out = out._replace(aux_vals=aux * valid.to(aux.dtype), aux_idx=aux_idx,
                               n_dead=dead_M.sum())
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

        A module trained on ``scale * x`` then maps raw ``x`` to the same codes
        divided by ``scale`` and reconstructs raw ``x``; decoder rows (and norms)
        are unchanged. ``fold_scale_(1 / scale)`` undoes it.
        """
        self.b_pre.div_(scale)
        self.b_enc.div_(scale)  # (a transcoder's input scale is folded likewise)
        self.activation.fold_scale_(scale)
