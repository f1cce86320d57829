"""Writing sparse autoencoders in SAELens 6's format, for ``SAE.load_from_disk``.

A folder with ``cfg.json`` (the fields SAELens's config classes read, and
``metadata``) and ``sae_weights.safetensors``, written atomically. Each
activation is saved as the SAELens inference architecture that reproduces
its `transform` exactly; the training variant and its arguments go where
SAELens's own ``save_inference_model`` puts them (``metadata`` fields
``training_architecture`` and ``training_architecture_details``), so that
`load_saelens` gives the same variant back. The weights of each architecture
come from one function of `_ENCODERS`; a transcoder takes the SAELens
transcoder architecture with the same encoder and adds its output fields
(`sparsecode.sae.exchange.saelens_transcoder.transcoder_layout`).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ...nn import SparseAutoencoderModule
from ._common import check_jsonable, fitted_module, saelens_v6, write_external
from .saelens import WEIGHTS_FILE
from .saelens_transcoder import transcoder_layout

__all__ = ["save_saelens"]

#: the SAELens version whose format is written (metadata["sae_lens_version"]
#: must be >= 6 for SAELens to read the file as a version-6 config)
FORMAT_VERSION = "6.0.0"
_DTYPES = {torch.float32: "float32", torch.float64: "float64"}


def _bias_encoder(module: SparseAutoencoderModule) -> dict[str, torch.Tensor]:
    return {"b_enc": module.b_enc}


def _jumprelu(module: SparseAutoencoderModule) -> dict[str, torch.Tensor]:
    # the thresholds exactly as sparsecode's forward computes them
    return {"b_enc": module.b_enc, "threshold": module.activation.threshold}


def _batch_threshold(module: SparseAutoencoderModule) -> dict[str, torch.Tensor]:
    # eval-mode BatchTopK keeps pre where pre > max(threshold, 0): a JumpReLU
    # with that one threshold for every latent (SAELens's own conversion)
    dtype = module.W_dec.dtype
    thr = module.activation.threshold.to(dtype).clamp_min(0)
    return {"b_enc": module.b_enc,
            "threshold": torch.full((module.n_components,), float(thr), dtype=dtype)}


def _gated(module: SparseAutoencoderModule) -> dict[str, torch.Tensor]:
    act = module.activation
    return {"b_gate": act.b_gate, "r_mag": act.r_mag, "b_mag": act.b_mag}


#: activation -> (SAELens inference architecture, its weights besides W_enc,
#: W_dec and b_dec, SAELens training architecture)
_ENCODERS: dict[str, tuple[str, Callable, str]] = {
    "relu": ("standard", _bias_encoder, "standard"),
    "topk": ("topk", _bias_encoder, "topk"),
    "jumprelu": ("jumprelu", _jumprelu, "jumprelu"),
    "gated": ("gated", _gated, "gated"),
    "batchtopk": ("jumprelu", _batch_threshold, "batchtopk"),
    "matryoshka": ("jumprelu", _batch_threshold, "matryoshka_batchtopk"),
}


def _details(module: SparseAutoencoderModule) -> dict[str, Any]:
    """The activation's arguments under SAELens's training field names."""
    act = module.activation
    name = act.name
    if name in ("batchtopk", "matryoshka"):
        out = {"k": act.k, "topk_threshold_lr": act.threshold_lr,
               "rescale_acts_by_decoder_norm": False}
        if name == "matryoshka":
            out["matryoshka_widths"] = list(act.prefixes)
        return out
    if name == "jumprelu":
        return {"jumprelu_bandwidth": act.bandwidth,
                "jumprelu_init_threshold": act.threshold_init,
                "jumprelu_sparsity_loss_mode": act.mode,
                "jumprelu_tanh_scale": act.tanh_scale}
    if name == "topk":
        return {"k": act.k, "rescale_acts_by_decoder_norm": False}
    return {}


def _metadata(est: Any, module: SparseAutoencoderModule, training: str,
              extra: dict) -> dict:
    meta = copy.deepcopy(getattr(est, "metadata_", None) or {})
    if not isinstance(meta, dict):
        raise ValueError(f"metadata_ must be a dict, got {type(meta).__name__}.")
    meta.update(extra)
    if not saelens_v6(meta.get("sae_lens_version")):
        meta["sae_lens_version"] = FORMAT_VERSION
    details = meta.get("training_architecture_details")
    old = details if isinstance(details, dict) and meta.get(
        "training_architecture") == training else {}
    new = _details(module)
    if isinstance(old.get("k"), float) and round(old["k"]) == new.get("k"):
        new["k"] = old["k"]  # (SAELens's mean k may be fractional)
    meta["training_architecture"] = training
    meta["training_architecture_details"] = {**old, **new}
    check_jsonable(meta, "metadata")
    return meta


def _payload(est: Any, metadata: dict) -> tuple[dict, dict[str, torch.Tensor]]:
    """(cfg.json, weights) of ``est`` in SAELens 6's format."""
    module = fitted_module(est, "SAELens", transcoders=True)
    name = module.activation.name
    if name not in _ENCODERS:
        raise ValueError(
            f"activation {name!r} has no SAELens architecture that reproduces it; "
            f"supported: {sorted(_ENCODERS)}.")
    arch, encoder, training = _ENCODERS[name]
    dtype = module.W_dec.dtype
    if dtype not in _DTYPES:
        raise ValueError(f"SAELens files are written from float32 or float64 "
                         f"models, not {dtype}.")
    meta = _metadata(est, module, training, metadata)
    reshape = meta.pop("reshape_activations", "none")
    if reshape not in ("none", "hook_z"):
        raise ValueError(f"reshape_activations={reshape!r} is not a SAELens option.")
    hook = meta.get("hook_name")
    if reshape == "hook_z" and hook is not None and not str(hook).endswith("_z"):
        raise ValueError(f"reshape_activations='hook_z' needs a hook_z hook_name "
                         f"(SAELens refuses it otherwise), got {hook!r}.")
    weights = {"W_enc": module.W_enc.T, "W_dec": module.W_dec, "b_dec": module.b_pre,
               **encoder(module)}
    fields: dict[str, Any] = {"apply_b_dec_to_input": True,
                              "normalize_activations": module.input_norm}
    if module.transcoder:  # (b_dec is then the output bias)
        arch, fields, extra = transcoder_layout(module, arch)
        weights.update(extra)
    cfg: dict[str, Any] = {
        "architecture": arch, "d_in": module.n_features,
        "d_sae": module.n_components, "dtype": _DTYPES[dtype], "device": "cpu",
        **fields, "reshape_activations": reshape, "metadata": meta}
    if arch == "topk":
        cfg.update(k=module.activation.k, rescale_acts_by_decoder_norm=False)
    return cfg, {k: v.detach() for k, v in weights.items()}


