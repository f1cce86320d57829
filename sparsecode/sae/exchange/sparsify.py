"""Reading and writing EleutherAI sparsify SAEs and transcoders (``cfg.json`` +
``sae.safetensors``).

sparsify saves one folder per hookpoint (``<run>/<hookpoint>/``, the run's
``config.json`` beside them). Its codes are the ``k`` largest of
``ReLU(encoder(x - b_dec))``: sparsecode's ``"topk"`` exactly. With
``transcode=true`` the input is not centred (``b_dec`` is only the output
bias) and with ``skip_connection=true`` the output adds ``x @ W_skip.T``;
either loads as a `Transcoder`. sparsify's decoder is always as wide as its
input (``W_dec`` (m, d_in), ``W_skip`` (d_in, d_in)). Config fields other
than the architecture are kept as ``metadata_`` and written back.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..._utils import read_json_object
from ...nn import ACTIVATIONS
from ..estimator import SparseAutoencoder
from ._common import (
    adopt,
    cfg_bool,
    cfg_int,
    check_jsonable,
    fitted_module,
    need,
    read_external,
    write_external,
)

__all__ = ["load_sparsify", "save_sparsify"]

WEIGHTS_FILE = "sae.safetensors"
#: the cfg.json fields that describe the architecture (the rest is metadata)
_ARCH_KEYS = ("activation", "num_latents", "k", "transcode", "skip_connection",
              "d_in")
#: a module path with a layer index (``layers.5``, ``model.layers.3.mlp``)
_HOOKPOINT = re.compile(r"[A-Za-z_]\w*(\.\w+)*\.\d+(\.\w+)*")


def _hookpoint(path: Path) -> str | None:
    """The hookpoint the folder is named after, when the layout says so."""
    name = path.resolve().name
    run_cfg = path.parent / "config.json"
    if run_cfg.is_file():
        try:
            hooks = read_json_object(run_cfg).get("hookpoints")
        except (ValueError, OSError):
            hooks = None
        if isinstance(hooks, list) and name in hooks:
            return name
    return name if _HOOKPOINT.fullmatch(name) else None


def load_sparsify(path: str | os.PathLike, device: str | None = None
                  ) -> SparseAutoencoder:
    """Read an EleutherAI sparsify SAE (``cfg.json`` + ``sae.safetensors``).

    ``encoder.weight`` [m, d], ``encoder.bias`` [m], ``W_dec`` [m, d] and
    ``b_dec`` [d]; ``cfg.json`` gives ``d_in``, ``num_latents`` (or
    ``expansion_factor``) and ``k``. Codes are the ``k`` largest of
    ``ReLU(encoder(x - b_dec))``, as in sparsify. A transcoder
    (``transcode=true``: codes of the raw ``x``) or a model with
    ``skip_connection=true`` (``W_skip`` [d, d], output ``+ x @ W_skip.T``)
    loads as a `Transcoder` with ``n_outputs_ = d_in`` whose ``predict`` is
    sparsify's ``forward`` output; a skip model that centres its input
    (``transcode=false``) has ``-encoder.weight @ b_dec`` folded into its
    encoder bias. The ``groupmax`` activation is not supported.

    Parameters
    ----------
    path : str or path-like
        The SAE's folder (one hookpoint of a sparsify run).
    device : str, default=None
        The CPU when None.

    Returns
    -------
    SparseAutoencoder
        Fitted (a `Transcoder` for a transcoder or skip model),
        ``activation="topk"``, with ``source_format_ == "sparsify"``
        and ``metadata_``: the config fields beyond the architecture
        (``normalize_decoder``, ``multi_topk``, ``expansion_factor``, any
        others) and ``"hookpoint"``, the folder's name, when the folder is
        listed in the run's ``config.json`` or is named like a module path
        with a layer index (``layers.5``).

    Raises
    ------
    FileNotFoundError
        A file is missing.
    ValueError
        A file is malformed (naming it), or the model is not supported.

    Examples
    --------
    >>> from sparsecode.io import load_sparsify
    >>> est = load_sparsify("checkpoints/run/layers.5")  # doctest: +SKIP
    >>> est.metadata_["hookpoint"]  # doctest: +SKIP
    'layers.5'
    """
    path = Path(path)
    cfg, w = read_external(path, WEIGHTS_FILE)
    file = path / "cfg.json"
    transcode = cfg_bool(cfg, "transcode", file, False)
    skip = cfg_bool(cfg, "skip_connection", file, False)
    name = cfg.get("activation", "topk")
    if name not in ACTIVATIONS["topk"].sparsify_names:
        raise ValueError(f"{file}: sparsify activation {name!r} is not supported "
                         f"(supported: {list(ACTIVATIONS['topk'].sparsify_names)}).")
    d = cfg_int(cfg, "d_in", file)
    m = cfg_int(cfg, "num_latents", file, 0, minimum=0) or d * cfg_int(
        cfg, "expansion_factor", file, 32)
    k = cfg_int(cfg, "k", file, 32)
    if k > m:
        raise ValueError(f"{file}: k={k} exceeds the {m} latents.")
    shapes = {"encoder.weight": (m, d), "encoder.bias": (m,), "W_dec": (m, d),
              "b_dec": (d,), **({"W_skip": (d, d)} if skip else {})}
    need(w, tuple(shapes), path / WEIGHTS_FILE, shapes, ())
    meta = {key: v for key, v in cfg.items() if key not in _ARCH_KEYS}
    hook = _hookpoint(path)
    if hook is not None:
        meta.setdefault("hookpoint", hook)
    out = {"b_pre": w["b_dec"], "W_enc": w["encoder.weight"],
           "b_enc": w["encoder.bias"], "W_dec": w["W_dec"]}
    if not (transcode or skip):
        return adopt("sparsify", d, m, "topk", {"k": k}, out, device, metadata=meta)
    if skip and not transcode:  # W (x - b_dec) + b == W x + (b - W b_dec)
        W = out["W_enc"]
        out["b_enc"] = (out["b_enc"].double() - W.double() @ out["b_pre"].double()
                        ).to(W.dtype)
    if skip:
        out["W_skip"] = w["W_skip"]
    return adopt("sparsify", d, m, "topk", {"k": k}, out, device, metadata=meta,
                 n_outputs=d, skip_connection=skip)


def save_sparsify(est: Any, path: str | os.PathLike, **cfg_overrides: Any) -> Path:
    """Save a fitted TopK `SparseAutoencoder` or `Transcoder` as a sparsify folder.

    ``sparsify.SparseCoder.load_from_disk(path)`` then encodes and decodes as
    ``est`` does. sparsify's only per-sample rule is top-k, so only
    ``activation="topk"`` (without ``input_norm``) can be written; BatchTopK
    and Matryoshka models encode with a threshold at inference, which
    sparsify cannot express (`save_saelens` writes them). A `Transcoder` is
    written with ``transcode=true`` (and ``skip_connection`` and ``W_skip``
    as it has them); sparsify's decoder is as wide as its input, so only
    transcoders with ``n_outputs_ == n_features_in_`` can be.

    Parameters
    ----------
    est : SparseAutoencoder
        Fitted, ``activation="topk"`` (a `Transcoder` too).
    path : str or path-like
        The folder to write (``cfg.json`` and ``sae.safetensors``); name it
        after the hookpoint to follow sparsify's layout. An existing SAE
        folder there is replaced atomically.
    **cfg_overrides
        JSON-able ``cfg.json`` fields (``normalize_decoder``, ``multi_topk``,
        ...), written over ``est.metadata_``'s; fields of the architecture
        (``k``, ``num_latents``, ``d_in``, ...) must agree with the model.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode import SparseAutoencoder
    >>> from sparsecode.io import load_sparsify, save_sparsify
    >>> X = np.random.RandomState(0).randn(200, 8).astype(np.float32)
    >>> est = SparseAutoencoder(16, k=4, max_iter=1, random_state=0,
    ...                         device="cpu").fit(X)
    >>> p = save_sparsify(est, "run/layers.3")  # doctest: +SKIP
    >>> load_sparsify(p).metadata_["hookpoint"]  # doctest: +SKIP
    'layers.3'
    """
    module = fitted_module(est, "sparsify", transcoders=True)
    name = module.activation.name
    if name != "topk":
        why = (" (it encodes with a threshold at inference, not a per-sample "
               "top-k; save_saelens writes it)" if name in ("batchtopk", "matryoshka")
               else "")
        raise ValueError(f"sparsify supports per-sample top-k codes only (its "
                         f"'topk' activation; 'groupmax' has no sparsecode "
                         f"variant): activation {name!r} cannot be written{why}.")
    if module.input_norm != "none":
        raise ValueError(f"sparsify has no input normalisation; a model with "
                         f"input_norm={module.input_norm!r} cannot be written.")
    d, m = module.n_features, module.n_components
    if module.transcoder and module.n_outputs != d:
        raise ValueError(f"sparsify's decoder is as wide as its input: a "
                         f"transcoder with {module.n_outputs} outputs and {d} "
                         "inputs cannot be written (save_saelens writes ReLU and "
                         "JumpReLU transcoders of any output width).")
    skip = module.W_skip is not None
    arch = {"activation": "topk", "num_latents": m, "k": module.activation.k,
            "transcode": module.transcoder, "skip_connection": skip, "d_in": d}
    meta = dict(getattr(est, "metadata_", None) or {})
    for source, where in ((meta, "metadata_"), (cfg_overrides, "cfg_overrides")):
        for key, value in source.items():
            if key in arch and value != arch[key]:
                raise ValueError(f"{where} sets {key}={value!r} but the model has "
                                 f"{key}={arch[key]!r}.")
    cfg = {"activation": "topk", "expansion_factor": max(1, m // d),
           "normalize_decoder": True, "multi_topk": False, **meta, **cfg_overrides,
           **arch}
    check_jsonable(cfg, "cfg.json")
    weights = {"encoder.weight": module.W_enc, "encoder.bias": module.b_enc,
               "W_dec": module.W_dec, "b_dec": module.b_pre,
               **({"W_skip": module.W_skip} if skip else {})}
    return write_external(path, cfg, WEIGHTS_FILE,
                          {k: v.detach() for k, v in weights.items()})
