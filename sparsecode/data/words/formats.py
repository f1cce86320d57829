"""Word-vector files: word2vec text and binary, GloVe text (read and write).

word2vec text
    Header line ``"n_words dim"``, then one line per word: ``word v1 ... vd``.
word2vec binary
    The same text header line, then per word: the UTF-8 word, a space, ``dim``
    little-endian float32 values and optionally a ``"\\n"`` (written by the C
    tool, not by gensim; both are read).
GloVe text
    Like word2vec text without the header line.

Readers raise :class:`ValueError` naming the file and the 1-based line number (for
binary files a record counts as one line after the header line) for ragged rows, a
header count that does not match, non-numeric values, words that are not valid UTF-8,
and truncated or corrupt ``.gz`` / ``.bz2`` data; an empty file is a ``ValueError`` too.
A UTF-8 byte-order mark at the start of a file is skipped. ``limit`` must be None or an
integer >= 0; ``limit=0`` reads no words and returns an empty `WordVectors` of the
file's dimension. Writers use the shortest representation that reads back to the
identical float32 value, so round trips are exact.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import chain, islice
from typing import Any

import numpy as np

from .vectors import (
    DECOMPRESS_ERRORS,
    PathLike,
    WordVectors,
    _check_limit,
    _corrupt,
    _first_line,
    _open,
    _reading,
)

__all__ = [
    "load_word_vectors",
    "read_glove_text",
    "read_word2vec_binary",
    "read_word2vec_text",
    "sniff_format",
    "write_glove_text",
    "write_word2vec_binary",
    "write_word2vec_text",
]

_CHUNK = 10_000  # rows per write / gather chunk
#: lines parsed at a time by the text readers (bounds their memory)
BLOCK_LINES = 50_000
_ASCII_SPACE = re.compile(r"\s", re.ASCII)
_NUMBER_BYTES = b"0123456789+-.eEnaifNAIFty \t\r"


def _parse_header(line: bytes, path: PathLike) -> tuple[int, int]:
    parts = line.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or int(parts[1]) < 1:
        raise ValueError(
            f"{path}: line 1: expected a header 'n_words dim', got {line[:60]!r}"
        )
    return int(parts[0]), int(parts[1])


def _decode_words(words: list[bytes], path: PathLike, first: int) -> list[str]:
    try:
        out = [w.decode("utf-8") for w in words]
    except UnicodeDecodeError:
        for i, w in enumerate(words):
            try:
                w.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"{path}: line {first + i}: word is not valid UTF-8 ({exc})"
                ) from None
    if "" in out:
        raise ValueError(f"{path}: line {first + out.index('')}: empty word")
    return out


def _parse_block(rests: Sequence[bytes], dtype: Any) -> np.ndarray | None:
    try:
        text = b"\n".join(rests).decode("ascii").split("\n")
        return np.loadtxt(text, dtype=dtype, comments=None, quotechar=None, ndmin=2)
    except (ValueError, UnicodeDecodeError):
        return None


def _raise_bad_values(rests: list[bytes], dim: int, path: PathLike, first: int,
                      dtype: Any) -> None:
    for i, rest in enumerate(rests):
        if len(rest.split()) != dim:
            raise ValueError(
                f"{path}: line {first + i}: expected {dim} values after the word, "
                f"found {len(rest.split())}"
            )
    lo, hi = 0, len(rests)  # the first unparsable line lies in rests[lo:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _parse_block(rests[lo:mid], dtype) is None:
            hi = mid
        else:
            lo = mid
    raise ValueError(f"{path}: line {first + lo}: non-numeric value in "
                     f"{rests[lo][:80]!r}")


def _parse_lines(lines: list[bytes], path: PathLike, first: int, dim: int | None,
                 dtype: Any) -> WordVectors:
    parts = [line.partition(b" ") for line in lines]
    rests = [p[2] for p in parts]
    if dim is None:
        dim = len(rests[0].split()) if rests else 1
        if dim < 1:
            raise ValueError(f"{path}: line {first}: no values after the word")
    vectors = _parse_block(rests, dtype) if rests else np.empty((0, dim), dtype)
    if vectors is None or vectors.shape != (len(rests), dim):
        _raise_bad_values(rests, dim, path, first, dtype)
    words = _decode_words([p[0] for p in parts], path, first)
    return WordVectors(words, vectors)


def _read_blocks(f: Any, want: int | None, path: PathLike, first: int,
                 dim: int | None, dtype: Any) -> list[WordVectors]:
    """Parse up to ``want`` lines, ``BLOCK_LINES`` at a time (bounded memory)."""
    blocks: list[WordVectors] = []
    count = 0
    while want is None or count < want:
        size = BLOCK_LINES if want is None else min(BLOCK_LINES, want - count)
        lines: list[bytes] = []
        try:
            for line in islice(f, size):
                lines.append(line.rstrip(b"\r\n"))
        except DECOMPRESS_ERRORS as err:
            raise _corrupt(path, err, first + count + len(lines)) from None
        if not lines:
            break
        blocks.append(_parse_lines(lines, path, first + count, dim, dtype))
        dim = blocks[0].vectors.shape[1]
        count += len(lines)
    return blocks


def _read_text(path: PathLike, header: bool, limit: int | None,
               dtype: Any) -> WordVectors:
    limit = _check_limit(limit)
    with _reading(path) as f:
        line = _first_line(f, path)
        n, dim = _parse_header(line, path) if header else (None, None)
        want = limit if n is None else min(n, limit if limit is not None else n)
        if dim is None and want == 0:  # still report the dimension
            dim = len(line.partition(b" ")[2].split()) or 1
        lines = f if header else chain([line], f)
        blocks = _read_blocks(lines, want, path, 2 if header else 1, dim, dtype)
        count = sum(len(b) for b in blocks)
        if n is not None and count < want:
            raise ValueError(f"{path}: line {count + 2}: file ends, but the "
                             f"header (line 1) announces {n} words")
        if n is not None and want == n:
            _check_no_more(f, path, n)
    if not blocks:
        return WordVectors([], np.empty((0, dim or 1), dtype))
    return WordVectors([w for b in blocks for w in b.words],
                       np.concatenate([b.vectors for b in blocks]))


def _check_no_more(f: Any, path: PathLike, n: int, rest: bytes = b"") -> None:
    if (rest + f.read()).strip():
        raise ValueError(f"{path}: line {n + 2}: more entries than the {n} words "
                         "announced in the header (line 1)")


# ---------------------------------------------------------------------- text formats
def read_word2vec_text(path: PathLike, limit: int | None = None,
                       dtype: Any = np.float32) -> WordVectors:
    """Read a word2vec text file (header ``"n_words dim"``).

    Parameters
    ----------
    path : str or path-like
        The file (``.gz`` / ``.bz2`` are decompressed on the fly).
    limit : int, optional
        Read only the first ``limit`` words (>= 0; 0 gives no words).
    dtype : numpy dtype, default float32
        Dtype of the returned vectors.

    Returns
    -------
    WordVectors
    """
    return _read_text(path, True, limit, dtype)


def read_glove_text(path: PathLike, limit: int | None = None,
                    dtype: Any = np.float32) -> WordVectors:
    """Read a GloVe text file (no header; ``word v1 ... vd`` per line).

    Parameters
    ----------
    path, limit, dtype
        As in `read_word2vec_text`.

    Returns
    -------
    WordVectors
    """
    return _read_text(path, False, limit, dtype)


def _check_words(words: list[str]) -> None:
    bad = [w for w in words if not w or _ASCII_SPACE.search(w)]
    if bad:
        raise ValueError(f"words must be non-empty without whitespace: {bad[:5]!r}")


def _write_text(wv: WordVectors, path: PathLike, header: bool) -> None:
    _check_words(wv.words)
    with _open(path, "wb") as f:
        if header:
            f.write(f"{len(wv)} {wv.vectors.shape[1]}\n".encode())
        for s in range(0, len(wv), _CHUNK):
            # numpy's float -> string cast gives the shortest round-trip repr
            rows = wv.vectors[s : s + _CHUNK].astype("S32").tolist()
            words = wv.words[s : s + _CHUNK]
            f.write(b"".join(w.encode("utf-8") + b" " + b" ".join(r) + b"\n"
                             for w, r in zip(words, rows, strict=True)))


def write_word2vec_text(wv: WordVectors, path: PathLike) -> None:
    """Write ``wv`` as word2vec text (exact: shortest round-trip floats).

    Parameters
    ----------
    wv : WordVectors
        Vectors to write; words must not contain whitespace.
    path : str or path-like
        Destination (``.gz`` / ``.bz2`` compress).

    Examples
    --------
    >>> import tempfile; path = tempfile.mkdtemp() + "/vectors.txt"
    >>> write_word2vec_text(WordVectors(["a", "b"], np.eye(2, dtype=np.float32)), path)
    >>> read_word2vec_text(path).words, read_word2vec_text(path).vectors.tolist()
    (['a', 'b'], [[1.0, 0.0], [0.0, 1.0]])
    """
    _write_text(wv, path, header=True)


def write_glove_text(wv: WordVectors, path: PathLike) -> None:
    """Write ``wv`` as GloVe text (no header line).

    Parameters
    ----------
    wv, path
        As in `write_word2vec_text`.
    """
    _write_text(wv, path, header=False)


# --------------------------------------------------------------------- binary format
def _scan_binary(f: Any, want: int, dim: int, n: int,
                 path: PathLike) -> tuple[bytearray, list[bytes], list[int], int]:
    nbytes = 4 * dim
    buf, pos, eof = bytearray(), 0, False
    words: list[bytes] = []
    offsets: list[int] = []
    for i in range(want):
        while True:
            while pos < len(buf) and buf[pos] == 10:  # optional "\n" after a vector
                pos += 1
            space = buf.find(b" ", pos)
            if space >= 0 and space + 1 + nbytes <= len(buf):
                break
            if eof:
                raise ValueError(f"{path}: line {i + 2}: file ends, but the header "
                                 f"(line 1) announces {n} words of dim {dim}")
            chunk = f.read(1 << 20)  # (decompression errors: see _reading)
            eof = not chunk
            buf += chunk
        words.append(bytes(buf[pos:space]))
        offsets.append(space + 1)
        pos = space + 1 + nbytes
    return buf, words, offsets, pos


def _gather_float32(buf: bytearray, offsets: list[int], dim: int) -> np.ndarray:
    raw = np.frombuffer(buf, dtype=np.uint8)
    starts = np.asarray(offsets, dtype=np.int64)
    cols = np.arange(4 * dim)
    out = np.empty((len(starts), dim), dtype=np.float32)
    for s in range(0, len(starts), _CHUNK):
        out[s : s + _CHUNK] = raw[starts[s : s + _CHUNK, None] + cols].view("<f4")
    return out


def read_word2vec_binary(path: PathLike, limit: int | None = None) -> WordVectors:
    """Read a word2vec binary file (as written by word2vec.c or gensim).

    Parameters
    ----------
    path : str or path-like
        The file (``.gz`` / ``.bz2`` are decompressed on the fly).
    limit : int, optional
        Read only the first ``limit`` words (>= 0; 0 gives no words).

    Returns
    -------
    WordVectors
        float32 vectors.
    """
    limit = _check_limit(limit)
    with _reading(path) as f:
        n, dim = _parse_header(_first_line(f, path), path)
        want = n if limit is None else min(n, limit)
        buf, words, offsets, pos = _scan_binary(f, want, dim, n, path)
        if want == n:
            _check_no_more(f, path, n, bytes(buf[pos:]))
    vectors = _gather_float32(buf, offsets, dim)
    return WordVectors(_decode_words(words, path, 2), vectors)


def write_word2vec_binary(wv: WordVectors, path: PathLike) -> None:
    """Write ``wv`` as word2vec binary (float32, ``"\\n"`` after each vector).

    Parameters
    ----------
    wv, path
        As in `write_word2vec_text`.
    """
    _check_words(wv.words)
    data = np.ascontiguousarray(wv.vectors, dtype="<f4")
    nbytes = 4 * data.shape[1]
    with _open(path, "wb") as f:
        f.write(f"{len(wv)} {data.shape[1]}\n".encode())
        for s in range(0, len(wv), _CHUNK):
            block = data[s : s + _CHUNK].tobytes()
            f.write(b"".join(
                w.encode("utf-8") + b" " + block[i * nbytes : (i + 1) * nbytes] + b"\n"
                for i, w in enumerate(wv.words[s : s + _CHUNK])
            ))


def sniff_format(path: PathLike) -> str:
    """The format of a word-vector file: "word2vec_binary", "word2vec_text" or
    "glove" (no header line); ``ValueError`` for an empty or corrupt file."""
    with _reading(path) as f:
        parts = _first_line(f, path).split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            return "glove"
        dim = int(parts[1])
        head = f.read(4 * dim + 4096)
    space = head.find(b" ")
    values = head[space + 1 : space + 1 + 4 * dim].split(b"\n", 1)[0]
    if space < 0 or (values and not values.translate(None, _NUMBER_BYTES)):
        return "word2vec_text"
    return "word2vec_binary"


def load_word_vectors(source: Any, format: str = "auto",
                      limit: int | None = None) -> WordVectors:
    """Load word vectors from a file, a gensim ``KeyedVectors`` or ``WordVectors``.

    Parameters
    ----------
    source : str, path-like, gensim KeyedVectors or WordVectors
        Where the vectors are.
    format : {"auto", "word2vec_text", "word2vec_binary", "glove"}, default "auto"
        File format; "auto" sniffs it (header line? binary values after it?).
    limit : int, optional
        Keep only the first ``limit`` words (>= 0; 0 gives no words).

    Returns
    -------
    WordVectors

    Examples
    --------
    >>> import tempfile; path = tempfile.mkdtemp() + "/vectors.bin"
    >>> write_word2vec_binary(WordVectors(list("abc"), np.eye(3, dtype="f4")), path)
    >>> sniff_format(path), load_word_vectors(path, limit=2).words
    ('word2vec_binary', ['a', 'b'])
    """
    limit = _check_limit(limit)
    if isinstance(source, WordVectors):
        return source if limit is None else source.most_frequent(limit)
    if hasattr(source, "index_to_key") and hasattr(source, "vectors"):
        words = list(source.index_to_key[:limit])
        return WordVectors(words, np.array(source.vectors[: len(words)]))
    readers = {"word2vec_text": read_word2vec_text, "glove": read_glove_text,
               "word2vec_binary": read_word2vec_binary}
    fmt = sniff_format(source) if format == "auto" else format
    if fmt not in readers:
        raise ValueError(f"format must be 'auto' or one of {sorted(readers)}, "
                         f"got {format!r}")
    return readers[fmt](source, limit=limit)
