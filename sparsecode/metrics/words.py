"""Evaluation of (sparse) word vectors: similarity, analogies, interpretability
(automatic word intrusion), sparsity and downstream text classification.

All functions take a :class:`~sparsecode.data.words.WordVectors`; look-ups
try the lower-cased word first, then the word as given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.stats import spearmanr
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state

from ..data.words import (
    WordVectors,
    load_analogies,
    load_simlex999,
    load_wordsim353,
)

__all__ = [
    "analogy_accuracy",
    "sparsity",
    "text_classification_accuracy",
    "word_intrusion",
    "word_similarity",
]

_CHUNK = 256  # dimensions / groups processed at a time by word_intrusion
_SIMILARITY_DATASETS = {
    "ws353": load_wordsim353,
    "wordsim353": load_wordsim353,
    "simlex999": load_simlex999,
    "simlex": load_simlex999,
}


def _lookup(vectors: WordVectors, words: Iterable[str]) -> np.ndarray:
    """Row of each word (lower-cased first, then as given), -1 if missing."""
    index = vectors.index
    return np.fromiter(
        (index.get(w.lower(), index.get(w, -1)) for w in words), dtype=np.int64
    )


def _unit_rows(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1)


def _similarity_data(dataset: Any) -> tuple[list[tuple[str, str]], np.ndarray]:
    if isinstance(dataset, str):
        if dataset not in _SIMILARITY_DATASETS:
            raise ValueError(f"dataset must be one of {sorted(_SIMILARITY_DATASETS)} "
                             f"or (pairs, scores), got {dataset!r}")
        return _SIMILARITY_DATASETS[dataset]()
    pairs, scores = dataset
    pairs, scores = [tuple(p) for p in pairs], np.asarray(scores, dtype=float)
    if len(pairs) != len(scores) or any(len(p) != 2 for p in pairs):
        raise ValueError("dataset must be (pairs of two words, one score per pair)")
    return pairs, scores


def word_similarity(vectors: WordVectors, dataset: Any = "ws353") -> dict[str, float]:
    """Spearman correlation of cosine similarities with human judgements.

    Parameters
    ----------
    vectors : WordVectors
        Word vectors (dense or sparse codes).
    dataset : {"ws353", "simlex999"} or (pairs, scores), default "ws353"
        WordSim-353, SimLex-999 (gensim's test data) or your own pairs
        ``[(w1, w2), ...]`` with one score each.

    Returns
    -------
    dict
        ``spearman`` (nan if fewer than 2 pairs are covered), ``coverage``
        (fraction of pairs with both words in the vocabulary; the others are
        skipped) and ``n_pairs`` (pairs evaluated).

    Examples
    --------
    >>> from sparsecode.data.words import WordVectors
    >>> from sparsecode.metrics import word_similarity
    >>> wv = WordVectors(["cat", "dog", "car"], [[1.0, 0.0], [0.8, 0.2], [0.0, 1.0]])
    >>> pairs = [("cat", "dog"), ("dog", "car"), ("cat", "car"), ("dog", "emu")]
    >>> word_similarity(wv, (pairs, [9, 2, 1, 5]))
    {'spearman': 1.0, 'coverage': 0.75, 'n_pairs': 3}
    """
    pairs, scores = _similarity_data(dataset)
    rows = _lookup(vectors, [w for pair in pairs for w in pair]).reshape(-1, 2)
    covered = (rows >= 0).all(axis=1)
    n = int(covered.sum())
    rho = np.nan
    if n >= 2:
        U = _unit_rows(np.asarray(vectors.vectors[rows[covered].ravel()], float))
        cosines = np.einsum("ij,ij->i", U[0::2], U[1::2])
        rho = float(spearmanr(cosines, scores[covered]).statistic)
    return {"spearman": rho, "coverage": n / max(len(pairs), 1), "n_pairs": n}


def _predict_3cosadd(U: np.ndarray, abc: np.ndarray, batch_size: int) -> np.ndarray:
    """argmax_w cos(w, b - a + c) over unit rows, excluding a, b and c."""
    out = np.empty(len(abc), dtype=np.int64)
    batch_size = max(1, min(batch_size, (1 << 25) // max(len(U), 1)))  # <= 128 MB
    for s in range(0, len(abc), batch_size):
        a, b, c = abc[s : s + batch_size].T
        scores = (U[b] - U[a] + U[c]) @ U.T
        rows = np.arange(len(a))
        scores[rows, a] = scores[rows, b] = scores[rows, c] = -np.inf
        out[s : s + batch_size] = scores.argmax(axis=1)
    return out


def analogy_accuracy(
    vectors: WordVectors,
    restrict: int | None = 30000,
    sections: Iterable[str] | None = None,
    questions: Sequence[tuple[str, str, str, str, str]] | None = None,
    batch_size: int = 512,
) -> dict[str, Any]:
    """Accuracy on analogy questions ``a : b :: c : ?`` with 3CosAdd.

    The answer is the word maximising ``cos(w, b^ - a^ + c^)`` (unit vectors)
    among the ``restrict`` most frequent words, excluding ``a``, ``b`` and
    ``c`` (as gensim's ``evaluate_word_analogies``). Questions with a word
    outside that vocabulary are skipped and reported through ``coverage``.

    Parameters
    ----------
    vectors : WordVectors
        Word vectors, most frequent first.
    restrict : int or None, default 30000
        Vocabulary size searched (None: all words).
    sections : iterable of str, optional
        Sections to keep, e.g. ``["capital-common-countries", "family"]``.
    questions : sequence of (section, a, b, c, d), optional
        Defaults to the Google analogy set (:func:`load_analogies`).
    batch_size : int, default 512
        Questions scored per matrix product.

    Returns
    -------
    dict
        ``accuracy``, ``coverage``, ``n_questions`` (answered) and
        ``sections`` (accuracy per section).

    Examples
    --------
    >>> from sparsecode.data.words import WordVectors
    >>> from sparsecode.metrics import analogy_accuracy
    >>> wv = WordVectors(["he", "she", "king", "queen", "apple"],
    ...                  [[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 1, 1], [-1, 0, 0]])
    >>> qs = [("s", "he", "she", "king", "queen"), ("s", "he", "she", "king", "prince")]
    >>> analogy_accuracy(wv, restrict=None, questions=qs)  # ("prince" is unknown)
    {'accuracy': 1.0, 'coverage': 0.5, 'n_questions': 1, 'sections': {'s': 1.0}}
    """
    qs = load_analogies() if questions is None else list(questions)
    if sections is not None:
        keep = set(sections)
        qs = [q for q in qs if q[0] in keep]
    vocab = vectors.most_frequent(restrict) if restrict else vectors
    rows = _lookup(vocab, [w for q in qs for w in q[1:]]).reshape(-1, 4)
    covered = (rows >= 0).all(axis=1)
    U = _unit_rows(np.asarray(vocab.vectors, dtype=np.float32))
    correct = _predict_3cosadd(U, rows[covered, :3], batch_size) == rows[covered, 3]
    names = np.asarray([q[0] for q in qs], dtype=object)[covered]
    per_section = {
        str(name): float(correct[names == name].mean()) for name in dict.fromkeys(names)
    }
    return {
        "accuracy": float(correct.mean()) if correct.size else np.nan,
        "coverage": float(covered.mean()) if covered.size else 0.0,
        "n_questions": int(covered.sum()),
        "sections": per_section,
    }


def sparsity(codes: Any) -> float:
    """Fraction of exactly-zero entries.

    Parameters
    ----------
    codes : array-like, scipy sparse matrix, torch tensor or WordVectors
        The codes.

    Returns
    -------
    float
        ``1 - nnz / size``, in [0, 1].

    Examples
    --------
    >>> from sparsecode.metrics import sparsity
    >>> float(sparsity([[0.0, 1.5], [0.0, 0.0]]))
    0.75
    """
    if isinstance(codes, WordVectors):
        codes = codes.vectors
    if sp.issparse(codes):
        size = codes.shape[0] * codes.shape[1]
        nnz = codes.count_nonzero()
    else:
        if hasattr(codes, "detach"):  # torch tensor, without importing torch
            codes = codes.detach().cpu().numpy()
        codes = np.asarray(codes)
        size, nnz = codes.size, np.count_nonzero(codes)
    if size == 0:
        raise ValueError("sparsity of an empty array is undefined")
    return 1.0 - nnz / size


def _intrusion_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-dim medians, "top 10% of dim" mask and its count per word."""
    med = np.empty(X.shape[1], X.dtype)
    q90 = np.empty(X.shape[1], X.dtype)
    for s in range(0, X.shape[1], _CHUNK):
        stats = np.quantile(X[:, s : s + _CHUNK], [0.5, 0.9], axis=0)
        med[s : s + _CHUNK], q90[s : s + _CHUNK] = stats
    top10 = (X >= q90) & (X > med)  # ties at the median (zeros of codes) excluded
    return med, top10, top10.sum(axis=1)


def _top_rows(cols: np.ndarray, n_top: int) -> np.ndarray:
    """Rows of the ``n_top`` largest values of each column, largest first."""
    part = np.argpartition(-cols, n_top - 1, axis=0)[:n_top]
    order = np.argsort(-np.take_along_axis(cols, part, axis=0), axis=0, kind="stable")
    return np.take_along_axis(part, order, axis=0).T


def _pick_groups(X: np.ndarray, dims: np.ndarray, n_top: int, rng: Any
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top words and a random intruder for each dim; valid if one exists."""
    med, top10, n_top10 = _intrusion_stats(X)
    tops, intruders, valid = [], [], []
    for s in range(0, len(dims), _CHUNK):
        chunk = dims[s : s + _CHUNK]
        cols, arange = X[:, chunk], np.arange(len(chunk))
        top = _top_rows(cols, n_top)
        candidates = ((cols <= med[chunk]) & (cols.max(axis=0) > med[chunk])
                      & (n_top10[:, None] - top10[:, chunk] > 0))
        candidates[top.T, arange] = False
        noise = np.where(candidates, rng.random_sample(candidates.shape), -1.0)
        pick = noise.argmax(axis=0)
        tops.append(top)
        intruders.append(pick)
        valid.append(candidates[pick, arange])
    return np.concatenate(tops), np.concatenate(intruders), np.concatenate(valid)


def _group_distances(X: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Euclidean distance matrices (m, g, g) within each group of rows."""
    out = np.empty((len(groups), groups.shape[1], groups.shape[1]))
    for s in range(0, len(groups), _CHUNK):
        G = np.asarray(X[groups[s : s + _CHUNK]], dtype=np.float64)  # (m, g, d)
        sq = np.einsum("mgd,mgd->mg", G, G)
        d2 = sq[:, :, None] + sq[:, None, :] - 2 * G @ G.transpose(0, 2, 1)
        out[s : s + _CHUNK] = np.sqrt(np.maximum(d2, 0))
    return out


def word_intrusion(
    vectors: Any,
    n_top: int = 4,
    n_dims: int | None = None,
    random_state: Any = 0,
) -> dict[str, Any]:
    """Automatic word-intrusion interpretability score (Sun et al. 2016).

    For each dimension take its ``n_top`` highest words and an intruder from
    the bottom half of that dimension that is in the top 10% of another
    dimension (Faruqui et al. 2015, Subramanian et al. 2018). With Euclidean
    distances in the evaluated space, the dimension's ratio is the mean
    intruder-to-top distance over the mean distance among the top words.

    Parameters
    ----------
    vectors : WordVectors or array of shape (n_words, n_dims)
        Vectors whose dimensions are evaluated (restrict the vocabulary, e.g.
        ``vectors.most_frequent(30000)``, for speed and realism).
    n_top : int, default 4
        Top words per dimension.
    n_dims : int, optional
        Evaluate a random subset of this many dimensions (default: all).
    random_state : int, RandomState or None, default 0
        Seed for choosing intruders and dimensions.

    Returns
    -------
    dict
        ``distance_ratio`` (mean ratio; higher = more interpretable, about 1 for random
        directions), ``detection_rate`` (fraction of dimensions where the intruder is
        the word farthest on average from the other words), ``n_dims`` (dims evaluated;
        a dim without a possible intruder is skipped), ``dims``, ``top`` (n_dims, n_top)
        and ``intruders`` (row indices).

    Examples
    --------
    >>> from sparsecode.metrics import word_intrusion
    >>> X = [[(i % 4 == j) + i / 400 for j in range(4)] for i in range(40)]  # 4 groups
    >>> out = word_intrusion(X, n_top=3)
    >>> out["n_dims"], out["detection_rate"], out["distance_ratio"] > 2
    (4, 1.0, True)
    """
    X = np.asarray(vectors.vectors if isinstance(vectors, WordVectors) else vectors)
    if X.ndim != 2 or X.shape[1] < 2 or n_top < 2 or X.shape[0] < 2 * (n_top + 1):
        raise ValueError(f"need >= 2 dims, n_top >= 2 and >= {2 * (n_top + 1)} "
                         f"words; got shape {X.shape} and n_top={n_top}")
    rng = check_random_state(random_state)
    dims = np.arange(X.shape[1])
    if n_dims is not None and n_dims < 1:
        raise ValueError(f"n_dims must be >= 1, got {n_dims}")
    if n_dims is not None and n_dims < X.shape[1]:
        dims = np.sort(rng.choice(X.shape[1], n_dims, replace=False))
    top, intruder, valid = _pick_groups(X, dims, n_top, rng)
    top, intruder, dims = top[valid], intruder[valid], dims[valid]
    D = _group_distances(X, np.column_stack([top, intruder]))
    intra = D[:, :n_top, :n_top].sum(axis=(1, 2)) / (n_top * (n_top - 1))
    inter = D[:, n_top, :n_top].mean(axis=1)
    ok = intra > 0
    detected = D.sum(axis=2).argmax(axis=1) == n_top
    return {
        "distance_ratio": float(np.mean(inter[ok] / intra[ok])) if ok.any() else np.nan,
        "detection_rate": float(detected.mean()) if detected.size else np.nan,
        "n_dims": int(len(dims)),
        "dims": dims,
        "top": top,
        "intruders": intruder,
    }


def _mean_word_vectors(vectors: WordVectors, texts: Sequence[str]
                       ) -> tuple[np.ndarray, float]:
    counter = CountVectorizer(lowercase=True, token_pattern=r"(?u)\b\w+\b")
    counts = counter.fit_transform(texts).tocsc()
    rows = _lookup(vectors, counter.get_feature_names_out())
    known = counts[:, rows >= 0].tocsr()
    summed = known @ np.asarray(vectors.vectors[rows[rows >= 0]], dtype=np.float64)
    n_known = np.asarray(known.sum(axis=1)).ravel()
    coverage = float(n_known.sum() / max(counts.sum(), 1))
    return summed / np.maximum(n_known, 1)[:, None], coverage


def text_classification_accuracy(
    vectors: WordVectors,
    texts: Sequence[str],
    labels: Any,
    cv: int = 5,
    random_state: Any = 0,
) -> dict[str, float]:
    """Cross-validated accuracy of logistic regression on mean word vectors.

    Each text is tokenised (lower-cased ``\\w+`` tokens) and represented by the
    mean vector of its in-vocabulary tokens (zeros if none); a standardised
    logistic regression is scored by stratified, shuffled K-fold CV.

    Parameters
    ----------
    vectors : WordVectors
        Word vectors (dense or sparse).
    texts : sequence of str
        Documents, e.g. from :func:`~sparsecode.data.words.load_newsgroups_texts`.
    labels : array-like of shape (n_texts,)
        Class labels.
    cv : int, default 5
        Number of folds.
    random_state : int or None, default 0
        Seed of the fold shuffling.

    Returns
    -------
    dict
        ``accuracy`` (mean over folds), ``std`` and ``token_coverage``
        (fraction of tokens found in the vocabulary).

    Examples
    --------
    >>> from sparsecode.data.words import WordVectors
    >>> from sparsecode.metrics import text_classification_accuracy
    >>> wv = WordVectors(["good", "bad"], [[1.0, 0.0], [0.0, 1.0]])
    >>> texts = ["good", "so good", "good film", "bad", "so bad", "bad film"]
    >>> text_classification_accuracy(wv, texts, [1, 1, 1, 0, 0, 0], cv=3)
    {'accuracy': 1.0, 'std': 0.0, 'token_coverage': 0.6}
    """
    features, coverage = _mean_word_vectors(vectors, texts)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    folds = StratifiedKFold(cv, shuffle=True, random_state=random_state)
    scores = cross_val_score(model, features, np.asarray(labels), cv=folds)
    return {"accuracy": float(scores.mean()), "std": float(scores.std()),
            "token_coverage": coverage}
