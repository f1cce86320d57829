"""Reading SAEs and transcoders saved by SAELens (``cfg.json`` +
``sae_weights.safetensors``).

Which architecture loads as which variant is declared by the variants
themselves (``saelens_names`` in `sparsecode.nn.variants`; SAELens's
``matryoshka_batchtopk`` loads as ``"matryoshka"``). Every transformation
SAELens applies at inference is folded into the weights exactly or carried by
the module (``input_norm``); what cannot be is refused with a ``ValueError``.
Transcoder architectures load as `Transcoder`
(`sparsecode.sae.exchange.saelens_transcoder`). Nothing is unpickled.
Writing: `sparsecode.sae.exchange.saelens_write`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from ...nn import saelens_activation
from ..estimator import SparseAutoencoder
from ._common import (
    adopt,
    cfg_bool,
    cfg_int,
    cfg_number,
    exact_log,
    need,
    read_external,
    saelens_v6,
)
from .saelens_transcoder import TRANSCODERS, read_transcoder

__all__ = ["load_saelens"]

WEIGHTS_FILE = "sae_weights.safetensors"
#: SAELens architectures named apart from the variants' ``saelens_names``
_ALIASES = {"matryoshka_batchtopk": "matryoshka"}
#: architectures sparsecode cannot express, and why
_REFUSED = {
    "abstopk": "its codes keep their sign (top-k by magnitude) and sparsecode's "
               "codes are non-negative",
    "temporal": "its encoder attends over the context",
    "matching_pursuit": "its codes come from iterative matching pursuit, not "
                        "one encoder pass",
}
#: the SAELens weights (besides W_enc, W_dec and b_dec) of each variant
_WEIGHTS = {"relu": ("b_enc",), "topk": ("b_enc",), "jumprelu": ("b_enc",),
            "gated": ("b_gate", "r_mag", "b_mag"), "batchtopk": ("b_enc",),
            "matryoshka": ("b_enc",)}
#: weights each variant may have (threshold forms; SAELens <= 5's scaling)
_LEGACY = ("scaling_factor", "finetuning_scaling_factor")
_OPTIONAL = {"jumprelu": ("threshold", "log_threshold"),
             "batchtopk": ("topk_threshold", "threshold"),
             "matryoshka": ("topk_threshold", "threshold")}
#: config keys that describe the architecture (everything else is metadata)
_ARCH_KEYS = {
    "architecture", "d_in", "d_sae", "dtype", "device", "apply_b_dec_to_input",
    "normalize_activations", "reshape_activations", "k",
    "rescale_acts_by_decoder_norm", "activation_fn", "activation_fn_str",
    "activation_fn_kwargs", "finetuning_scaling_factor", "metadata",
    "norm_scaling_factor", "d_out",
}
#: pre-6 top-level names of metadata fields (SAELens renames them too)
_RENAMED = {"hook_point": "hook_name", "hook_point_head_index": "hook_head_index"}
_TRAINING_ARCHS = {"batchtopk": "batchtopk", "matryoshka_batchtopk": "matryoshka"}


def _architecture(cfg: dict, file: Path) -> tuple[str, str]:
    """(SAELens architecture, sparsecode activation) of a cfg of any version."""
    kwargs = cfg.get("activation_fn_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"{file}: 'activation_fn_kwargs' must be an object.")
    fn = cfg.get("activation_fn") or cfg.get("activation_fn_str")
    arch = cfg.get("architecture") or ("topk" if fn == "topk" else "standard")
    if not isinstance(arch, str):
        raise ValueError(f"{file}: 'architecture' must be a string, got {arch!r}.")
    if arch == "standard" and fn == "topk":
        arch = "topk"
    if arch in _REFUSED:
        raise ValueError(f"{file}: SAELens architecture {arch!r} is not supported: "
                         f"{_REFUSED[arch]}.")
    act = (TRANSCODERS[arch][0] if arch in TRANSCODERS
           else saelens_activation(arch) or _ALIASES.get(arch))
    if act not in _WEIGHTS:
        raise ValueError(f"{file}: SAELens architecture {arch!r} is not supported "
                         f"(supported: standard, topk, jumprelu, gated, batchtopk, "
                         f"matryoshka_batchtopk, {', '.join(TRANSCODERS)}).")
    if fn not in (None, "relu", "topk") or (fn == "topk" and act != "topk"):
        raise ValueError(f"{file}: activation_fn {fn!r} is not supported with "
                         f"architecture {arch!r}.")
    return arch, act


def _metadata(cfg: dict, file: Path) -> dict:
    """cfg["metadata"] plus the top-level fields that are not architecture."""
    meta = cfg.get("metadata") or {}
    if not isinstance(meta, dict):
        raise ValueError(f"{file}: 'metadata' must be a JSON object.")
    details = meta.get("training_architecture_details")
    details = details if isinstance(details, dict) else {}
    out = {}
    for key, value in cfg.items():
        if key not in _ARCH_KEYS and key not in details:
            name = _RENAMED.get(key, key)  # (unless both names are there)
            out[key if name in cfg else name] = value
    out.update(meta)
    reshape = cfg.get("reshape_activations")
    pre6 = not saelens_v6(cfg.get("sae_lens_version") or meta.get("sae_lens_version"))
    if reshape == "hook_z" or (reshape is None and pre6 and "hook_z" in str(
            out.get("hook_name") or "")):  # (SAELens's default before version 6)
        out["reshape_activations"] = "hook_z"
    return out


def _lookup(cfg: dict, meta: dict, key: str) -> Any:
    """A training field: top level (training checkpoints), else the metadata's
    ``training_architecture_details`` (inference files)."""
    if key in cfg:
        return cfg[key]
    details = meta.get("training_architecture_details")
    return details.get(key) if isinstance(details, dict) else None


def _norm(cfg: dict, file: Path, d: int) -> tuple[str, float]:
    """(the module's input_norm, a constant input scale to fold in)."""
    norm = cfg.get("normalize_activations")
    if norm is None or norm is False or norm == "none":
        return "none", 1.0
    if norm in ("layer_norm", "constant_norm_rescale"):
        return norm, 1.0
    if norm is True or norm == "expected_average_only_in":
        meta = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
        for where in (cfg, meta):
            if where.get("norm_scaling_factor") is not None:
                return "none", cfg_number(where, "norm_scaling_factor", file)
            avg = where.get("dataset_average_activation_norm")
            if isinstance(avg, dict) and avg.get("in") is not None:
                return "none", math.sqrt(d) / cfg_number(avg, "in", file)
        raise ValueError(
            f"{file}: normalize_activations='expected_average_only_in' needs the "
            "norm scaling factor (cfg key 'norm_scaling_factor'), which this "
            "config lacks; fold it with SAELens's "
            "fold_activation_norm_scaling_factor and save again.")
    raise ValueError(f"{file}: normalize_activations={norm!r} is not supported "
                     "(supported: none, layer_norm, constant_norm_rescale, and "
                     "expected_average_only_in with its scaling factor).")


def _legacy_scale(w: dict, cfg: dict, file: Path) -> torch.Tensor | None:
    """SAELens <= 5's per-latent ``scaling_factor``, multiplied into the codes
    before decoding (None when absent or all ones)."""
    names = [n for n in ("finetuning_scaling_factor", "scaling_factor") if n in w]
    if len(names) > 1:
        raise ValueError(f"{file} holds both {names}.")
    if not names:
        return None
    scale = w[names[0]]
    if bool((scale == 1).all()):
        return None
    if cfg.get("finetuning_scaling_factor") is False and not torch.allclose(
            scale, torch.ones_like(scale)):
        raise ValueError(f"{file}: weight {names[0]!r} is not all ones but "
                         "finetuning_scaling_factor is false (SAELens refuses "
                         "this file too).")
    return scale


def _k(cfg: dict, file: Path, m: int, act: str) -> int:
    kwargs = cfg.get("activation_fn_kwargs") or {}
    src = cfg if "k" in cfg else kwargs
    if act == "topk":
        k = cfg_int(src, "k", file)
    else:  # SAELens's BatchTopK takes a mean k that may be fractional
        k = max(1, round(cfg_number(src, "k", file)))
    if k > m:
        raise ValueError(f"{file}: k={k} exceeds d_sae={m}.")
    return k


def _widths(cfg: dict, meta: dict, file: Path, m: int) -> list[int]:
    widths = _lookup(cfg, meta, "matryoshka_widths")
    if (not isinstance(widths, list) or not widths or any(
            isinstance(v, bool) or not isinstance(v, int) for v in widths)
            or widths != sorted(set(widths)) or widths[0] < 1 or widths[-1] > m):
        raise ValueError(f"{file}: 'matryoshka_widths' must be increasing widths "
                         f"up to d_sae={m}, got {widths!r}.")
    return widths if widths[-1] == m else [*widths, m]


def _batchtopk_kwargs(src: Any, meta: dict, file: Path, m: int, act: str) -> dict:
    """k (and threshold_lr, prefixes) of a BatchTopK / Matryoshka model."""
    kw: dict[str, Any] = {"k": _k(src, file, m, act)}
    lr = _lookup(src, meta, "topk_threshold_lr")
    if isinstance(lr, (int, float)) and not isinstance(lr, bool) and 0 < lr <= 1:
        kw["threshold_lr"] = float(lr)
    if act == "matryoshka":
        kw["prefixes"] = _widths(src, meta, file, m)
    return kw


def _jumprelu_kwargs(cfg: dict, meta: dict) -> dict:
    """SAELens's JumpReLU training fields, where sparsecode has them."""
    out = {}
    for ours, theirs in (("bandwidth", "jumprelu_bandwidth"),
                         ("threshold_init", "jumprelu_init_threshold"),
                         ("tanh_scale", "jumprelu_tanh_scale")):
        v = _lookup(cfg, meta, theirs)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf:
            out[ours] = float(v)
    mode = _lookup(cfg, meta, "jumprelu_sparsity_loss_mode")
    if mode in ("step", "tanh"):
        out["mode"] = mode
    return out


def _threshold(w: dict, file: Path, scalar: bool) -> torch.Tensor | None:
    """The BatchTopK threshold: ``topk_threshold``, or ``threshold`` when it is
    the same for every latent (as SAELens's inference files hold it)."""
    if "topk_threshold" in w:
        return w["topk_threshold"].reshape(())
    t = w.get("threshold")
    if t is None:
        if scalar:
            raise ValueError(f"{file} lacks the weight 'topk_threshold'.")
        return None
    return t[0] if bool((t == t[0]).all()) else None


def _sae_weights(cfg: dict, w: dict, file: Path, wfile: Path, dm: tuple[int, int],
                 act: str) -> tuple[dict[str, torch.Tensor], str]:
    """(module weights but the activation's thresholds, input_norm) of an SAE
    file, with every inference transformation of SAELens folded in."""
    (d, m), (input_norm, s) = dm, _norm(cfg, file, dm[0])
    shapes = {"W_enc": (d, m), "W_dec": (m, d), "b_dec": (d,), "topk_threshold": (),
              **{n: (m,) for n in ("b_enc", "threshold", "log_threshold", "b_gate",
                                   "r_mag", "b_mag", "scaling_factor",
                                   "finetuning_scaling_factor")}}
    need(w, ("W_enc", "W_dec", "b_dec", *_WEIGHTS[act]), wfile, shapes,
         (*_OPTIONAL.get(act, ()), *_LEGACY))
    if act == "jumprelu" and not ({"threshold", "log_threshold"} & set(w)):
        raise ValueError(f"{wfile} lacks the weight 'threshold'.")
    W_enc, W_dec, b_dec = w["W_enc"].T, w["W_dec"], w["b_dec"]
    apply_b_dec = cfg_bool(cfg, "apply_b_dec_to_input", file, True)
    shift = 0 if apply_b_dec else W_enc @ b_dec  # x W = (x - b_dec) W + b_dec W
    out: dict[str, torch.Tensor] = {}
    if act == "gated":
        out["b_enc"] = torch.zeros(m, dtype=W_enc.dtype)
        out["activation.b_gate"] = w["b_gate"] + shift
        out["activation.r_mag"] = w["r_mag"]
        out["activation.b_mag"] = w["b_mag"] + shift * w["r_mag"].exp()
    else:
        out["b_enc"] = w["b_enc"] + shift
    if act in ("topk", "batchtopk", "matryoshka") and cfg_bool(
            cfg, "rescale_acts_by_decoder_norm", file, False):
        # SAELens selects on pre * ||W_dec|| and decodes with W_dec / ||W_dec||
        n = torch.linalg.vector_norm(W_dec, dim=1).clamp_min(torch.finfo(
            W_dec.dtype).tiny)
        W_enc, out["b_enc"], W_dec = W_enc * n[:, None], out["b_enc"] * n, \
            W_dec / n[:, None]
    legacy = _legacy_scale(w, cfg, wfile)
    if legacy is not None:  # (codes * scale) @ W_dec == codes @ (scale W_dec)
        W_dec = W_dec * legacy[:, None]
    # s x as input: (s x - b_dec) W = (x - b_dec / s)(s W), and x_hat / s
    out.update(W_enc=(W_enc * s).contiguous(), W_dec=W_dec / s, b_pre=b_dec / s)
    return out, input_norm


def load_saelens(path: str | os.PathLike, device: str | None = None
                 ) -> SparseAutoencoder:
    """Read a SAELens SAE or transcoder (``cfg.json`` + ``sae_weights.safetensors``).

    Architectures and the variant each loads as: ``standard`` -> ``"relu"``,
    ``topk`` -> ``"topk"``, ``jumprelu`` -> ``"jumprelu"`` (``"batchtopk"``
    or ``"matryoshka"`` when its metadata says SAELens converted such a model
    and the threshold is one value), ``gated`` -> ``"gated"``, and the
    training checkpoints ``batchtopk`` / ``matryoshka_batchtopk`` ->
    ``"batchtopk"`` / ``"matryoshka"`` with ``topk_threshold`` as inference
    threshold (what SAELens's own inference conversion gives). Folded into
    the weights exactly: ``apply_b_dec_to_input=False``,
    ``rescale_acts_by_decoder_norm=True``, SAELens <= 5's ``scaling_factor``
    and ``normalize_activations="expected_average_only_in"`` with its
    ``norm_scaling_factor``; ``"layer_norm"`` and ``"constant_norm_rescale"``
    become the module's ``input_norm``. A ``reshape_activations="hook_z"`` SAE
    acts on flattened ``z`` (``n_heads * d_head`` columns).

    Transcoders load as a fitted `Transcoder` (``n_outputs_ = d_out``):
    ``transcoder`` / ``skip_transcoder`` -> ``"relu"`` and
    ``jumprelu_transcoder`` / ``jumprelu_skip_transcoder`` -> ``"jumprelu"``
    (``"batchtopk"`` / ``"matryoshka"`` as for SAEs), the ``skip_`` ones with
    ``skip_connection=True``; ``predict`` gives SAELens's ``forward``. Their
    input is never centred (SAELens refuses ``apply_b_dec_to_input`` for
    them) and only ``normalize_activations="none"`` is read (SAELens
    normalises a transcoder's input but not its output).

    Parameters
    ----------
    path : str or path-like
        The SAE's directory.
    device : str, default=None
        The CPU when None.

    Returns
    -------
    SparseAutoencoder
        Fitted (a `Transcoder` for a transcoder), with
        ``source_format_ == "saelens"`` and ``metadata_``: every
        field of ``cfg["metadata"]`` plus the top-level fields that are not
        architecture (older SAELens versions keep hook_name, model_name, ...
        there).

    Raises
    ------
    FileNotFoundError
        A file is missing.
    ValueError
        A file is malformed (naming it), or the SAE is not expressible.

    Examples
    --------
    >>> from sparsecode.io import load_saelens
    >>> est = load_saelens("my_sae_dir")  # doctest: +SKIP
    >>> codes = est.transform(X)  # doctest: +SKIP
    >>> est.metadata_["hook_name"]  # doctest: +SKIP
    'blocks.8.hook_resid_pre'
    """
    path = Path(path)
    cfg, w = read_external(path, WEIGHTS_FILE)
    file, wfile = path / "cfg.json", path / WEIGHTS_FILE
    d, m = cfg_int(cfg, "d_in", file), cfg_int(cfg, "d_sae", file)
    arch, act = _architecture(cfg, file)
    meta = _metadata(cfg, file)
    if cfg.get("reshape_activations") not in (None, "none", "hook_z"):
        raise ValueError(f"{file}: reshape_activations="
                         f"{cfg['reshape_activations']!r} is not supported.")
    d_out, skip = None, False
    if arch in TRANSCODERS:
        out, d_out, skip = read_transcoder(cfg, w, file, wfile, arch, d, m)
        input_norm = "none"
    else:
        out, input_norm = _sae_weights(cfg, w, file, wfile, (d, m), act)
    dtype = out["W_enc"].dtype
    kw: dict[str, Any] = {}
    training = _TRAINING_ARCHS.get(meta.get("training_architecture"))
    if act == "jumprelu" and training and "threshold" in w:
        try:  # SAELens's inference file of a BatchTopK / Matryoshka model
            found = _batchtopk_kwargs(meta.get("training_architecture_details"),
                                      meta, file, m, training)
        except (ValueError, AttributeError):
            found = None  # (a JumpReLU file after all)
        if found is not None and _threshold(w, wfile, scalar=False) is not None:
            act, kw = training, found
    elif act in ("batchtopk", "matryoshka"):
        kw = _batchtopk_kwargs(cfg, meta, file, m, act)
    if act in ("batchtopk", "matryoshka"):
        thr = _threshold(w, wfile, scalar=arch in _TRAINING_ARCHS)
        if thr is None:  # a BatchTopK file whose thresholds differ per latent
            act, kw = "jumprelu", {}
        else:
            out["activation.threshold_num"] = thr.to(dtype)
            out["activation.threshold_den"] = torch.ones((), dtype=dtype)
    if act == "jumprelu":
        kw.update(_jumprelu_kwargs(cfg, meta))
        out["activation.log_threshold"] = (
            w["log_threshold"] if "threshold" not in w
            else exact_log(w["threshold"], dtype))
    elif act == "topk":
        kw["k"] = _k(cfg, file, m, act)
    return adopt("saelens", d, m, act, kw, out, device, input_norm=input_norm,
                 metadata=meta, n_outputs=d_out, skip_connection=skip)
