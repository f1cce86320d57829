"""Word-level benchmark data from gensim's test files: WS-353, SimLex-999, analogies."""

from __future__ import annotations

import numpy as np

from .._packages import gensim_test_file

__all__ = ["load_analogies", "load_simlex999", "load_wordsim353"]


def _read_pairs(name: str) -> tuple[list[tuple[str, str]], np.ndarray]:
    pairs, scores = [], []
    for line in gensim_test_file(name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            w1, w2, score = line.split("\t")
            pairs.append((w1, w2))
            scores.append(float(score))
    return pairs, np.asarray(scores)


def load_wordsim353() -> tuple[list[tuple[str, str]], np.ndarray]:
    """WordSim-353 (353 pairs, human relatedness 0-10) from gensim's test data.

    Returns
    -------
    pairs : list of (str, str)
    scores : ndarray of shape (353,)

    Examples
    --------
    >>> pairs, scores = load_wordsim353()
    >>> len(pairs), pairs[0], float(scores[0])
    (353, ('love', 'sex'), 6.77)
    """
    return _read_pairs("wordsim353.tsv")


def load_simlex999() -> tuple[list[tuple[str, str]], np.ndarray]:
    """SimLex-999 (999 pairs, human similarity 0-10) from gensim's test data.

    Returns
    -------
    pairs : list of (str, str)
    scores : ndarray of shape (999,)

    Examples
    --------
    >>> pairs, scores = load_simlex999()
    >>> len(pairs), pairs[0], bool(0 <= scores.min() and scores.max() <= 10)
    (999, ('old', 'new'), True)
    """
    return _read_pairs("simlex999.txt")


def load_analogies() -> list[tuple[str, str, str, str, str]]:
    """Google analogy questions (19544, 14 sections) from gensim's test data.

    Returns
    -------
    list of (section, a, b, c, d)
        ``a : b :: c : d``, e.g. ``("capital-common-countries", "Athens",
        "Greece", "Baghdad", "Iraq")``.

    Examples
    --------
    >>> questions = load_analogies()
    >>> len(questions), len({q[0] for q in questions}), questions[0][1:]
    (19544, 14, ('Athens', 'Greece', 'Baghdad', 'Iraq'))
    """
    out, section = [], ""
    text = gensim_test_file("questions-words.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
        elif line.strip():
            a, b, c, d = line.split()
            out.append((section, a, b, c, d))
    return out
