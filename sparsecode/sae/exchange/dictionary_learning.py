"""Reading SAEs trained by saprmarks/dictionary_learning (``ae.pt`` + ``config.json``).

Its ``training.py`` saves each dictionary as a folder with ``ae.pt`` (the
module's state dict, written by ``torch.save``) and ``config.json``
(``{"trainer": trainer.config, "buffer": buffer.config}``). ``ae.pt`` is read
with ``torch.load(..., weights_only=True)`` alone: nothing else is unpickled.
Each supported dictionary class maps onto a sparsecode variant whose codes
and reconstructions equal the class's ``encode`` and ``decode``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from ..._utils import check_weights, read_json_object
from ..estimator import SparseAutoencoder
from ._common import adopt, exact_log, need

__all__ = ["load_dictionary_learning"]

#: for each supported ``dict_class``, its state dict: name -> shape, written
#: with "d" (activation_dim), "m" (dict_size); "" is a scalar, None any 1-D
_LAYOUTS: dict[str, dict[str, str | None]] = {
    "AutoEncoder": {"encoder.weight": "md", "encoder.bias": "m",
                    "decoder.weight": "dm", "bias": "d"},
    "AutoEncoderNew": {"encoder.weight": "md", "encoder.bias": "m",
                       "decoder.weight": "dm", "decoder.bias": "d"},
    "GatedAutoEncoder": {"decoder_bias": "d", "encoder.weight": "md", "r_mag": "m",
                         "gate_bias": "m", "mag_bias": "m", "decoder.weight": "dm"},
    "JumpReluAutoEncoder": {"W_enc": "dm", "b_enc": "m", "W_dec": "md",
                            "b_dec": "d", "threshold": "m"},
    "AutoEncoderTopK": {"k": "", "threshold": "", "decoder.weight": "dm",
                        "encoder.weight": "md", "encoder.bias": "m", "b_dec": "d"},
    "BatchTopKSAE": {"k": "", "threshold": "", "decoder.weight": "dm",
                     "encoder.weight": "md", "encoder.bias": "m", "b_dec": "d"},
    "MatryoshkaBatchTopKSAE": {"k": "", "threshold": "", "group_sizes": None,
                               "W_enc": "dm", "b_enc": "m", "W_dec": "md",
                               "b_dec": "d"},
}
#: the buffers that hold integers (every other entry must be floating)
_INTEGER = ("k", "group_sizes")
_SUPPORTED = tuple(_LAYOUTS)


def _read_state(file: Path) -> dict[str, torch.Tensor]:
    """``ae.pt`` as a dict of CPU tensors; only tensors are ever unpickled."""
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a torch file, refused pickle, ...
        first = (str(err).strip().splitlines() or [""])[0][:300]
        raise ValueError(
            f"{file} is not a readable torch state dict (truncated, another "
            "format, or a pickle of objects other than tensors, which is not "
            f"loaded): {type(err).__name__}: {first}") from None
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor)
            for k, v in state.items()):
        raise ValueError(f"{file} must hold a state dict (names -> tensors), not "
                         f"a {type(state).__name__} of other values.")
    return state


def _positive_int(table: dict, key: str, file: Path, *, required: bool = True
                  ) -> int | None:
    if key not in table:
        if required:
            raise ValueError(f'{file}: "trainer" lacks the key "{key}".')
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{file}: trainer "{key}" must be a positive int, got '
                         f"{value!r}.")
    return value


def _read_config(file: Path) -> tuple[dict, dict, str, int, int]:
    """(config, its "trainer" object, dict_class, activation_dim, dict_size)."""
    cfg = read_json_object(file)
    trainer = cfg.get("trainer")
    if not isinstance(trainer, dict):
        raise ValueError(f'{file} has no "trainer" object (the trainer config that '
                         "dictionary_learning's training.py writes).")
    if "dict_class" not in trainer:
        raise ValueError(f'{file}: "trainer" lacks the key "dict_class".')
    name = trainer["dict_class"]
    if not isinstance(name, str):
        raise ValueError(f'{file}: trainer "dict_class" must be a str, got '
                         f"{name!r}.")
    if name not in _LAYOUTS:
        raise ValueError(f"{file}: dict_class {name!r} is not supported; supported: "
                         f"{', '.join(_SUPPORTED)}.")
    d = _positive_int(trainer, "activation_dim", file)
    m = _positive_int(trainer, "dict_size", file)
    return cfg, trainer, name, d, m


def _shape(spec: str, d: int, m: int) -> tuple[int, ...]:
    return tuple(d if c == "d" else m for c in spec)


def _check_state(state: dict, name: str, file: Path, d: int, m: int) -> None:
    """Names, shapes and dtypes of ``state`` against ``name``'s layout."""
    layout = _LAYOUTS[name]
    shapes = {n: _shape(s, d, m) for n, s in layout.items() if s is not None}
    need(state, tuple(layout), file, shapes, optional=())
    for n in layout:
        t = state[n]
        if n in _INTEGER and (t.is_floating_point() or t.is_complex()
                              or t.dtype == torch.bool):
            raise ValueError(f"{file}: buffer {n!r} has dtype "
                             f"{str(t.dtype).replace('torch.', '')}, expected an "
                             "integer dtype.")
    check_weights(state, file, [n for n in layout if n not in _INTEGER])


