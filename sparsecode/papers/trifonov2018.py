"""Trifonov, Ganea, Potapenko & Hofmann (2018), "Learning and evaluating sparse
interpretable sentence embeddings" — the post-hoc variant.

MiniLM-L6 sentence embeddings (unit-norm mean pooling) of sentences from the
bundled corpora are sparse-coded after the fact with
`SparseOvercompleteVectors` (signed and non-negative codes). Each dimension
is judged, as in the paper, by the topical coherence of its top sentences:
take the ``k`` sentences with the largest value on the dimension, the ``m``
most frequent content words among them, and average their pairwise NPMI,
with probabilities from sentence-level co-occurrence over the whole corpus
(NPMI of a pair that never co-occurs is -1). Dense dimensions (the 384
coordinates) and random sets of ``k`` sentences are the baselines.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

from ..data.activations import load_minilm, sentence_embeddings
from ..data.text import load_lee_texts, load_newsgroups_texts, load_wiki_texts
from ..metrics import sparsity
from ..words import SparseOvercompleteVectors
from ._report import Report, finish

__all__ = ["PAPER", "coherence", "load_sentences", "run"]

PAPER = [
    {"comparison": "sparse vs dense dimensions: topical coherence",
     "paper": "sparse dimensions clearly more coherent / interpretable"},
    {"comparison": "sparse vs dense: downstream quality",
     "paper": "small loss for post-hoc sparse coding"},
]

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


def load_sentences(n: int, quick: bool = False, seed: int = 0) -> list[str]:
    """``n`` sentences (6-60 words) drawn evenly from the bundled corpora.

    Wikipedia extract and newsgroup posts; ``quick`` uses the Lee news corpus
    instead of Wikipedia (parsing the wiki dump alone takes about 10 s).
    """
    docs = (load_lee_texts() if quick else load_wiki_texts()) + load_newsgroups_texts(
        remove_quotes=True)[0]
    sents = [s.strip() for doc in docs for para in doc.split("\n")
             for s in _SPLIT.split(para)]
    sents = list(dict.fromkeys(s for s in sents if 6 <= len(s.split()) <= 60))
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(sents), min(n, len(sents)), replace=False))
    return [sents[i] for i in keep]


def _word_matrix(sentences: list[str]) -> sp.csr_matrix:
    vec = CountVectorizer(binary=True, stop_words="english", min_df=2,
                          token_pattern=r"(?u)\b[a-zA-Z]{3,}\b")
    return vec.fit_transform(sentences).tocsr().astype(np.float64)


def _npmi(B: sp.csr_matrix, words: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mean pairwise NPMI of each row of word indices ``words`` (n_sets, m),
    over the pairs of words flagged ``valid``."""
    n = B.shape[0]
    C = (B.T @ B).tocsr()
    p = np.asarray(B.sum(0)).ravel() / n
    ia, ib = np.triu_indices(words.shape[1], 1)
    wa, wb = words[:, ia].ravel(), words[:, ib].ravel()
    p_ab = np.asarray(C[wa, wb]).ravel() / n
    with np.errstate(divide="ignore", invalid="ignore"):
        val = np.log(p_ab / (p[wa] * p[wb])) / -np.log(p_ab)
    val = np.where(p_ab > 0, val, -1.0)
    val = np.where(p_ab >= 1, 1.0, val).reshape(len(words), -1)
    keep = valid[:, ia] & valid[:, ib]
    with np.errstate(invalid="ignore"):
        return (val * keep).sum(1) / keep.sum(1)


