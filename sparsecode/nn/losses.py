"""Loss terms of the sparse autoencoder family, one signature for all.

Each term is a function ``term(out, x, model) -> scalar tensor`` of the
training forward output (`SparseAutoencoderModule.forward_train`), the
(normalised) input batch and the module. `LOSS_TERMS` maps a name to the
function and to the coefficient that weights it:

========== ===================================================== ============
name       definition (batch mean)                               weight
========== ===================================================== ============
mse        ``||x - x_hat||^2``                                   1
l1         ``sum_j f_j ||W_dec_j||``                              alpha
l0         JumpReLU: ``sum_j H(z_j - theta_j)`` (straight-through) alpha
           or, in "tanh" mode, ``sum_j tanh(c f_j ||W_dec_j||)``
auxk       ``||e - e_hat||^2 * min(1, n_dead / k_aux)``, ``e`` the aux_coef
           residual, ``e_hat`` decoded from the top ``k_aux``
           dead latents
matryoshka ``sum_p ||x - x_hat_p||^2`` over the proper prefixes p    1
gated_l1   ``sum_j ReLU(pi_gate_j) ||W_dec_j||``                  alpha
gated_aux  ``||x - (ReLU(pi_gate) @ W_dec + b_pre)||^2`` with a   1
           frozen decoder
sad        spectral angle ``angle(x, x_hat)`` in radians          alpha
========== ===================================================== ============

An activation lists the terms it trains with in ``loss_terms``;
`sae_losses` returns the weighted terms as a dict the training loop sums and
logs. Terms accept each form of codes of a `TrainOutput` (dense, TopK's, a sparse
batch's) with the same value and gradients up to rounding. New terms are
added with `register_loss_term`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .functional import pattern_decode, sparse_decode
from .output import TrainOutput

__all__ = [
    "DECODER_PROJECTING_TERMS",
    "LOSS_TERMS",
    "register_loss_term",
    "row_norms",
    "sae_losses",
]

#: Terms whose gradient reaches ``W_dec`` only through decodes that return it
#: projected (`pattern_decode`'s ``project``) when the module's decoder has unit
#: rows: ``mse`` through the forward's ``x_hat``, ``auxk`` through its own.
DECODER_PROJECTING_TERMS = frozenset({"mse", "auxk"})


def _sq_err(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the squared error, in at least float32."""
    diff = x.float() - x_hat.float() if x.dtype != torch.float64 else x - x_hat
    return (diff * diff).sum(-1).mean()  # (pow's backward is slower on the CPU)


def _codes(out: TrainOutput) -> torch.Tensor:
    if out.codes is not None:
        return out.codes
    raise ValueError("this loss term needs dense codes (an activation without "
                     "sparse training).")


class _RowNorms(torch.autograd.Function):
    """Row norms with a one-pass backward ``W * (g / norms)`` (torch's own
    backward takes three passes over ``W``; 0 at a zero row, like torch's)."""

    @staticmethod
    def forward(ctx, W_MD):
        norms = torch.linalg.vector_norm(W_MD, dim=1)
        ctx.save_for_backward(W_MD, norms)
        return norms

    @staticmethod
    def backward(ctx, g_M):
        W_MD, norms = ctx.saved_tensors
        scale = torch.where(norms > 0, g_M / norms, 0.0)
        return W_MD * scale.unsqueeze(1)


def row_norms(W_MD: torch.Tensor) -> torch.Tensor:
    """Norms of the rows of ``W_MD``, with a one-pass backward (0 at a zero row)."""
    return _RowNorms.apply(W_MD)


def _dec_norms(model) -> torch.Tensor:
    return row_norms(model.W_dec)


def mse(out: TrainOutput, x: torch.Tensor, model) -> torch.Tensor:
    """Reconstruction error ``mean_i ||x_i - x_hat_i||^2``."""
    return _sq_err(x, out.x_hat)


def _sparse_sum(vals: torch.Tensor, idx: torch.Tensor, weight_M: torch.Tensor,
                n_rows: int) -> torch.Tensor:
    """``sum_(b, j) vals[b, j] * weight[idx[b, j]] / n_rows`` of sparse codes."""
    return ((vals * weight_M.to(vals.dtype)[idx]).sum() / n_rows).float()


def l1(out: TrainOutput, x: torch.Tensor, model) -> torch.Tensor:
    """L1 penalty weighted by decoder-row norms (Anthropic, April 2024)."""
    if out.sparse:  # TopK or a sparse batch
        return _sparse_sum(out.vals, out.idx, _dec_norms(model), x.shape[0])
    codes = out.codes
    return (codes * _dec_norms(model).to(codes.dtype)).sum(-1).mean().float()


def l0(out: TrainOutput, x: torch.Tensor, model) -> torch.Tensor:
    """JumpReLU sparsity: straight-through L0 ("step") or the tanh surrogate."""
    act = model.activation
    if out.pattern is not None:  # a sparse batch: the terms vanish off the support
        vals, idx, n = out.vals, out.idx, x.shape[0]
        if act.mode == "tanh":
            scaled = act.tanh_scale * vals * _dec_norms(model).to(vals.dtype)[idx]
            return (torch.tanh(scaled).sum() / n).float()
        return (act.sparse_step(out.pre_vals, idx).sum() / n).float()
    if act.mode == "tanh":
        codes = _codes(out)
        scaled = act.tanh_scale * codes * _dec_norms(model).to(codes.dtype)
        return torch.tanh(scaled).sum(-1).mean().float()
    return act.step(out.pre).sum(-1).mean().float()


