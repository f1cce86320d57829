"""SAELens 6's transcoders as sparsecode `Transcoder` models, both ways.

SAELens's transcoder classes (``sae_lens/saes/transcoder.py``) encode the raw
input, ``codes = act(x @ W_enc + b_enc)`` (their config refuses
``apply_b_dec_to_input``: ``b_dec`` is the output bias), and decode to another
width, ``y_hat = codes @ W_dec + b_dec`` with ``W_dec`` (d_sae, d_out) and
``b_dec`` (d_out,); the skip variants add ``x @ W_skip.T`` with ``W_skip``
(d_out, d_in), of the raw input. That is sparsecode's transcoder module with
``b_dec`` as its output bias ``b_pre`` and ``W_enc`` transposed. SAELens's
``normalize_activations`` rescales a transcoder's input only (not its output,
nor the skip term's input), which sparsecode's ``input_norm`` does not
express: only ``"none"`` is read and written. Used by `load_saelens` and
`save_saelens`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...nn import SparseAutoencoderModule
from ._common import cfg_bool, cfg_int, need

__all__ = ["TRANSCODERS", "read_transcoder", "transcoder_layout"]

#: SAELens transcoder architecture -> (sparsecode activation, skip connection)
TRANSCODERS = {"transcoder": ("relu", False), "skip_transcoder": ("relu", True),
               "jumprelu_transcoder": ("jumprelu", False),
               "jumprelu_skip_transcoder": ("jumprelu", True)}
#: the SAELens SAE architecture the writer picks for an activation -> the
#: transcoder architecture with the same encoder (without, with a skip term)
_BY_SAE = {"standard": ("transcoder", "skip_transcoder"),
           "jumprelu": ("jumprelu_transcoder", "jumprelu_skip_transcoder")}
#: TranscoderConfig's default output width (used when cfg.json has no d_out)
_D_OUT = 768


def read_transcoder(cfg: dict, w: dict[str, torch.Tensor], file: Path,
                    wfile: Path, arch: str, d: int, m: int
                    ) -> tuple[dict[str, torch.Tensor], int, bool]:
    """The module weights, output width and skip flag of a transcoder file.

    Parameters
    ----------
    cfg : dict
        ``cfg.json``.
    w : dict of str to torch.Tensor
        The file's weights (SAELens names).
    file, wfile : pathlib.Path
        ``cfg.json`` and the weights file (named in errors).
    arch : str
        A key of `TRANSCODERS`.
    d, m : int
        ``d_in`` and ``d_sae``.

    Returns
    -------
    weights : dict of str to torch.Tensor
        ``W_enc``, ``b_enc``, ``W_dec``, ``b_pre`` (and ``W_skip``) in the
        module's layout; the activation's own weights are the caller's.
    d_out : int
        ``cfg["d_out"]`` (768 when absent, SAELens's default).
    skip : bool
        Whether the architecture has ``W_skip``.

    Raises
    ------
    ValueError
        ``apply_b_dec_to_input=true`` or any ``normalize_activations`` but
        ``"none"`` (naming ``file``), or missing, extra or misshapen weights
        (naming ``wfile``).

    Examples
    --------
    >>> w = {"W_enc": torch.zeros(4, 8), "b_enc": torch.zeros(8),
    ...      "W_dec": torch.zeros(8, 3), "b_dec": torch.zeros(3)}
    >>> out, d_out, skip = read_transcoder({"d_out": 3}, w, Path("cfg.json"),
    ...                                    Path("w.safetensors"), "transcoder", 4, 8)
    >>> tuple(out["W_enc"].shape), sorted(out), d_out, skip
    ((8, 4), ['W_dec', 'W_enc', 'b_enc', 'b_pre'], 3, False)
    """
    act, skip = TRANSCODERS[arch]
    if cfg_bool(cfg, "apply_b_dec_to_input", file, False):
        raise ValueError(f"{file}: apply_b_dec_to_input=true is not supported with "
                         f"architecture {arch!r}: a transcoder's b_dec is its "
                         "output bias (SAELens refuses this config too).")
    norm = cfg.get("normalize_activations")
    if norm not in (None, False, "none"):
        raise ValueError(
            f"{file}: normalize_activations={norm!r} is not supported with "
            f"architecture {arch!r}: SAELens normalises a transcoder's input but "
            "not its output (nor the skip term's input), which sparsecode's "
            "input_norm does not express.")
    d_out = cfg_int(cfg, "d_out", file, _D_OUT)
    names = ("W_enc", "b_enc", "W_dec", "b_dec", *(("threshold",) if act ==
             "jumprelu" else ()), *(("W_skip",) if skip else ()))
    shapes = {"W_enc": (d, m), "b_enc": (m,), "W_dec": (m, d_out),
              "b_dec": (d_out,), "threshold": (m,), "W_skip": (d_out, d)}
    need(w, names, wfile, shapes, ())
    out = {"W_enc": w["W_enc"].T.contiguous(), "b_enc": w["b_enc"],
           "W_dec": w["W_dec"], "b_pre": w["b_dec"]}
    if skip:
        out["W_skip"] = w["W_skip"]
    return out, d_out, skip


def transcoder_layout(module: SparseAutoencoderModule, sae_arch: str
                      ) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """How a transcoder module is written for SAELens.

    Parameters
    ----------
    module : SparseAutoencoderModule
        A transcoder's module (``module.transcoder``).
    sae_arch : str
        The SAELens SAE architecture that reproduces its activation
        (``"standard"`` for ReLU, ``"jumprelu"`` for JumpReLU and the
        thresholded BatchTopK / Matryoshka).

    Returns
    -------
    architecture : str
        ``transcoder``, ``skip_transcoder``, ``jumprelu_transcoder`` or
        ``jumprelu_skip_transcoder``.
    cfg : dict
        The transcoder's ``cfg.json`` fields (``d_out``,
        ``apply_b_dec_to_input``, ``normalize_activations``).
    weights : dict of str to torch.Tensor
        ``W_skip`` when the module has one (else empty).

    Raises
    ------
    ValueError
        The activation has no SAELens transcoder (TopK, Gated), or the module
        normalises its input.

    Examples
    --------
    >>> tc = SparseAutoencoderModule(4, 8, "relu", n_outputs=3, skip_connection=True)
    >>> arch, cfg, weights = transcoder_layout(tc, "standard")
    >>> arch, cfg["d_out"], sorted(weights)
    ('skip_transcoder', 3, ['W_skip'])
    """
    names = _BY_SAE.get(sae_arch)
    if names is None:
        raise ValueError(
            f"activation {module.activation.name!r} has no SAELens transcoder "
            f"architecture (SAELens's transcoders are {sorted(TRANSCODERS)}: ReLU "
            "and JumpReLU codes); save_sparsify writes TopK transcoders whose "
            "outputs are as wide as their inputs.")
    if module.input_norm != "none":
        raise ValueError(f"a transcoder with input_norm={module.input_norm!r} "
                         "cannot be written: SAELens normalises a transcoder's "
                         "input but not its output.")
    skip = module.W_skip is not None
    cfg = {"d_out": module.n_outputs, "apply_b_dec_to_input": False,
           "normalize_activations": "none"}
    return names[skip], cfg, ({"W_skip": module.W_skip} if skip else {})
