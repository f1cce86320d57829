"""Reading SAEs trained by SAELens and EleutherAI's sparsify.

`load_saelens` (``cfg.json`` + ``sae_weights.safetensors``) and `load_sparsify`
(``cfg.json`` + ``sae.safetensors``) return fitted `SparseAutoencoder`
objects; which architecture loads as which variant is declared by the
variants themselves (``saelens_names``, ``sparsify_names`` in
`sparsecode.nn.variants`). Nothing is unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file

from .._utils import read_json
from ..base import resolve_device
from ..nn import ACTIVATIONS, SparseAutoencoderModule, saelens_activation
from .estimator import SparseAutoencoder

__all__ = ["load_saelens", "load_sparsify"]

#: the SAELens weights (besides W_enc, W_dec and b_dec) of the variants read
_SAELENS_WEIGHTS = {"relu": ("b_enc",), "topk": ("b_enc",), "batchtopk": ("b_enc",),
                    "jumprelu": ("b_enc", "threshold"),
                    "gated": ("b_gate", "r_mag", "b_mag")}


def _float(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.float64 else t.to(torch.float32)


def _external(kind: str, d: int, m: int, act: str, act_kw: dict, weights: dict,
              device: str | None) -> SparseAutoencoder:
    dtype = weights["W_enc"].dtype
    module = SparseAutoencoderModule(d, m, act, act_kw, dtype=dtype)
    module.load_weights_({k: v.to(dtype) for k, v in weights.items()})
    module.to(resolve_device("cpu" if device is None else device))
    k = act_kw.get("k")
    est = SparseAutoencoder(n_components=m, activation=act, k=k, normalize_input=False)
    est._adopt(module)
    est.source_format_ = kind
    return est


def _read_external(path: Path, weights_file: str) -> tuple[dict, dict]:
    for name in ("cfg.json", weights_file):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name} not found.")
    cfg = read_json(path / "cfg.json")
    return cfg, {k: _float(v) for k, v in
                 load_file(str(path / weights_file), device="cpu").items()}


def _need(weights: dict, names: tuple[str, ...], path: Path, shapes: dict) -> None:
    missing = [n for n in names if n not in weights]
    if missing:
        raise ValueError(f"{path} lacks the weights {missing}.")
    for name, shape in shapes.items():
        if name in weights and tuple(weights[name].shape) != shape:
            raise ValueError(f"{path}: {name} has shape "
                             f"{tuple(weights[name].shape)}, expected {shape}.")


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
    cfg, w = _read_external(path, "sae_weights.safetensors")
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
    _need(w, ("W_enc", "W_dec", "b_dec", *_SAELENS_WEIGHTS[act]), path, shapes)
    W_enc = w["W_enc"].T.contiguous()
    shift = w["b_dec"] @ w["W_enc"] if cfg.get("apply_b_dec_to_input") is False else 0
    out = {"b_pre": w["b_dec"], "W_enc": W_enc, "W_dec": w["W_dec"]}
    if act == "gated":
        out["b_enc"] = torch.zeros(m, dtype=W_enc.dtype)
        out["activation.b_gate"] = w["b_gate"] + shift
        out["activation.r_mag"] = w["r_mag"]
        out["activation.b_mag"] = w["b_mag"] + shift * w["r_mag"].exp()
        return _external("saelens", d, m, "gated", {}, out, device)
    out["b_enc"] = w["b_enc"] + shift
    if act == "jumprelu" or (act == "batchtopk" and "threshold" in w):
        # (SAELens saves BatchTopK SAEs for inference as JumpReLU ones)
        tiny = torch.finfo(w["threshold"].dtype).tiny
        out["activation.log_threshold"] = w["threshold"].clamp_min(tiny).log()
        return _external("saelens", d, m, "jumprelu", {}, out, device)
    if act in ("topk", "batchtopk"):  # (BatchTopK without a threshold: as TopK)
        if cfg.get("rescale_acts_by_decoder_norm"):
            n = torch.linalg.vector_norm(out["W_dec"], dim=1)
            out["W_enc"], out["b_enc"] = out["W_enc"] * n[:, None], out["b_enc"] * n
            out["W_dec"] = out["W_dec"] / n[:, None]
        return _external("saelens", d, m, "topk", {"k": int(k)}, out, device)
    return _external("saelens", d, m, "relu", {}, out, device)


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
    cfg, w = _read_external(path, "sae.safetensors")
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
    _need(w, tuple(shapes), path, shapes)
    out = {"b_pre": w["b_dec"], "W_enc": w["encoder.weight"],
           "b_enc": w["encoder.bias"], "W_dec": w["W_dec"]}
    return _external("sparsify", d, m, "topk", {"k": int(cfg.get("k", 32))}, out,
                     device)