def save_saelens(est: Any, path: str | os.PathLike, **metadata: Any) -> Path:
    """Save a fitted `SparseAutoencoder` or `Transcoder` as a SAELens 6 folder.

    ``SAE.load_from_disk(path)`` then gives codes and reconstructions equal to
    ``est``'s (float rounding aside). Activation -> SAELens architecture:
    ``"relu"`` -> ``standard``, ``"topk"`` -> ``topk``, ``"jumprelu"`` ->
    ``jumprelu``, ``"gated"`` -> ``gated``, and ``"batchtopk"`` /
    ``"matryoshka"`` -> ``jumprelu`` with their inference threshold for every
    latent (as SAELens itself saves BatchTopK and Matryoshka SAEs for
    inference). The module's ``input_norm`` becomes ``normalize_activations``.

    A `Transcoder` is written as the SAELens transcoder with the same
    encoder: ``"relu"`` -> ``transcoder``, ``"jumprelu"`` / ``"batchtopk"``
    / ``"matryoshka"`` -> ``jumprelu_transcoder`` (``skip_transcoder`` /
    ``jumprelu_skip_transcoder`` with ``skip_connection``), ``d_out`` its
    ``n_outputs_``; ``SAE.load_from_disk`` then gives a SAELens
    ``Transcoder`` whose ``encode`` and ``forward`` equal ``transform`` and
    ``predict``. SAELens has no TopK or Gated transcoder, so those raise
    ``ValueError`` (`save_sparsify` writes TopK transcoders whose outputs are
    as wide as their inputs).

    Parameters
    ----------
    est : SparseAutoencoder
        Fitted (a `Transcoder` too).
    path : str or path-like
        The folder to write (``cfg.json`` and ``sae_weights.safetensors``);
        an existing SAE folder there is replaced atomically.
    **metadata
        JSON-able fields that update ``est.metadata_`` (if any) in
        ``cfg["metadata"]``: hook_name, model_name, hook_head_index,
        neuronpedia_id, dataset_path, context_size, prepend_bos, ...
        ``reshape_activations="hook_z"`` sets that top-level option.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode import SparseAutoencoder
    >>> from sparsecode.io import load_saelens, save_saelens
    >>> X = np.random.RandomState(0).randn(200, 8).astype(np.float32)
    >>> est = SparseAutoencoder(16, k=4, max_iter=1, random_state=0,
    ...                         device="cpu").fit(X)
    >>> p = save_saelens(est, "sae_dir", hook_name="blocks.0.hook_resid_post")
    ... # doctest: +SKIP
    >>> load_saelens(p).metadata_["hook_name"]  # doctest: +SKIP
    'blocks.0.hook_resid_post'
    """
    cfg, weights = _payload(est, metadata)
    return write_external(path, cfg, WEIGHTS_FILE, weights)

