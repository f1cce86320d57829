"""What the exchange modules share: checked reading and writing, adoption.

Readers go through `read_external` (``cfg.json`` + a safetensors file, every
problem a ``ValueError`` naming the file), the ``cfg_*`` checks of config
values, `need` (weight names and shapes) and `adopt` (a fitted
`SparseAutoencoder`, or a `Transcoder` when given ``n_outputs``, from module
weights). Writers take the fitted module from `fitted_module` and write a
folder atomically with `write_external`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from ..._utils import (
    atomic_dir,
    check_weights,
    read_json_object,
    read_tensors,
    write_json,
    write_tensors,
)
from ...base import resolve_device
from ...nn import SparseAutoencoderModule
from ..estimator import SparseAutoencoder
from ..transcoder import Transcoder

__all__ = ["adopt", "cfg_bool", "cfg_int", "cfg_number", "check_jsonable",
           "exact_log", "fitted_module", "need", "read_external", "saelens_v6",
           "write_external"]

_MISSING = object()


def _float(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.float64 else t.to(torch.float32)


def adopt(kind: str, d: int, m: int, act: str, act_kw: dict, weights: dict,
          device: str | None, *, input_norm: str = "none",
          metadata: dict | None = None, n_outputs: int | None = None,
          skip_connection: bool = False) -> SparseAutoencoder:
    """A fitted `SparseAutoencoder` holding ``weights`` (module state names).

    Parameters
    ----------
    kind : str
        The library the weights come from (``source_format_``).
    d, m : int
        Input width and number of latents.
    act : str
        The sparsecode activation.
    act_kw : dict
        The activation's arguments (``k`` included); the others become the
        estimator's ``activation_params``.
    weights : dict of str to torch.Tensor
        The module's state (``W_skip`` with ``skip_connection``).
    device : str or None
        Where to put the module (the CPU when None).
    input_norm : str, default="none"
        The module's ``input_norm``.
    metadata : dict, default=None
        JSON-able; becomes ``metadata_`` when given.
    n_outputs : int, default=None
        A transcoder's output width: the result is then a fitted `Transcoder`
        (``n_outputs_`` set, 2-D predictions).
    skip_connection : bool, default=False
        A transcoder's linear skip term (``weights["W_skip"]``).

    Returns
    -------
    SparseAutoencoder
        Fitted; a `Transcoder` when ``n_outputs`` is given.
    """
    dtype = weights["W_enc"].dtype
    module = SparseAutoencoderModule(d, m, act, act_kw, dtype=dtype,
                                     input_norm=input_norm, n_outputs=n_outputs,
                                     skip_connection=skip_connection)
    module.load_weights_({k: v.to(dtype) for k, v in weights.items()})
    module.to(resolve_device("cpu" if device is None else device))
    params = {k: v for k, v in act_kw.items() if k != "k"}
    common = {"n_components": m, "activation": act, "k": act_kw.get("k"),
              "normalize_input": False, "activation_params": params or None}
    est = (SparseAutoencoder(**common) if n_outputs is None else
           Transcoder(skip_connection=skip_connection, **common))
    est._adopt(module)
    if n_outputs is not None:
        est.n_outputs_ = int(n_outputs)
    est.source_format_ = kind
    if metadata is not None:
        est.metadata_ = metadata
    return est


def read_external(path: Path, weights_file: str) -> tuple[dict, dict]:
    """``cfg.json`` (a JSON object) and the float weights of ``weights_file``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming
    the file for anything unreadable, non-floating or non-finite. Weights
    other than float64 are returned as float32.
    """
    for name in ("cfg.json", weights_file):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name} not found.")
    cfg = read_json_object(path / "cfg.json")
    weights = read_tensors(path / weights_file)
    check_weights(weights, path / weights_file)
    return cfg, {k: _float(v) for k, v in weights.items()}


def need(weights: dict, names: tuple[str, ...], path: Path, shapes: dict,
         optional: tuple[str, ...] | None = None) -> None:
    """Raise ``ValueError`` naming ``path`` for missing or misshapen weights.

    With ``optional`` given, weights that are neither in ``names`` nor in
    ``optional`` are refused too (never silently dropped).
    """
    missing = [n for n in names if n not in weights]
    if missing:
        raise ValueError(f"{path} lacks the weights {missing}.")
    if optional is not None:
        extra = sorted(set(weights) - set(names) - set(optional))
        if extra:
            raise ValueError(f"{path} holds weights {extra} that this architecture "
                             "does not have; they are not supported.")
    for name, shape in shapes.items():
        if name in weights and tuple(weights[name].shape) != shape:
            raise ValueError(f"{path}: {name} has shape "
                             f"{tuple(weights[name].shape)}, expected {shape}.")


# ------------------------------------------------------------- config values
def _bad(file: Path, key: str, value: Any, what: str) -> ValueError:
    return ValueError(f"{file}: {key!r} must be {what}, got {value!r}.")


def cfg_int(cfg: dict, key: str, file: Path, default: Any = _MISSING, *,
            minimum: int = 1) -> int:
    """``cfg[key]`` as an int >= ``minimum`` (integral floats accepted)."""
    value = cfg.get(key, default)
    if value is _MISSING:
        raise ValueError(f"{file} lacks the key {key!r}.")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(file, key, value, f"an integer >= {minimum}")
    return value


def cfg_number(cfg: dict, key: str, file: Path, default: Any = _MISSING) -> float:
    """``cfg[key]`` as a positive finite float."""
    value = cfg.get(key, default)
    if value is _MISSING:
        raise ValueError(f"{file} lacks the key {key!r}.")
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value <= 0):
        raise _bad(file, key, value, "a positive number")
    return float(value)


def cfg_bool(cfg: dict, key: str, file: Path, default: bool) -> bool:
    """``cfg[key]`` as a bool (None or absent: ``default``)."""
    value = cfg.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _bad(file, key, value, "true or false")
    return value


def check_jsonable(value: Any, where: str) -> None:
    """Raise ``ValueError`` unless ``value`` is plain JSON (str keys)."""
    if isinstance(value, (str, int, bool, type(None))):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not a finite JSON number.")
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            check_jsonable(v, where)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: key {k!r} is not a str.")
            check_jsonable(v, f"{where}[{k!r}]")
        return
    raise ValueError(f"{where}: a {type(value).__name__} is not JSON-able.")


def saelens_v6(version: Any) -> bool:
    """Whether a ``sae_lens_version`` is 6 or later (SAELens reads older
    configs with its pre-6 conversion)."""
    head = str(version or "").split(".")[0]
    return head.isdigit() and int(head) >= 6


# ------------------------------------------------------------------ weights
def exact_log(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``log(t)`` in ``dtype``, moved by a few ulps so that ``exp`` of it
    (computed as `sparsecode.nn.JumpReLU` does) gives ``t`` back wherever a
    nearby value does; entries <= 0 become the log of the smallest normal."""
    t = t.to(dtype).clamp_min(torch.finfo(dtype).tiny)
    best = torch.log(t.double()).to(dtype)
    err = (best.exp() - t).abs()
    for toward in (math.inf, -math.inf):
        cand, limit = best, torch.full_like(best, toward)
        for _ in range(4):
            cand = torch.nextafter(cand, limit)
            e = (cand.exp() - t).abs()
            better = e < err
            best, err = torch.where(better, cand, best), torch.where(better, e, err)
    return best.contiguous()


