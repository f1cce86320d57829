"""Reading SAEs trained by EleutherAI's sparsify (cfg.json + sae.safetensors)."""

from __future__ import annotations

import os
from pathlib import Path

from ...nn import ACTIVATIONS
from ..estimator import SparseAutoencoder
from ._common import adopt, need, read_external

__all__ = ["load_sparsify"]


def load_sparsify(path: str | os.PathLike, device: str | None = None
                  ) -> SparseAutoencoder:
    """Read an EleutherAI sparsify SAE (``cfg.json`` + ``sae.safetensors``).

    ``encoder.weight`` [m, d], ``encoder.bias`` [m], ``W_dec`` [m, d] and
    ``b_dec`` [d]; ``cfg.json`` gives ``d_in``, ``num_latents`` (or
    ``expansion_factor``) and ``k``. Codes are the ``k`` largest of
    ``ReLU(encoder(x - b_dec))``, as in sparsify. Transcoders, skip
    connections and the ``groupmax`` activation are not supported.

    Parameters
    ----------
    path : str or path-like
    device : str, default=None

    Returns
    -------
    SparseAutoencoder
        Fitted, ``activation="topk"``, with ``source_format_ == "sparsify"``.
    """
    path = Path(path)
    cfg, w = read_external(path, "sae.safetensors")
    for flag in ("transcode", "skip_connection"):
        if cfg.get(flag):
            raise ValueError(f"sparsify models with {flag}=True are not supported.")
    name = cfg.get("activation", "topk")
    if "topk" not in ACTIVATIONS or name not in ACTIVATIONS["topk"].sparsify_names:
        raise ValueError(f"sparsify activation {name!r} is not supported.")
    d = int(cfg["d_in"])
    m = int(cfg.get("num_latents") or d * int(cfg.get("expansion_factor", 32)))
    shapes = {"encoder.weight": (m, d), "encoder.bias": (m,), "W_dec": (m, d),
              "b_dec": (d,)}
    need(w, tuple(shapes), path, shapes)
    out = {"b_pre": w["b_dec"], "W_enc": w["encoder.weight"],
           "b_enc": w["encoder.bias"], "W_dec": w["W_dec"]}
    return adopt("sparsify", d, m, "topk", {"k": int(cfg.get("k", 32))}, out,
                     device)
