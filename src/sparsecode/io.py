"""Save and load estimators (safetensors + JSON), and read external SAEs.

`save` writes a directory with ``model.safetensors`` (every tensor) and
``config.json`` (class, `get_params`, fitted metadata, and the name, shape
and dtype of every tensor). The directory is written under a temporary name
and renamed into place. `load` checks the format, the class (only sparsecode
estimators), the tensor names and shapes, and never unpickles anything.

`load_saelens` and `load_sparsify` read SAEs trained by SAELens
(``cfg.json`` + ``sae_weights.safetensors``) and EleutherAI sparsify
(``cfg.json`` + ``sae.safetensors``) as fitted `SparseAutoencoder` objects.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from ._checkpoint import write_json, write_tensors
from .autoencoder import SparseAutoencoder
from .base import BaseSparseEstimator, resolve_device
from .nn.modules import SparseAutoencoderModule

__all__ = ["load", "load_saelens", "load_sparsify", "save"]

FORMAT, FORMAT_VERSION = "sparsecode", 1
MODEL_FILE, CONFIG_FILE = "model.safetensors", "config.json"
_JSON_SCALARS = (str, int, float, bool, type(None))


# ------------------------------------------------------------------ helpers
def _jsonable(value: Any) -> bool:
    if isinstance(value, _JSON_SCALARS):
        return True
    if isinstance(value, (list, tuple)):
        return all(_jsonable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(v) for k, v in value.items())
    return False


def _plain(value: Any) -> Any:
    """numpy scalars, tuples and paths -> JSON-able Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (torch.device, torch.dtype)):
        return str(value)
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    return value


