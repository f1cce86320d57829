"""Consistency checks of a saved model's ``config.json`` against its tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .nn import ACTIVATIONS

__all__ = ["check_agreement"]


def _disagree(file: Path, what: str, said: Any, other: str, value: Any,
              strict: bool = True) -> None:
    """Raise unless ``said == value`` (and of the same type when ``strict``)."""
    if (said != value or isinstance(said, bool) != isinstance(value, bool)
            or (strict and type(said) is not type(value))):
        raise ValueError(f"{file}: {what} is {said!r}, but {other} is {value!r}; "
                         "the saved model is inconsistent.")


def _ref_shape(value: Any, tensors: dict[str, torch.Tensor]) -> tuple | None:
    if isinstance(value, dict) and set(value) == {"__tensor__"} and isinstance(
            value["__tensor__"], str) and value["__tensor__"] in tensors:
        return tuple(tensors[value["__tensor__"]].shape)
    return None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


#: saved arrays whose shape follows from (m, d) = (n_components, n_features)
_SHAPES = {"params": {"dict_init": ("m", "d"), "code_init": (None, "m"),
                      "dictionary": ("m", "d")},
           "fitted": {"encoder_": ("m", "d"), "encoder_bias_": ("m",),
                      "decoder_bias_": ("d",), "codes_": (None, "m"),
                      "embedding_": (None, "m")},
           "resume": {"A": ("m", "m"), "B": ("d", "m")}}


def check_agreement(config: dict, tensors: dict[str, torch.Tensor], file: Path
                     ) -> None:
    """Raise ``ValueError`` naming ``file`` where ``params``, ``fitted``,
    ``module`` and the tensors of a saved model disagree."""
    params, fitted = config["params"], config["fitted"]
    transcoder = config["class"] == "Transcoder"
    comp = _ref_shape(fitted.get("components_"), tensors)
    if config["class"] == "SparseCoder":
        comp = _ref_shape(params.get("dictionary"), tensors)
    d = fitted.get("n_features_in_")
    if comp is None or len(comp) != 2:
        what = "'dictionary'" if config["class"] == "SparseCoder" else "'components_'"
        raise ValueError(f"{file}: {what} must refer to a saved 2-D tensor"
                         + (f", not one of shape {list(comp)}." if comp else "."))
    m = comp[0]
    if config["class"] in ("SparseAutoencoder", "Transcoder"):
        _check_module(config, tensors, file, comp)
    if config["class"] == "ConvSparseAutoencoder":  # atoms are kernels
        shape = fitted.get("image_shape_")
        c = shape[-1] if isinstance(shape, list) and shape else None
        k = _int_or_none(params.get("kernel_size"))
        _disagree(file, "the components' width", comp[1], "kernel_size**2 * channels",
                  None if k is None or _int_or_none(c) is None else k * k * c)
    elif transcoder:
        _disagree(file, "fitted n_outputs_", fitted.get("n_outputs_"),
                  "the components' width", comp[1])
    elif not (d is None and config["class"] == "SparseCoder"):  # unfitted coder
        _disagree(file, "fitted n_features_in_", d, "the components' width", comp[1])
    sizes = {"m": m, "d": _int_or_none(d)}
    for name, source in (("n_components", params), ("n_components_", fitted)):
        if source.get(name) is not None:
            _disagree(file, name, source[name], "the saved components' rows", m)
    for part, shapes in _SHAPES.items():
        for name, dims in shapes.items():
            shape = _ref_shape(config.get(part, {}).get(name), tensors)
            want = tuple(shape[i] if n is None or sizes[n] is None else sizes[n]
                         for i, n in enumerate(dims)) if shape else None
            if shape is not None and (len(shape) != len(dims) or shape != want):
                raise ValueError(f"{file}: {part} {name!r} has shape {list(shape)}, "
                                 f"but (n_components, n_features) = ({m}, {d}).")


def _check_module(config: dict, tensors: dict[str, torch.Tensor], file: Path,
                  comp: tuple) -> None:
    """The SAE part of `_check_agreement`: params and fitted vs ``module``."""
    params, fitted, module = config["params"], config["fitted"], config["module"]
    _disagree(file, "params activation", params.get("activation"),
              "module activation", module.get("activation"))
    if params.get("n_components") is not None:
        _disagree(file, "params n_components", params["n_components"],
                  "module n_components", module.get("n_components"))
    _disagree(file, "fitted n_features_in_", fitted.get("n_features_in_"),
              "module n_features", module.get("n_features"))
    kwargs = module.get("activation_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"{file}: module 'activation_kwargs' must be a JSON object.")
    name = module.get("activation")
    act = ACTIVATIONS.get(name) if isinstance(name, str) else None
    if act is not None and act.takes_k and params.get("k") is not None:
        _disagree(file, "params k", params["k"], "module k", kwargs.get("k"))
    extra = params.get("activation_params") or {}
    if isinstance(extra, dict):
        for key in set(extra) & set(kwargs) - {"k"}:
            _disagree(file, f"params activation_params[{key!r}]", extra[key],
                      f"module activation_kwargs[{key!r}]", kwargs[key], strict=False)
    if config["class"] == "Transcoder":
        _disagree(file, "params skip_connection", params.get("skip_connection"),
                  "module skip_connection", module.get("skip_connection"))
        _disagree(file, "fitted n_outputs_", fitted.get("n_outputs_"),
                  "module n_outputs", module.get("n_outputs"))
    elif module.get("n_outputs") is not None:
        raise ValueError(f"{file}: the module is a transcoder's (n_outputs="
                         f"{module['n_outputs']!r}), the class SparseAutoencoder.")
    if "module.W_dec" in tensors:
        w_dec = tensors["module.W_dec"]
        _disagree(file, "'dtype'", config.get("dtype", "float32"),
                  "the dtype of module.W_dec", str(w_dec.dtype).removeprefix("torch."))
        _disagree(file, "the shape of components_", list(comp),
                  "the shape of module.W_dec", list(w_dec.shape))
