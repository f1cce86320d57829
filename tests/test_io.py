"""save/load (safetensors + JSON): every estimator, file checks, devices."""

import json
import pickle

import numpy as np
import pytest
import torch

from sparsecode import (
    DictionaryLearning,
    MiniBatchDictionaryLearning,
    SparseAutoencoder,
    SparseCoder,
    Transcoder,
    load,
    save,
)
from sparsecode.nn import ACTIVATIONS

RNG = np.random.RandomState(0)
X = RNG.randn(200, 6).astype(np.float32)


def _sae(activation, **kw):
    return SparseAutoencoder(n_components=12, activation=activation, k=3, max_iter=2,
                             batch_size=64, random_state=0, device="cpu",
                             **kw).fit(X)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_save_load_transform_identical(tmp_path, activation):
    est = _sae(activation)
    save(est, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json", "model.safetensors"]
    back = load(tmp_path / "m")
    assert type(back) is SparseAutoencoder and back.get_params() == est.get_params()
    np.testing.assert_array_equal(back.transform(X), est.transform(X))
    np.testing.assert_array_equal(back.components_, est.components_)
    np.testing.assert_array_equal(back.inverse_transform(back.transform(X)),
                                  est.inverse_transform(est.transform(X)))
    assert back.history_ == est.history_ and back.n_steps_ == est.n_steps_
    assert back.module_.W_dec.device.type == "cpu"
    back.partial_fit(X)  # a loaded model keeps training (fresh Adam state)
    assert back.n_steps_ == est.n_steps_ + 4


def test_cuda_trained_state_loads_on_cpu(tmp_path):
    est = _sae("topk")
    state = est.__getstate__()
    assert all(t.device.type == "cpu" for t in state["_state"].__getstate__()[
        "model"].state_dict().values())
    state["_device"] = "cuda:0"  # as pickled on a GPU machine
    clone = SparseAutoencoder.__new__(SparseAutoencoder)
    clone.__setstate__(pickle.loads(pickle.dumps(state)))
    expected_device = "cuda" if torch.cuda.is_available() else "cpu"
    assert clone._device.type == expected_device
    if expected_device == "cpu":
        np.testing.assert_array_equal(clone.transform(X), est.transform(X))
    save(est, tmp_path / "m")
    assert load(tmp_path / "m").module_.W_enc.device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            load(tmp_path / "m", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_real_cuda_model_loads_on_cpu(tmp_path):
    est = SparseAutoencoder(n_components=12, k=3, max_iter=2, batch_size=64,
                            random_state=0, device="cuda").fit(X)
    save(est, tmp_path / "m")
    back = load(tmp_path / "m")
    np.testing.assert_allclose(back.transform(X), est.transform(X), atol=1e-5)
    unpickled = pickle.loads(pickle.dumps(est))
    assert unpickled.module_.W_dec.is_cuda == torch.cuda.is_available()


@pytest.mark.parametrize("est", [
    DictionaryLearning(n_components=4, max_iter=3, random_state=0, device="cpu"),
    MiniBatchDictionaryLearning(n_components=4, max_iter=2, random_state=0,
                                device="cpu"),
    SparseCoder(RNG.randn(4, 6), transform_algorithm="lasso_lars", device="cpu"),
])
def test_classic_estimators_round_trip(tmp_path, est):
    est.fit(X.astype(np.float64))
    save(est, tmp_path / "c")
    back = load(tmp_path / "c")
    assert type(back) is type(est)
    np.testing.assert_array_equal(back.transform(X), est.transform(X))
    for name in ("components_", "n_iter_", "n_features_in_"):
        if hasattr(est, name):
            np.testing.assert_array_equal(getattr(back, name), getattr(est, name))


def test_an_unfitted_sparse_coder_saves_and_loads(tmp_path):
    # SparseCoder is stateless: it transforms without fit, so save accepts it
    # unfitted and load must give it back
    coder = SparseCoder(RNG.randn(4, 6), transform_algorithm="omp",
                        transform_n_nonzero_coefs=2, device="cpu")
    back = load(save(coder, tmp_path / "c"))
    np.testing.assert_array_equal(back.transform(X), coder.transform(X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_minibatch_partial_fit_continues_after_save_load(tmp_path, dtype):
    # a saved MiniBatchDictionaryLearning goes on learning exactly as if it had
    # never been saved: online statistics, step count, early-stopping state and
    # the generator (used to resample unused atoms) all survive the round trip
    Xb = RNG.randn(120, 6).astype(dtype)

    def make():
        return MiniBatchDictionaryLearning(n_components=10, alpha=0.3,
                                           random_state=0, device="cpu")

    ref, est = make(), make()
    for lo in (0, 40):
        ref.partial_fit(Xb[lo:lo + 40])
        est.partial_fit(Xb[lo:lo + 40])
    save(est, tmp_path / "m")
    back = load(tmp_path / "m")
    ref.partial_fit(Xb[80:])
    back.partial_fit(Xb[80:])
    assert back.n_steps_ == ref.n_steps_ == 3
    assert back.components_.dtype == dtype
    np.testing.assert_array_equal(back.components_, ref.components_)
    np.testing.assert_array_equal(back._A.numpy(), ref._A.numpy())
    # and a generator draw after loading equals the one without the round trip
    assert torch.equal(torch.rand(3, generator=back._gen),
                       torch.rand(3, generator=ref._gen))


def test_load_validates_files(tmp_path):
    est = _sae("relu")
    path = save(est, tmp_path / "m")
    cfg = json.loads((path / "config.json").read_text())
    good = json.dumps(cfg)

    def rewrite(change):
        c = json.loads(good)
        change(c)
        (path / "config.json").write_text(json.dumps(c))

    rewrite(lambda c: c["tensors"]["module.W_enc"][0].__setitem__(0, 99))
    with pytest.raises(ValueError, match="shape"):
        load(path)
    rewrite(lambda c: c.__setitem__("class", "Popen"))
    with pytest.raises(ValueError, match="not a sparsecode estimator"):
        load(path)
    rewrite(lambda c: c["tensors"].pop("module.b_pre"))
    with pytest.raises(ValueError, match="do not match"):
        load(path)
    rewrite(lambda c: c["module"].__setitem__("n_components", 13))
    with pytest.raises(ValueError, match="module n_components is 13"):
        load(path)
    rewrite(lambda c: c.__setitem__("format", "pickle"))
    with pytest.raises(ValueError, match="not a sparsecode model"):
        load(path)
    with pytest.raises(TypeError):
        save(object(), tmp_path / "x")
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        save(est, tmp_path / "user")
    rewrite(lambda c: None)
    save(_sae("topk"), path)  # replacing a saved model is fine and leaves no temp
    assert load(path).activation == "topk"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "user"]



# ------------------------------------------------------------ malformed files
def _broken(path, change):
    cfg = json.loads((path / "config.json").read_text())
    change(cfg)
    (path / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("change, match", [
    (lambda c: c.pop("module"), "lacks the key 'module'"),
    (lambda c: c.pop("params"), "lacks the key 'params'"),
    (lambda c: c.pop("fitted"), "lacks the key 'fitted'"),
    (lambda c: c.pop("class"), "lacks the key 'class'"),
    (lambda c: c.pop("tensors"), "lacks the key 'tensors'"),
    (lambda c: c.__setitem__("params", [1]), "'params' must be a JSON object"),
    (lambda c: c.__setitem__("class", 3), "'class' must be a JSON string"),
    (lambda c: c["tensors"].__setitem__("module.b_pre", "6"), "module.b_pre"),
    (lambda c: c["params"].__setitem__("no_such_param", 1), "no_such_param"),
    (lambda c: c["module"].pop("n_features"), "n_features"),
    (lambda c: c["module"].__setitem__("activation", "nope"), "nope"),
    (lambda c: c.__setitem__("dtype", "os"), "dtype"),
    (lambda c: c["fitted"].__setitem__("x_", {"__tensor__": "gone"}), "gone"),
    (lambda c: c["tensors"]["module.W_enc"].__setitem__(1, "torch.int64"), "dtype"),
])
def test_load_names_the_file_of_a_malformed_config(tmp_path, change, match):
    path = save(_sae("topk"), tmp_path / "m")
    _broken(path, change)
    with pytest.raises(ValueError, match=rf"config\.json.*{match}|{match}.*config"):
        load(path)


def test_load_names_the_file_of_malformed_files(tmp_path):
    path = save(_sae("topk"), tmp_path / "m")
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model\.safetensors.*truncated"):
        load(path)
    (path / "model.safetensors").write_bytes(data)
    good = (path / "config.json").read_text()
    for text, match in (("[1, 2]", "JSON object"), ("{not json", "not a valid JSON")):
        (path / "config.json").write_text(text)
        with pytest.raises(ValueError, match=rf"config\.json.*{match}"):
            load(path)
    (path / "config.json").write_text(good)
    assert load(path).n_features_in_ == 6  # (the files were fine otherwise)
    (path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load(path)


def test_metadata_round_trips(tmp_path):
    est = _sae("topk")
    est.metadata_ = {"hook_name": "blocks.1.hook_resid_post", "layer": 1,
                     "kwargs": {"a": [1, None]}, "prepend_bos": False}
    back = load(save(est, tmp_path / "m"))
    assert back.metadata_ == est.metadata_


@pytest.mark.parametrize("skip_connection", [False, True])
def test_transcoder_round_trips(tmp_path, skip_connection):
    Y = np.maximum(X @ RNG.randn(6, 5), 0).astype(np.float32)
    tc = Transcoder(n_components=12, k=3, max_iter=2, batch_size=64, random_state=0,
                    device="cpu", skip_connection=skip_connection).fit(X, Y)
    back = load(save(tc, tmp_path / "t"))
    assert type(back) is Transcoder and back.n_outputs_ == 5
    np.testing.assert_array_equal(back.predict(X), tc.predict(X))
    np.testing.assert_array_equal(back.transform(X), tc.transform(X))