def _split(items: dict[str, Any], prefix: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """JSON-able values, and tensors for arrays (referenced as {"__tensor__": k})."""
    plain, tensors = {}, {}
    for name, value in items.items():
        value = _plain(value)
        if isinstance(value, (np.ndarray, torch.Tensor)):
            key = f"{prefix}.{name}"
            tensors[key] = torch.as_tensor(np.asarray(value) if isinstance(
                value, np.ndarray) else value)
            plain[name] = {"__tensor__": key}
        elif _jsonable(value):
            plain[name] = value
        else:
            warnings.warn(f"{prefix} {name!r} of type {type(value).__name__} cannot "
                          "be saved; it is stored as None.", stacklevel=3)
            plain[name] = None
    return plain, tensors


def _unsplit(plain: dict, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    out = {}
    for name, value in plain.items():
        if isinstance(value, dict) and set(value) == {"__tensor__"}:
            value = tensors[value["__tensor__"]].numpy()
        out[name] = value
    return out


def _fitted_attributes(est: BaseSparseEstimator) -> dict[str, Any]:
    return {k: v for k, v in vars(est).items()
            if k.endswith("_") and not k.startswith("_")}


def _atomic_dir(path: Path, write) -> None:
    """Write a directory under a temporary name, then swap it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not (path / CONFIG_FILE).is_file() and any(path.iterdir()):
        raise FileExistsError(f"{path} exists and is not a saved sparsecode model.")
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp"))
    try:
        write(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old"))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------- save / load
def save(est: BaseSparseEstimator, path: str | os.PathLike) -> Path:
    """Save a fitted sparsecode estimator to the directory ``path``.

    Parameters
    ----------
    est : BaseSparseEstimator
        A fitted `SparseAutoencoder`, `DictionaryLearning`,
        `MiniBatchDictionaryLearning`, `SparseCoder`, ...
    path : str or path-like
        Directory to create (an existing saved model there is replaced).

    Returns
    -------
    pathlib.Path
    """
    if not isinstance(est, BaseSparseEstimator):
        raise TypeError(f"save expects a sparsecode estimator, got {type(est)}.")
    est._check_fitted()
    params, tensors = _split(est.get_params(deep=False), "param")
    fitted, fitted_tensors = _split(_fitted_attributes(est), "fitted")
    tensors.update(fitted_tensors)
    extra: dict[str, Any] = {}
    if isinstance(est, SparseAutoencoder):
        module = est.module_
        tensors.update({f"module.{k}": v for k, v in module.state_dict().items()})
        extra = {"module": module.config(), "scale": est._scale,
                 "dtype": str(module.W_dec.dtype).replace("torch.", "")}
    if hasattr(est, "_resume_state"):  # what partial_fit needs to go on
        extra["resume"], resume_tensors = _split(est._resume_state(), "resume")
        tensors.update(resume_tensors)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "class": type(est).__name__, "params": params, "fitted": fitted,
              **extra, "tensors": {k: [list(v.shape), str(v.dtype)]
                                   for k, v in tensors.items()}}
    path = Path(path)

    def write(tmp: Path) -> None:
        write_tensors(tmp / MODEL_FILE, tensors, metadata={"format": FORMAT})
        write_json(tmp / CONFIG_FILE, config)

    _atomic_dir(path, write)
    return path


def _estimator_class(name: str) -> type:
    import sparsecode

    cls = getattr(sparsecode, name, None) if name in sparsecode.__all__ else None
    if not (isinstance(cls, type) and issubclass(cls, BaseSparseEstimator)):
        raise ValueError(f"config.json names {name!r}, not a sparsecode estimator.")
    return cls


def _read(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    with open(path / CONFIG_FILE, encoding="utf-8") as f:
        config = json.load(f)
    if config.get("format") != FORMAT or config.get("format_version") != 1:
        raise ValueError(f"{path} is not a sparsecode model (format {FORMAT} v1).")
    tensors = load_file(str(path / MODEL_FILE), device="cpu")
    expected = config.get("tensors", {})
    if set(tensors) != set(expected):
        raise ValueError(
            f"{path / MODEL_FILE} holds tensors {sorted(set(tensors) ^ set(expected))} "
            "that do not match config.json."
        )
    for key, (shape, _) in expected.items():
        if list(tensors[key].shape) != list(shape):
            raise ValueError(f"tensor {key!r} has shape {list(tensors[key].shape)}, "
                             f"config.json says {shape}.")
    return config, tensors


def load(path: str | os.PathLike, device: str | None = None) -> BaseSparseEstimator:
    """Load an estimator written by `save`.

    Parameters
    ----------
    path : str or path-like
        The saved directory.
    device : str, default=None
        Where to put the model's tensors: the CPU when None (so models trained
        on CUDA load anywhere); ``"auto"`` picks CUDA when available.

    Returns
    -------
    BaseSparseEstimator
        Fitted. A `MiniBatchDictionaryLearning` keeps its online statistics
        and random state, so ``partial_fit`` goes on exactly as it would have
        without the round trip; `SparseAutoencoder` optimizer state is not
        saved (use ``checkpoint_dir`` to resume training), so a later
        ``partial_fit`` starts Adam afresh.
    """
    path = Path(path)
    config, tensors = _read(path)
    cls = _estimator_class(config["class"])
    est = cls(**_unsplit(config["params"], tensors))
    dev = resolve_device("cpu" if device is None else device)
    fitted = _unsplit(config["fitted"], tensors)
    if isinstance(est, SparseAutoencoder):
        _restore_sae(est, config, tensors, dev)
    for name, value in fitted.items():
        setattr(est, name, value)
    est._device = dev
    if "resume" in config and hasattr(est, "_restore_resume_state"):
        est._restore_resume_state(_unsplit(config["resume"], tensors), dev)
    return est


def _restore_sae(est: SparseAutoencoder, config: dict, tensors: dict,
                 device: torch.device) -> None:
    dtype = getattr(torch, config.get("dtype", "float32"))
    module = SparseAutoencoderModule.from_config(config["module"], dtype=dtype,
                                                 device=device)
    state = {k[7:]: v for k, v in tensors.items() if k.startswith("module.")}
    _load_state(module, state)
    fitted = config["fitted"]
    est._adopt(module, scale=float(config.get("scale", 1.0)),
               n_iter=fitted.get("n_iter_", 0), n_steps=fitted.get("n_steps_", 0),
               history=fitted.get("history_", []))


def _load_state(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """``load_state_dict`` after checking names and shapes (clear errors)."""
    own = module.state_dict()
    if set(own) != set(state):
        raise ValueError(f"weights do not match the model: missing "
                         f"{sorted(set(own) - set(state))}, unexpected "
                         f"{sorted(set(state) - set(own))}.")
    for key, val in own.items():
        if tuple(state[key].shape) != tuple(val.shape):
            raise ValueError(f"weight {key!r} has shape {tuple(state[key].shape)}, "
                             f"expected {tuple(val.shape)}.")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


# ------------------------------------------------------------ external SAEs
def _float(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.float64 else t.to(torch.float32)


def _external(kind: str, d: int, m: int, act: str, act_kw: dict, weights: dict,
              device: str | None) -> SparseAutoencoder:
    dtype = weights["W_enc"].dtype
    module = SparseAutoencoderModule(d, m, act, act_kw, dtype=dtype)
    _load_state(module, {k: v.to(dtype) for k, v in weights.items()})
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
    with open(path / "cfg.json", encoding="utf-8") as f:
        cfg = json.load(f)
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
    need = {"standard": ("b_enc",), "topk": ("b_enc",), "batchtopk": ("b_enc",),
            "jumprelu": ("b_enc", "threshold"),
            "gated": ("b_gate", "r_mag", "b_mag")}
    if arch not in need:
        raise ValueError(f"SAELens architecture {arch!r} is not supported.")
    _need(w, ("W_enc", "W_dec", "b_dec", *need[arch]), path, shapes)
    W_enc = w["W_enc"].T.contiguous()
    shift = w["b_dec"] @ w["W_enc"] if cfg.get("apply_b_dec_to_input") is False else 0
    out = {"b_pre": w["b_dec"], "W_enc": W_enc, "W_dec": w["W_dec"]}
    if arch == "gated":
        out["b_enc"] = torch.zeros(m, dtype=W_enc.dtype)
        out["activation.b_gate"] = w["b_gate"] + shift
        out["activation.r_mag"] = w["r_mag"]
        out["activation.b_mag"] = w["b_mag"] + shift * w["r_mag"].exp()
        return _external("saelens", d, m, "gated", {}, out, device)
    out["b_enc"] = w["b_enc"] + shift
    if arch == "jumprelu" or (arch == "batchtopk" and "threshold" in w):
        tiny = torch.finfo(w["threshold"].dtype).tiny
        out["activation.log_threshold"] = w["threshold"].clamp_min(tiny).log()
        return _external("saelens", d, m, "jumprelu", {}, out, device)
    if arch in ("topk", "batchtopk"):
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
    if cfg.get("activation", "topk") != "topk":
        raise ValueError(f"sparsify activation {cfg['activation']!r} is not supported.")
    d = int(cfg["d_in"])
    m = int(cfg.get("num_latents") or d * int(cfg.get("expansion_factor", 32)))
    shapes = {"encoder.weight": (m, d), "encoder.bias": (m,), "W_dec": (m, d),
              "b_dec": (d,)}
    _need(w, tuple(shapes), path, shapes)
    out = {"b_pre": w["b_dec"], "W_enc": w["encoder.weight"],
           "b_enc": w["encoder.bias"], "W_dec": w["W_dec"]}
    return _external("sparsify", d, m, "topk", {"k": int(cfg.get("k", 32))}, out,
                     device)
