"""Faruqui, Tsvetkov, Yogatama, Dyer & Smith (2015), "Sparse overcomplete word
vector representations" — methods A (sparse) and B (binarised non-negative).

Dense GloVe-50d and MiniLM-L6 token vectors are turned into 10x overcomplete
sparse vectors with `SparseOvercompleteVectors` (20 epochs, default penalty)
and compared with the dense ones on word similarity (WS-353, SimLex-999), an
automatic word-intrusion score, sparsity and a downstream task (logistic
regression on mean word vectors of the 200 newsgroup posts bundled with
gensim). The vectors evaluated for the sparse rows are the codes learned in
``fit`` (the paper's output).

Vocabulary: the ``n`` most frequent GloVe words (for MiniLM: its whole-word
tokens ranked by GloVe frequency) plus every word of WS-353 and SimLex-999
that the vectors have, so similarity coverage is that of the full vectors.
The intrusion score uses the ``n`` most frequent words only.

The module's helpers (`load_vocabulary`, `evaluate`) are shared with
`sparsecode.papers.spine2018`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..data.text import load_newsgroups_texts
from ..data.words import (
    WordVectors,
    load_glove_6b_50d,
    load_minilm_token_embeddings,
    load_simlex999,
    load_wordsim353,
)
from ..metrics import (
    sparsity,
    text_classification_accuracy,
    word_intrusion,
    word_similarity,
)
from ..words import SparseOvercompleteVectors
from ._report import Report, effect_notes, finish

__all__ = ["PAPER", "evaluate", "load_vocabulary", "run"]

PAPER = [
    {"comparison": "A vs dense: word similarity",
     "paper": "equal or better on most benchmarks"},
    {"comparison": "B (binary) vs dense: word similarity",
     "paper": "close to dense, sometimes better"},
    {"comparison": "sparse vs dense: interpretability",
     "paper": "much higher (human word intrusion)"},
    {"comparison": "sparsity", "paper": "about 90% zeros, 10x overcomplete"},
    {"comparison": "sparse vs dense: 20 Newsgroups",
     "paper": "equal or better"},
]

# paper's direction of effect, shown beside each of our rows
DIRECTION = {
    "dense": "baseline",
    "A (sparse)": "sim >= dense, intrusion >> dense",
    "non-negative": "sim >= dense, intrusion >> dense",
    "B (binarized)": "sim ~ dense, intrusion >> dense",
    "non-negative, D >= 0": "(Eq. 3 read literally; not what the paper's code ran)",
}


def _eval_words() -> list[str]:
    pairs = load_wordsim353()[0] + load_simlex999()[0]
    return list(dict.fromkeys(w.lower() for pair in pairs for w in pair))


def _with_eval_words(base: WordVectors, top: list[str]) -> tuple[WordVectors, int]:
    """``top`` words first, then the benchmark words ``base`` has."""
    have = set(top)
    extra = [w for w in _eval_words() if w in base.index and w not in have]
    return base.subset(top + extra), len(top)


def load_vocabulary(kind: str, n: int) -> tuple[WordVectors, int]:
    """Vectors of the ``n`` most frequent words plus the benchmark words.

    Parameters
    ----------
    kind : {"glove", "minilm"}
    n : int
        Number of frequent words (they come first).

    Returns
    -------
    vectors : WordVectors
    n : int
        How many leading rows are the frequent words.
    """
    glove = load_glove_6b_50d()
    if kind == "glove":
        return _with_eval_words(glove, glove.words[:n])
    if kind != "minilm":
        raise ValueError(f"kind must be 'glove' or 'minilm', got {kind!r}")
    minilm = load_minilm_token_embeddings()
    tokens = {w for w in minilm.words if w.isalpha() and w.islower()}
    top = [w for w in glove.words if w in tokens][:n]
    return _with_eval_words(minilm, top)


def evaluate(vectors: WordVectors, n_frequent: int, texts: list[str],
             labels: Any, max_dims: int = 1000) -> dict[str, float]:
    """Similarity, intrusion, sparsity and newsgroups accuracy of ``vectors``.

    Parameters
    ----------
    vectors : WordVectors
    n_frequent : int
        The intrusion test uses the first ``n_frequent`` rows.
    texts, labels :
        Documents and labels for the downstream classifier.
    max_dims : int
        Dimensions sampled for the intrusion score.

    Returns
    -------
    dict
    """
    intr = word_intrusion(vectors.most_frequent(n_frequent),
                          n_dims=min(max_dims, vectors.vectors.shape[1]))
    ws, sl = word_similarity(vectors, "ws353"), word_similarity(vectors, "simlex999")
    return {
        "dims": vectors.vectors.shape[1],
        "sparsity": sparsity(vectors.vectors),
        "ws353": ws["spearman"],
        "simlex999": sl["spearman"],
        "intrusion_ratio": intr["distance_ratio"],
        "intrusion_detect": intr["detection_rate"],
        "newsgroups_acc": text_classification_accuracy(vectors, texts, labels)[
            "accuracy"],
    }


def _sov_rows(X: np.ndarray, quick: bool, device: str, seed: int = 0,
              **kw: Any) -> dict[str, Callable[[], np.ndarray]]:
    """The sparse variants (fitted lazily, the non-negative fit shared by B)."""
    base = dict(max_iter=10 if quick else 20, random_state=seed, device=device,
                **kw)
    cache: dict[str, np.ndarray] = {}

    def nonneg() -> np.ndarray:
        if "nn" not in cache:
            cache["nn"] = SparseOvercompleteVectors(nonnegative=True, **base).fit(
                X).codes_
        return cache["nn"]

    return {
        "A (sparse)": lambda: SparseOvercompleteVectors(**base).fit(X).codes_,
        "non-negative": nonneg,
        "B (binarized)": lambda: (nonneg() > 0).astype(X.dtype),
        "non-negative, D >= 0": lambda: SparseOvercompleteVectors(
            nonnegative=True, positive_dict=True, **base).fit(X).codes_,
    }


def _rows(kind: str, n: int, methods: dict, direction: dict,
          texts: list[str], labels: Any) -> list[dict]:
    vocab, n_top = load_vocabulary(kind, n)
    rows = []
    for name, make in {"dense": lambda: vocab.vectors, **methods(vocab)}.items():
        t0 = time.perf_counter()
        vectors = WordVectors(vocab.words, make())
        row = {"vectors": kind, "method": name, "n_words": len(vocab),
               "fit_s": round(time.perf_counter() - t0, 1)}
        row.update(evaluate(vectors, n_top, texts, labels))
        row["paper"] = direction.get(name, "")
        rows.append(row)
    return rows


def _sizes(quick: bool) -> dict[str, tuple[int, dict]]:
    """Vocabulary size and estimator settings per kind of vectors."""
    if quick:  # MiniLM: 4x overcomplete to stay well under a minute
        return {"glove": (4000, {}), "minilm": (1500, {"n_components": 1536})}
    return {"glove": (20000, {}), "minilm": (20000, {})}


def run(quick: bool = False, device: str = "auto",
        out_dir: str | os.PathLike | None = None, random_state: int = 0) -> Report:
    """Dense vs methods A / non-negative / B on GloVe-50d and MiniLM vectors.

    Parameters
    ----------
    quick : bool
        Small vocabularies and 10 epochs (well under a minute; for tests).
    device : str
    out_dir : str or path-like, optional
        Where to write ``report.md`` and ``report.json`` (nothing when None).
    random_state : int, default=0
        Seeds the data sampling and every estimator.

    Returns
    -------
    Report
    """
    texts, labels = load_newsgroups_texts()
    table = []
    for kind, (n, kw) in _sizes(quick).items():
        def methods(vocab, kw=kw):
            return _sov_rows(vocab.vectors, quick, device, random_state, **kw)
        table += _rows(kind, n, methods, DIRECTION, texts, labels)
    return finish(Report(
        title="Faruqui et al. (2015): sparse overcomplete word vectors",
        table=table, paper=PAPER, notes=_notes(table, quick)), out_dir)


def _notes(table: list[dict], quick: bool) -> list[str]:
    notes = [
        "intrusion_ratio: mean distance of the intruder to a dimension's top-4 "
        "words over their mean mutual distance, in the evaluated space (higher ="
        " more interpretable, ~1 for random directions); intrusion_detect: "
        "fraction of dimensions where the intruder is the odd one out.",
        "non-negative constrains only the codes, as the public code that "
        "produced the paper's numbers does (its Eq. 3 also writes D >= 0); "
        "'D >= 0' adds that constraint: reconstructions are then >= 0, so the "
        "negative entries of mixed-sign embeddings (43% of GloVe-50d's energy, "
        "50% of MiniLM's) are lost and similarity drops.",
    ]
    if quick:
        notes.append("quick mode: small vocabularies, 10 epochs, MiniLM 4x "
                     "overcomplete; numbers are indicative only.")
    return notes + effect_notes(table, "A (sparse)", "method A")