def _k(state: dict, trainer: dict, file: Path, m: int) -> int:
    k = int(state["k"])
    if not 1 <= k <= m:
        raise ValueError(f"{file}: k={k} must be in [1, dict_size={m}].")
    cfg_k = _positive_int(trainer, "k", file.parent / "config.json", required=False)
    if cfg_k is not None and cfg_k != k:
        raise ValueError(f"{file} has k={k} but config.json says k={cfg_k}.")
    return k


def _prefixes(state: dict, trainer: dict, file: Path, m: int) -> list[int]:
    sizes = [int(s) for s in state["group_sizes"].reshape(-1).tolist()]
    if state["group_sizes"].dim() != 1 or not sizes or min(sizes) < 1 \
            or sum(sizes) != m:
        raise ValueError(f"{file}: group_sizes {sizes} must be positive sizes "
                         f"summing to dict_size={m}.")
    cfg_sizes = trainer.get("group_sizes")
    if cfg_sizes is not None and cfg_sizes != sizes:
        raise ValueError(f"{file} has group_sizes {sizes} but config.json says "
                         f"{cfg_sizes!r}.")
    return [sum(sizes[:i + 1]) for i in range(len(sizes))]


def _fold(b_enc: torch.Tensor, W_MD: torch.Tensor, b_pre: torch.Tensor
          ) -> torch.Tensor:
    """``b_enc + W b_pre`` (in float64): the encoder bias once the module
    subtracts ``b_pre`` from inputs that the source encodes as they are."""
    return (b_enc.double() + W_MD.double() @ b_pre.double()).to(b_enc.dtype)


def _batchtopk_threshold(thr: torch.Tensor) -> dict[str, torch.Tensor]:
    """The running-threshold buffers that make `BatchTopK` keep ``pre > thr``.

    dictionary_learning keeps ``relu(pre) > thr``: ``pre > thr`` for
    ``thr >= 0``, and ``pre > 0`` for the ``-1`` of a threshold never set
    (``0 / 0`` here, as before any training step).
    """
    set_ = bool(thr >= 0)
    return {"activation.threshold_num": thr.reshape(()) if set_ else thr.new_zeros(()),
            "activation.threshold_den": thr.new_ones(()) if set_ else thr.new_zeros(())}


def _convert(name: str, w: dict, state: dict, trainer: dict, file: Path, m: int
             ) -> tuple[str, dict, dict]:
    """(activation, its kwargs, sparsecode weights) of a checked state dict."""
    if name in ("AutoEncoder", "AutoEncoderNew"):
        W, b_pre = w["encoder.weight"], w.get("bias", w.get("decoder.bias"))
        b_enc = w["encoder.bias"] if name == "AutoEncoder" else _fold(
            w["encoder.bias"], W, b_pre)
        return "relu", {}, {"b_pre": b_pre, "W_enc": W, "b_enc": b_enc,
                            "W_dec": w["decoder.weight"].T}
    if name == "GatedAutoEncoder":
        W = w["encoder.weight"]
        return "gated", {}, {
            "b_pre": w["decoder_bias"], "W_enc": W, "b_enc": W.new_zeros(m),
            "W_dec": w["decoder.weight"].T, "activation.b_gate": w["gate_bias"],
            "activation.r_mag": w["r_mag"], "activation.b_mag": w["mag_bias"]}
    if name == "JumpReluAutoEncoder":
        # (apply_b_dec_to_input is not saved; trainers leave it False)
        W = w["W_enc"].T
        log_thr = exact_log(w["threshold"], W.dtype)  # (<= 0: the smallest normal)
        return "jumprelu", {}, {"b_pre": w["b_dec"], "W_enc": W,
                                "b_enc": _fold(w["b_enc"], W, w["b_dec"]),
                                "W_dec": w["W_dec"],
                                "activation.log_threshold": log_thr}
    k = _k(state, trainer, file, m)
    if name == "MatryoshkaBatchTopKSAE":
        out = {"b_pre": w["b_dec"], "W_enc": w["W_enc"].T, "b_enc": w["b_enc"],
               "W_dec": w["W_dec"], **_batchtopk_threshold(w["threshold"])}
        return "matryoshka", {"k": k, "prefixes": _prefixes(state, trainer, file, m)
                              }, out
    out = {"b_pre": w["b_dec"], "W_enc": w["encoder.weight"],
           "b_enc": w["encoder.bias"], "W_dec": w["decoder.weight"].T}
    if name == "AutoEncoderTopK":  # (its threshold serves use_threshold=True only)
        return "topk", {"k": k}, out
    return "batchtopk", {"k": k}, {**out, **_batchtopk_threshold(w["threshold"])}