def coherence(values: np.ndarray, B: sp.csr_matrix, k: int = 10, m: int = 8,
              random_state: Any = 0) -> dict[str, float]:
    """NPMI coherence of the top-``k`` sentences of each column of ``values``.

    Parameters
    ----------
    values : ndarray of shape (n_sentences, n_dims)
        Sentence representations; a column with fewer than ``k`` positive
        values is skipped.
    B : sparse matrix of shape (n_sentences, n_words)
        Binary sentence-word matrix (content words).
    k, m : int
        Top sentences per dimension, and the (at most) ``m`` most frequent
        words among them (ties broken by word index).
    random_state : int
        Seed of the random-sentences baseline.

    Returns
    -------
    dict
        ``npmi`` (mean over dimensions), ``npmi_random`` (random sets of
        ``k`` sentences), ``n_dims`` (dimensions evaluated).
    """
    ok = (values > 0).sum(0) >= k
    cols = values[:, ok]
    top = np.argpartition(-cols, k - 1, axis=0)[:k].T  # (n_dims, k)
    rng = np.random.default_rng(random_state)
    rand = np.stack([rng.choice(B.shape[0], k, replace=False)
                     for _ in range(max(len(top), 1))])
    out = {}
    for name, sets in (("npmi", top), ("npmi_random", rand)):
        if len(sets) == 0:
            out[name] = float("nan")
            continue
        counts = np.stack([np.asarray(B[s].sum(0)).ravel() for s in sets])
        words = np.argsort(-counts, axis=1, kind="stable")[:, :m]
        valid = np.take_along_axis(counts, words, axis=1) > 0
        out[name] = float(np.nanmean(_npmi(B, words, valid)))
    out["n_dims"] = int(ok.sum())
    return out


def _representations(E: np.ndarray, n_components: int, max_iter: int,
                     device: str, seed: int = 0) -> dict[str, np.ndarray]:
    reps = {"dense (384 coordinates)": E}
    for name, nonneg in (("sparse, signed", False), ("sparse, non-negative", True)):
        est = SparseOvercompleteVectors(n_components, nonnegative=nonneg,
                                        max_iter=max_iter, random_state=seed,
                                        device=device)
        reps[name] = est.fit(E).codes_
    return reps


def run(quick: bool = False, device: str = "auto",
        out_dir: str | os.PathLike | None = None, random_state: int = 0) -> Report:
    """Coherence of dense vs post-hoc sparse MiniLM sentence-embedding dimensions.

    Parameters
    ----------
    quick : bool
        400 sentences (Lee + newsgroups), 2x overcomplete (for tests).
    device : str
    out_dir : str or path-like, optional
        Where to write ``report.md`` and ``report.json`` (nothing when None).
    random_state : int, default=0
        Seeds the data sampling and every estimator.

    Returns
    -------
    Report
    """
    n, K, epochs, k = (400, 768, 20, 5) if quick else (5000, 1536, 20, 10)
    sentences = load_sentences(n, quick=quick, seed=random_state)
    t0 = time.perf_counter()
    model, tokenizer = load_minilm()
    E = sentence_embeddings(model, tokenizer, sentences)
    embed_s = time.perf_counter() - t0
    B = _word_matrix(sentences)
    table = []
    for name, values in _representations(E, K, epochs, device,
                                                 random_state).items():
        row = {"representation": name, "dims": values.shape[1],
               "sparsity": sparsity(values)}
        row.update(coherence(values, B, k=k, random_state=random_state))
        table.append(row)
    notes = [f"{len(sentences)} sentences, embedded in {embed_s:.0f} s; top {k} "
             "sentences and their 8 most frequent content words per dimension; "
             "NPMI from sentence-level co-occurrence in the same sentences.",
             "npmi_random: the same score for random sets of sentences (chance)."]
    dense, signed = table[0], table[1]
    if max(r["npmi"] for r in table[1:]) <= dense["npmi"]:
        notes.append("No coherence gain of the sparse dimensions over the dense "
                     "coordinates here, unlike the paper.")
    if signed["npmi"] <= signed["npmi_random"]:
        notes.append("Signed sparse dimensions are no more coherent than chance.")
    return finish(Report(title="Trifonov et al. (2018): post-hoc sparse sentence "
                               "embeddings, coherence of dimensions",
                         table=table, paper=PAPER, notes=notes), out_dir)