def fitted_module(est: Any, library: str, *, transcoders: bool = False
                  ) -> SparseAutoencoderModule:
    """The fitted module of an autoencoder ``est`` (TypeError otherwise).

    A transcoder's module raises ``ValueError`` unless ``transcoders``.
    """
    if not isinstance(est, SparseAutoencoder):
        raise TypeError(f"{library} files hold sparse autoencoders; got "
                        f"{type(est).__name__}.")
    est._check_fitted()
    module = est.module_
    if getattr(module, "transcoder", False) and not transcoders:
        raise ValueError(f"{library}'s format here holds sparse autoencoders, "
                         "not transcoders.")
    return module


def write_external(path: str | os.PathLike, cfg: dict, weights_file: str,
                   weights: dict[str, torch.Tensor]) -> Path:
    """Write ``cfg.json`` and ``weights_file`` into the folder ``path`` at once.

    An existing folder is replaced only if it holds a ``cfg.json`` (or is
    empty), so that a folder of something else is never deleted.
    """
    check_jsonable(cfg, "cfg.json")
    path = Path(path)

    def write(tmp: Path) -> None:
        write_tensors(tmp / weights_file, weights)
        write_json(tmp / "cfg.json", cfg)

    atomic_dir(path, write, marker="cfg.json")
    return path
