"""`WordVectors`: a vocabulary and its matrix of vectors, one row per word."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .._packages import require

__all__ = ["WordVectors"]


@dataclass(frozen=True, eq=False, repr=False)
class WordVectors:
    """Words and their vectors, rows in file order (most frequent first).

    Parameters
    ----------
    words : list of str
        The vocabulary, one word per row of ``vectors``.
    vectors : ndarray of shape (n_words, dim)
        The word vectors.
    """

    words: list[str]
    vectors: np.ndarray

    def __post_init__(self) -> None:
        vectors = np.asarray(self.vectors)
        words = list(self.words)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(
                f"vectors must have shape (len(words), dim) = ({len(words)}, dim), "
                f"got {vectors.shape}"
            )
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "vectors", vectors)

    def __len__(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:
        n, d = self.vectors.shape
        return f"WordVectors(n_words={n}, dim={d}, dtype={self.vectors.dtype})"

    @cached_property
    def index(self) -> dict[str, int]:
        """Map word -> row (the first row for a repeated word), built lazily."""
        n = len(self.words)
        return dict(zip(reversed(self.words), range(n - 1, -1, -1), strict=True))

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        try:
            return self.vectors[self.index[word]]
        except KeyError:
            raise KeyError(f"word {word!r} not in vocabulary") from None

    def subset(self, words: Iterable[str]) -> WordVectors:
        """Vectors of ``words``, in that order; KeyError for a missing word."""
        words = list(words)
        missing = [w for w in words if w not in self.index]
        if missing:
            raise KeyError(f"{len(missing)} words not in vocabulary: {missing[:5]}")
        rows = [self.index[w] for w in words]
        return WordVectors(words, self.vectors[rows])

    def most_frequent(self, n: int) -> WordVectors:
        """The first ``n`` words (files list words by decreasing frequency)."""
        return WordVectors(self.words[:n], self.vectors[:n])

    def to_keyed_vectors(self) -> Any:
        """Convert to a gensim ``KeyedVectors`` (first occurrence of repeats)."""
        keyed = require("gensim.models", "words").KeyedVectors
        rows = sorted(self.index.values())
        kv = keyed(self.vectors.shape[1], count=0, dtype=self.vectors.dtype)
        kv.add_vectors([self.words[i] for i in rows], self.vectors[rows])
        return kv