def auxk(out: TrainOutput, x: torch.Tensor, model) -> torch.Tensor:
    """AuxK (Gao et al. 2024): dead latents reconstruct the residual."""
    if out.aux_vals is None:
        return x.new_zeros((), dtype=torch.float32)
    resid = (x - out.x_hat).detach()
    e_hat = sparse_decode(out.aux_vals, out.aux_idx, model.W_dec,
                          project=out.decoder_grad_projected)
    k_aux = out.aux_idx.shape[1]
    scale = (out.n_dead.float() / k_aux).clamp(max=1.0)
    return scale * _sq_err(resid, e_hat)


def matryoshka(out: TrainOutput, x: torch.Tensor, model) -> torch.Tensor:
    """Sum of the reconstruction errors of the proper nested prefixes."""
    codes = _codes(out)
    total = x.new_zeros((), dtype=torch.float32)
    x_hat = model.b_pre.to(codes.dtype).expand_as(x)
    lo = 0
    for hi in model.activation.prefixes[:-1]:
        x_hat = x_hat + codes[:, lo:hi] @ model.W_dec[lo:hi].to(codes.dtype)
        total = total + _sq_err(x, x_hat)
        lo = hi
    return total


def _gate(out: TrainOutput, model) -> torch.Tensor:
    """``ReLU(pi_gate)``: (batch, m), or flat at the pattern of a sparse batch."""
    act = model.activation
    if out.pattern is not None:
        return torch.relu(act.sparse_gate_pre(out.pre_vals, out.idx))
    return torch.relu(act.gate_pre(out.pre))


def gated_l1(out: TrainOutput, x: torch.Tensor, model) -> torch.Tensor:
    """Gated SAE sparsity: norm-weighted L1 of the gate's ReLU."""
    gate = _gate(out, model)
    if out.pattern is not None:
        return _sparse_sum(gate, out.idx, _dec_norms(model), x.shape[0])
    return (gate * _dec_norms(model).to(gate.dtype)).sum(-1).mean().float()


def gated_aux(out: TrainOutput, x: torch.Tensor, model) -> torch.Tensor:
    """Gated SAE auxiliary loss: reconstruct from the gate with a frozen decoder."""
    gate = _gate(out, model)
    W, b = model.W_dec.detach(), model.b_pre.detach()
    if out.pattern is not None:
        return _sq_err(x, pattern_decode(gate, out.pattern, W) + b)
    return _sq_err(x, gate @ W.to(gate.dtype) + b)


def sad(out: TrainOutput, x: torch.Tensor, model) -> torch.Tensor:
    """Mean spectral angle between ``x`` and ``x_hat`` (radians, in [0, pi]).

    ``2 atan2(||u - v||, ||u + v||)`` of the unit rows ``u``, ``v``: accurate
    (and with finite gradients) near 0, where ``arccos`` of the cosine is not.
    A zero row counts as the angle pi/2.
    """
    xs = [t if t.dtype == torch.float64 else t.float() for t in (x, out.x_hat)]
    u, v = (t / row_norms(t).clamp_min(1e-30).unsqueeze(1) for t in xs)
    return (2 * torch.atan2(row_norms(u - v), row_norms(u + v))).mean().float()


LOSS_TERMS: dict[str, tuple[Callable, str]] = {
    "mse": (mse, "one"),
    "l1": (l1, "alpha"),
    "l0": (l0, "alpha"),
    "auxk": (auxk, "aux_coef"),
    "matryoshka": (matryoshka, "one"),
    "gated_l1": (gated_l1, "alpha"),
    "gated_aux": (gated_aux, "one"),
    "sad": (sad, "alpha"),
}


def register_loss_term(name: str, weight: str = "one"):
    """Decorator registering a loss term ``fn(out, x, model) -> scalar``.

    Parameters
    ----------
    name : str
        The name an activation lists in its ``loss_terms``; must be new.
    weight : {"one", "alpha", "aux_coef"}, default="one"
        The coefficient the term is multiplied by.

    Examples
    --------
    >>> from sparsecode.nn import LOSS_TERMS, register_loss_term
    >>> @register_loss_term("doc_example_l2")
    ... def l2(out, x, model):
    ...     return (out.x_hat - x).pow(2).mean()
    >>> LOSS_TERMS["doc_example_l2"][1]
    'one'
    >>> del LOSS_TERMS["doc_example_l2"]
    """
    if weight not in ("one", "alpha", "aux_coef"):
        raise ValueError(
            f"weight must be 'one', 'alpha' or 'aux_coef', got {weight!r}.")

    def deco(fn: Callable) -> Callable:
        if name in LOSS_TERMS:
            raise ValueError(f"a loss term named {name!r} is already registered.")
        LOSS_TERMS[name] = (fn, weight)
        return fn

    return deco


def sae_losses(
    out: TrainOutput, x: torch.Tensor, model, *, alpha: float = 0.0,
    aux_coef: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Weighted loss terms of ``model.activation.loss_terms``.

    Parameters
    ----------
    out : TrainOutput
        `SparseAutoencoderModule.forward_train` output.
    x : torch.Tensor of shape (batch, n_features)
        The batch the module was run on.
    model : SparseAutoencoderModule
    alpha : float, default=0.0
        Sparsity coefficient (already warmed up by the caller).
    aux_coef : float, default=0.0
        AuxK coefficient.

    Returns
    -------
    dict of str to torch.Tensor
        Scalar float32 tensors; the loss is their sum.
    """
    weights = {"one": 1.0, "alpha": float(alpha), "aux_coef": float(aux_coef)}
    terms = {}
    for name in model.activation.loss_terms:
        fn, kind = LOSS_TERMS[name]
        terms[name] = weights[kind] * fn(out, x, model)
    return terms
