"""What the readers of other libraries' SAE files share: checked reading, adoption."""

from __future__ import annotations

from pathlib import Path

import torch

from ..._utils import check_weights, read_json_object, read_tensors
from ...base import resolve_device
from ...nn import SparseAutoencoderModule
from ..estimator import SparseAutoencoder

__all__ = ["adopt", "need", "read_external"]


def _float(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.float64 else t.to(torch.float32)


def adopt(kind: str, d: int, m: int, act: str, act_kw: dict, weights: dict,
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


def read_external(path: Path, weights_file: str) -> tuple[dict, dict]:
    for name in ("cfg.json", weights_file):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name} not found.")
    cfg = read_json_object(path / "cfg.json")
    weights = read_tensors(path / weights_file)
    check_weights(weights, path / weights_file)
    return cfg, {k: _float(v) for k, v in weights.items()}


def need(weights: dict, names: tuple[str, ...], path: Path, shapes: dict) -> None:
    missing = [n for n in names if n not in weights]
    if missing:
        raise ValueError(f"{path} lacks the weights {missing}.")
    for name, shape in shapes.items():
        if name in weights and tuple(weights[name].shape) != shape:
            raise ValueError(f"{path}: {name} has shape "
                             f"{tuple(weights[name].shape)}, expected {shape}.")