def load_dictionary_learning(path: str | os.PathLike, device: str | None = None
                             ) -> SparseAutoencoder:
    """Read a dictionary saved by dictionary_learning (``ae.pt`` + ``config.json``).

    ``config.json``'s ``"trainer"`` object names the ``dict_class`` and gives
    ``activation_dim`` and ``dict_size`` (and ``k``, checked against the
    state dict's). Supported classes and the variants they load as:
    ``AutoEncoder`` and ``AutoEncoderNew`` -> ``"relu"``,
    ``GatedAutoEncoder`` -> ``"gated"``, ``JumpReluAutoEncoder`` ->
    ``"jumprelu"``, ``AutoEncoderTopK`` -> ``"topk"``, ``BatchTopKSAE`` ->
    ``"batchtopk"`` with its inference threshold, and
    ``MatryoshkaBatchTopKSAE`` -> ``"matryoshka"`` (prefixes from its
    ``group_sizes``). Codes and reconstructions are those of the class's
    default ``encode`` and ``decode`` for the saved weights, to float32
    rounding. (``AutoEncoder.from_pretrained`` also rescales decoder columns
    to unit norm by default, which multiplies its codes by those norms;
    reconstructions are the same.) Trainers write ``dict_class="AutoEncoder"``
    whatever class they trained: a state dict with ``decoder.bias`` and no
    ``bias`` is read as an ``AutoEncoderNew``. Weights are read as float32
    (float64 ones stay float64).

    Parameters
    ----------
    path : str or path-like
        The dictionary's folder (e.g. ``save_dir/trainer_0``).
    device : str, default=None
        The CPU when None.

    Returns
    -------
    SparseAutoencoder
        Fitted, with ``source_format_ == "dictionary_learning"`` and
        ``metadata_`` a copy of ``config.json`` (e.g.
        ``metadata_["trainer"]["lm_name"]``, ``["layer"]``, ``["buffer"]``).

    Raises
    ------
    FileNotFoundError
        When ``ae.pt`` or ``config.json`` is missing.
    ValueError
        Naming the file and the problem, for any malformed file: not JSON,
        missing or mistyped keys, an unsupported ``dict_class``, an
        unreadable or refused ``ae.pt``, missing, unexpected or misshapen
        weights, and integer, NaN or infinite weights.

    Examples
    --------
    >>> from sparsecode.sae.exchange import load_dictionary_learning
    >>> est = load_dictionary_learning("saes/trainer_0")  # doctest: +SKIP
    >>> codes = est.transform(X)  # doctest: +SKIP
    >>> est.metadata_["trainer"]["layer"]  # doctest: +SKIP
    3
    """
    path = Path(path)
    cfg_file, ae_file = path / "config.json", path / "ae.pt"
    for file in (cfg_file, ae_file):
        if not file.is_file():
            raise FileNotFoundError(f"{file} not found.")
    cfg, trainer, name, d, m = _read_config(cfg_file)
    state = _read_state(ae_file)
    if name == "AutoEncoder" and "decoder.bias" in state and "bias" not in state:
        name = "AutoEncoderNew"
    _check_state(state, name, ae_file, d, m)
    w = {n: t if t.dtype == torch.float64 else t.to(torch.float32)
         for n, t in state.items() if n not in _INTEGER}
    act, act_kw, weights = _convert(name, w, state, trainer, ae_file, m)
    return adopt("dictionary_learning", d, m, act, act_kw, weights, device,
                 metadata=copy.deepcopy(cfg))
