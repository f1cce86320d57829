"""`WordVectors`: a vocabulary and its matrix of vectors, one row per word.

Also the checks that every reader of word vectors shares (in `formats` and
`bundled`): ``limit`` arguments, and files opened with ``.gz`` / ``.bz2``
decompression whose errors become a ``ValueError`` naming the file, with a
UTF-8 byte-order mark skipped and an empty file refused.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import numbers
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .._packages import require

__all__ = ["WordVectors"]

PathLike = str | os.PathLike
#: what a truncated or corrupt compressed file raises while being read
DECOMPRESS_ERRORS = (EOFError, OSError, zlib.error)
_BOM = b"\xef\xbb\xbf"


def _check_limit(limit: Any) -> int | None:
    """``limit`` as an int, or None; ``ValueError`` unless None or an int >= 0."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 0:
        raise ValueError(f"limit must be None or an integer >= 0, got {limit!r}")
    return int(limit)


def _open(path: PathLike, mode: str) -> io.BufferedIOBase:
    name = os.fspath(path)
    if name.endswith(".gz"):
        return gzip.open(name, mode)
    if name.endswith(".bz2"):
        return bz2.open(name, mode)
    return open(name, mode)  # noqa: SIM115


def _corrupt(path: PathLike, err: Exception, line: int | None = None) -> ValueError:
    """The ``ValueError`` for a decompression error (re-raises other OS errors)."""
    if isinstance(err, OSError) and err.errno is not None:
        raise err
    at = f"line {line}: " if line is not None else ""
    return ValueError(f"{path}: {at}compressed data is truncated or corrupt "
                      f"({type(err).__name__}: {err})")


@contextlib.contextmanager
def _reading(path: PathLike) -> Iterator[io.BufferedIOBase]:
    """The open file; decompression errors become ``ValueError`` naming it."""
    try:
        with _open(path, "rb") as f:
            yield f
    except DECOMPRESS_ERRORS as err:
        raise _corrupt(path, err) from None


def _first_line(f: Any, path: PathLike) -> bytes:
    """Line 1 without a UTF-8 byte-order mark; ``ValueError`` for an empty file."""
    try:
        line = f.readline()
    except DECOMPRESS_ERRORS as err:
        raise _corrupt(path, err, 1) from None
    line = line.removeprefix(_BOM)
    if not line:
        raise ValueError(f"{path}: the file is empty")
    return line


@dataclass(frozen=True, eq=False, repr=False)
class WordVectors:
    """Words and their vectors, rows in file order (most frequent first).

    Parameters
    ----------
    words : list of str
        The vocabulary, one word per row of ``vectors``.
    vectors : ndarray of shape (n_words, dim)
        The word vectors.

    Examples
    --------
    >>> wv = WordVectors(["cat", "dog", "fish"], np.eye(3, dtype=np.float32))
    >>> wv
    WordVectors(n_words=3, dim=3, dtype=float32)
    >>> "dog" in wv, wv["dog"].tolist(), wv.subset(["fish", "cat"]).words
    (True, [0.0, 1.0, 0.0], ['fish', 'cat'])
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
        """The first ``n`` words (files list words by decreasing frequency).

        ``n`` must be an integer >= 0 (``ValueError`` otherwise); 0 gives no
        words, with the vectors' width kept.
        """
        n = _check_limit(n)
        if n is None:
            raise ValueError("n must be an integer >= 0, got None")
        return WordVectors(self.words[:n], self.vectors[:n])

    def to_keyed_vectors(self) -> Any:
        """Convert to a gensim ``KeyedVectors`` (first occurrence of repeats)."""
        keyed = require("gensim.models", "words").KeyedVectors
        rows = sorted(self.index.values())
        kv = keyed(self.vectors.shape[1], count=0, dtype=self.vectors.dtype)
        kv.add_vectors([self.words[i] for i in rows], self.vectors[rows])
        return kv
