"""Save and load estimators (safetensors + JSON), and read external SAEs.

`save` writes a directory with ``model.safetensors`` (every tensor) and ``config.json``
(class, `get_params`, fitted metadata, name, shape and dtype of every tensor), under a
temporary name renamed into place. `load` checks the format, the class (sparsecode
estimators only), the tensors, and that ``config.json``'s parameters, fitted attributes
and module agree with each other and with the tensors; it never unpickles anything.

`load_saelens`, `load_sparsify` and `load_dictionary_learning` (from
`sparsecode.sae.exchange`) read SAEs and transcoders trained by SAELens, EleutherAI's
sparsify and dictionary_learning as fitted `SparseAutoencoder` / `Transcoder` (their
metadata -- hook name, model name, ... -- as ``metadata_``, which `save` keeps);
`save_saelens` and `save_sparsify` write them in the first two libraries' own formats,
for ``sae_lens.SAE.load_from_disk`` and ``sparsify.SparseCoder.load_from_disk``. Every
malformed file raises a ``ValueError`` naming the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._io_checks import check_agreement
from ._utils import (
    atomic_dir,
    read_json_object,
    read_tensors,
    write_json,
    write_tensors,
)
from .base import BaseSparseEstimator, resolve_device
from .dictionary import DictionaryLearning, MiniBatchDictionaryLearning, SparseCoder
from .nn import SparseAutoencoderModule
from .sae import (
    ConvSparseAutoencoder,
    SparseAutoencoder,
    Transcoder,
    UnmixingAutoencoder,
)
from .sae.exchange import (
    load_dictionary_learning,
    load_saelens,
    load_sparsify,
    save_saelens,
    save_sparsify,
)
from .words import SPINE, SparseOvercompleteVectors

__all__ = ["load", "load_dictionary_learning", "load_saelens", "load_sparsify",
           "save", "save_saelens", "save_sparsify"]

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
            if value["__tensor__"] not in tensors:
                raise ValueError(f"{name!r} refers to a tensor {value['__tensor__']!r}"
                                 " that is not saved.")
            value = tensors[value["__tensor__"]].numpy()
        out[name] = value
    return out


def _fitted_attributes(est: BaseSparseEstimator) -> dict[str, Any]:
    return {k: v for k, v in vars(est).items()
            if k.endswith("_") and not k.startswith("_")}


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

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from sparsecode import SparseCoder, load, save
    >>> coder = SparseCoder(np.eye(2), device="cpu").fit(np.ones((1, 2)))
    >>> path = save(coder, tempfile.mkdtemp() + "/coder")
    >>> sorted(p.name for p in path.iterdir()), load(path).n_components_
    (['config.json', 'model.safetensors'], 2)
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

    atomic_dir(path, write, marker=CONFIG_FILE)
    return path


_ESTIMATORS = {cls.__name__: cls for cls in (
    DictionaryLearning, MiniBatchDictionaryLearning, SparseCoder, SparseAutoencoder,
    Transcoder, SparseOvercompleteVectors, SPINE, ConvSparseAutoencoder,
    UnmixingAutoencoder)}


def _estimator_class(name: str) -> type:
    if not isinstance(name, str) or name not in _ESTIMATORS:
        raise ValueError(f"config.json names {name!r}, not a sparsecode estimator.")
    return _ESTIMATORS[name]


def _check_config(config: dict, file: Path) -> None:
    """Raise ``ValueError`` naming ``file`` for a missing or mistyped entry."""
    kinds = {"class": str, "params": dict, "fitted": dict, "tensors": dict}
    if config.get("class") in ("SparseAutoencoder", "Transcoder"):
        kinds["module"] = dict
    for key, kind in kinds.items():
        if key not in config:
            raise ValueError(f"{file} lacks the key {key!r}.")
        if not isinstance(config[key], kind):
            raise ValueError(f"{file}: {key!r} must be a JSON "
                             f"{'object' if kind is dict else 'string'}.")
    if "resume" in config and not isinstance(config["resume"], dict):
        raise ValueError(f"{file}: 'resume' must be a JSON object.")
    for key, spec in config["tensors"].items():
        if not (isinstance(spec, list) and len(spec) == 2 and isinstance(spec[0], list)
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                        for n in spec[0]) and isinstance(spec[1], str)):
            raise ValueError(f"{file}: tensor entry {key!r} must be [shape, dtype], "
                             f"got {spec!r}.")


def _read(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    file = path / CONFIG_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file} not found.")
    config = read_json_object(file)
    if config.get("format") != FORMAT or config.get("format_version") != 1:
        raise ValueError(f"{file} is not a sparsecode model config (format "
                         f"{FORMAT} v1).")
    _check_config(config, file)
    tensors = read_tensors(path / MODEL_FILE)
    expected = config["tensors"]
    if set(tensors) != set(expected):
        raise ValueError(
            f"{path / MODEL_FILE} holds tensors {sorted(set(tensors) ^ set(expected))} "
            "that do not match config.json."
        )
    for key, (shape, dtype) in expected.items():
        if list(tensors[key].shape) != list(shape):
            raise ValueError(f"{path / MODEL_FILE}: tensor {key!r} has shape "
                             f"{list(tensors[key].shape)}, config.json says {shape}.")
        if str(tensors[key].dtype) != dtype:
            raise ValueError(f"{path / MODEL_FILE}: tensor {key!r} has dtype "
                             f"{tensors[key].dtype}, config.json says {dtype}.")
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
    check_agreement(config, tensors, path / CONFIG_FILE)
    dev = resolve_device("cpu" if device is None else device)
    try:  # what config.json holds does not fit the class or its tensors
        est = cls(**_unsplit(config["params"], tensors))
        fitted = _unsplit(config["fitted"], tensors)
        if isinstance(est, SparseAutoencoder):
            _restore_sae(est, config, tensors, dev)
        resume = _unsplit(config.get("resume", {}), tensors)
        for name, value in fitted.items():
            setattr(est, name, value)
        est._device = dev
        if "resume" in config and hasattr(est, "_restore_resume_state"):
            est._restore_resume_state(resume, dev)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError,
            RuntimeError) as err:
        raise ValueError(f"{path / CONFIG_FILE} does not describe a loadable "
                         f"{config['class']}: {type(err).__name__}: {err}") from None
    return est


def _restore_sae(est: SparseAutoencoder, config: dict, tensors: dict,
                 device: torch.device) -> None:
    name = config.get("dtype", "float32")
    if name not in ("float32", "float64", "float16", "bfloat16"):
        raise ValueError(f"'dtype' must name a floating dtype, got {name!r}.")
    dtype = getattr(torch, name)
    scale = config.get("scale", 1.0)
    if (isinstance(scale, bool) or not isinstance(scale, (int, float))
            or not 0 < scale < float("inf")):
        raise ValueError(f"'scale' must be a finite number > 0, got {scale!r}.")
    module = SparseAutoencoderModule.from_config(config["module"], dtype=dtype,
                                                 device=device)
    state = {k[7:]: v for k, v in tensors.items() if k.startswith("module.")}
    module.load_weights_(state)
    fitted = config["fitted"]
    est._adopt(module, scale=float(scale),
               n_iter=fitted.get("n_iter_", 0), n_steps=fitted.get("n_steps_", 0),
               history=fitted.get("history_", []))
