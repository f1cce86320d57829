"""Reading SAEs trained by SAELens (``cfg.json`` + ``sae_weights.safetensors``).

Which architecture loads as which variant is declared by the variants
themselves (``saelens_names`` in `sparsecode.nn.variants`). Nothing is
unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ...nn import saelens_activation
from ..estimator import SparseAutoencoder
from ._common import adopt, need, read_external

__all__ = ["load_saelens"]

#: the SAELens weights (besides W_enc, W_dec and b_dec) of the variants read
_SAELENS_WEIGHTS = {"relu": ("b_enc",), "topk": ("b_enc",), "batchtopk": ("b_enc",),
                    "jumprelu": ("b_enc", "threshold"),
                    "gated": ("b_gate", "r_mag", "b_mag")}


def _saelens_arch(cfg: dict) -> tuple[str, int | None]:
    """(architecture, k) from a SAELens cfg.json of any version."""
    kwargs = cfg.get("activation_fn_kwargs") or {}
    fn = cfg.get("activation_fn") or cfg.get("activation_fn_str") or "relu"
    arch = cfg.get("architecture") or ("topk" if fn == "topk" else "standard")
    if arch == "standard" and fn == "topk":
        arch = "topk"
    return arch, cfg.get("k", kwargs.get("k"))


def load_saelens(path: str | os.PathLike, device: str | None = None
                 ) -> SparseAutoencoder:
    """Read a SAELens SAE (``cfg.json`` + ``sae_weights.safetensors``).

    Supported architectures: ``standard`` (ReLU), ``topk``, ``jumprelu``
    (also what SAELens saves BatchTopK and Matryoshka SAEs as for inference)
    and ``gated``; ``apply_b_dec_to_input=False`` and
    ``rescale_acts_by_decoder_norm=True`` are folded into the weights.
    Weights are ``W_enc`` [d_in, d_sae], ``b_enc``, ``W_dec`` [d_sae, d_in],
    ``b_dec`` (+ ``threshold``; gated: ``b_gate``, ``r_mag``, ``b_mag``).

    Parameters
    ----------
    path : str or path-like
        The SAE's directory.
    device : str, default=None
        The CPU when None.

    Returns
    -------
    SparseAutoencoder
        Fitted, with ``source_format_ == "saelens"``.
    """
    path = Path(path)
    cfg, w = read_external(path, "sae_weights.safetensors")
    norm = cfg.get("normalize_activations") or "none"
    if norm != "none":
        raise ValueError(
            f"normalize_activations={norm!r} needs statistics that are not in the "
            "SAE files; only 'none' is supported (normalise inputs yourself)."
        )
    d, m = int(cfg["d_in"]), int(cfg["d_sae"])
    arch, k = _saelens_arch(cfg)
    shapes = {"W_enc": (d, m), "W_dec": (m, d), "b_dec": (d,), "b_enc": (m,),
              "threshold": (m,), "b_gate": (m,), "r_mag": (m,), "b_mag": (m,)}
    act = saelens_activation(arch)
    if act not in _SAELENS_WEIGHTS:
        raise ValueError(f"SAELens architecture {arch!r} is not supported.")
    need(w, ("W_enc", "W_dec", "b_dec", *_SAELENS_WEIGHTS[act]), path, shapes)
    W_enc = w["W_enc"].T.contiguous()
    shift = w["b_dec"] @ w["W_enc"] if cfg.get("apply_b_dec_to_input") is False else 0
    out = {"b_pre": w["b_dec"], "W_enc": W_enc, "W_dec": w["W_dec"]}
    if act == "gated":
        out["b_enc"] = torch.zeros(m, dtype=W_enc.dtype)
        out["activation.b_gate"] = w["b_gate"] + shift
        out["activation.r_mag"] = w["r_mag"]
        out["activation.b_mag"] = w["b_mag"] + shift * w["r_mag"].exp()
        return adopt("saelens", d, m, "gated", {}, out, device)
    out["b_enc"] = w["b_enc"] + shift
    if act == "jumprelu" or (act == "batchtopk" and "threshold" in w):
        # (SAELens saves BatchTopK SAEs for inference as JumpReLU ones)
        tiny = torch.finfo(w["threshold"].dtype).tiny
        out["activation.log_threshold"] = w["threshold"].clamp_min(tiny).log()
        return adopt("saelens", d, m, "jumprelu", {}, out, device)
    if act in ("topk", "batchtopk"):  # (BatchTopK without a threshold: as TopK)
        if cfg.get("rescale_acts_by_decoder_norm"):
            n = torch.linalg.vector_norm(out["W_dec"], dim=1)
            out["W_enc"], out["b_enc"] = out["W_enc"] * n[:, None], out["b_enc"] * n
            out["W_dec"] = out["W_dec"] / n[:, None]
        return adopt("saelens", d, m, "topk", {"k": int(k)}, out, device)
    return adopt("saelens", d, m, "relu", {}, out, device)


