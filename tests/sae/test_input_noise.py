"""`SparseAutoencoder(input_noise=...)`: a denoising sparse autoencoder."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone

import sparsecode
from sparsecode import SparseAutoencoder, Transcoder
from sparsecode.sae import TrainConfig


def _toy(seed, n=2500, d=32, m=16, k=3):
    """Sparse non-negative mixtures of ``m`` random unit atoms in ``d`` dims."""
    rng = np.random.RandomState(seed)
    atoms = rng.randn(m, d)
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    codes = np.zeros((n, m))
    rows = np.argsort(rng.rand(n, m), axis=1)[:, :k]
    np.put_along_axis(codes, rows, rng.rand(n, k) + 0.5, axis=1)
    return (codes @ atoms).astype(np.float32), rng


@pytest.fixture(scope="module")
def X():
    return _toy(0, n=400, d=12)[0]


def _sae(**kw):
    return SparseAutoencoder(24, **({"k": 3, "max_iter": 3, "random_state": 0} | kw))


def test_default_is_zero_and_identical_to_explicit_zero(X):
    assert SparseAutoencoder().get_params()["input_noise"] == 0.0
    ref = _sae().fit(X).components_
    for value in (0.0, 0):
        np.testing.assert_array_equal(_sae(input_noise=value).fit(X).components_, ref)


def test_noise_changes_weights_and_is_reproducible(X):
    clean = _sae().fit(X)
    a = _sae(input_noise=0.3).fit(X)
    b = _sae(input_noise=0.3).fit(X)
    assert not np.allclose(a.components_, clean.components_, atol=1e-4)
    np.testing.assert_array_equal(a.components_, b.components_)


def test_transform_never_adds_noise(X):
    sae = _sae(input_noise=0.5).fit(X)
    np.testing.assert_array_equal(sae.transform(X), sae.transform(X))
    np.testing.assert_array_equal(sae.transform(X[:7]), sae.transform(X)[:7])
    assert np.isfinite(sae.score(X))


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), True, "0.1"])
def test_bad_input_noise_is_refused(X, value):
    with pytest.raises((ValueError, TypeError), match="input_noise"):
        _sae(input_noise=value).fit(X)


def test_train_config_checks_input_noise():
    assert TrainConfig(learning_rate=1e-3).input_noise == 0.0
    with pytest.raises(ValueError, match="input_noise"):
        TrainConfig(learning_rate=1e-3, input_noise=-1.0)


def test_save_load_clone_pickle_keep_it(X, tmp_path):
    sae = _sae(input_noise=0.25).fit(X)
    loaded = sparsecode.load(sparsecode.save(sae, tmp_path / "sae"))
    assert loaded.get_params()["input_noise"] == 0.25
    np.testing.assert_allclose(loaded.transform(X), sae.transform(X), atol=1e-6)
    assert clone(sae).input_noise == 0.25
    assert pickle.loads(pickle.dumps(sae)).input_noise == 0.25


def test_partial_fit_with_noise(X):
    sae = _sae(input_noise=0.3)
    before = sae.partial_fit(X).components_.copy()
    after = sae.partial_fit(X).components_
    assert not np.allclose(before, after) and np.isfinite(after).all()


def test_resumed_run_draws_the_same_noise(X, tmp_path):
    full = _sae(input_noise=0.3).fit(X)
    stop = _sae(input_noise=0.3, checkpoint_dir=tmp_path,
                callback=lambda e: e["step"] >= 2, log_every=1)
    done = stop.fit(X).n_steps_
    assert done < full.n_steps_
    seen = []  # the resumed run logs only the steps after the checkpoint
    resumed = _sae(input_noise=0.3, checkpoint_dir=tmp_path, log_every=1,
                   callback=lambda e: seen.append(e["step"])).fit(X)
    assert resumed.n_steps_ == full.n_steps_ and min(seen) == done + 1
    np.testing.assert_allclose(resumed.components_, full.components_, atol=1e-6)


def test_transcoder_supports_it(X):
    Y = np.maximum(X @ np.random.RandomState(1).randn(12, 5), 0).astype(np.float32)
    kw = dict(k=3, max_iter=3, random_state=0, skip_connection=True)
    clean = Transcoder(16, **kw).fit(X, Y).components_
    a = Transcoder(16, input_noise=0.3, **kw).fit(X, Y).components_
    b = Transcoder(16, input_noise=0.3, **kw).fit(X, Y).components_
    assert not np.allclose(a, clean, atol=1e-4)
    np.testing.assert_array_equal(a, b)


def test_denoising_reconstructs_noisy_inputs_closer_to_clean_ones():
    ratios = []
    for seed in range(3):
        data, rng = _toy(seed)
        train, test = data[:2000], data[2000:]
        rms = np.sqrt((train ** 2).mean())  # noise in units of the normalised input
        noisy = test + 0.5 * rms * rng.randn(*test.shape).astype(np.float32)
        errs = []
        for noise in (0.0, 0.5):
            sae = SparseAutoencoder(32, k=3, max_iter=20, input_noise=noise,
                                    random_state=seed).fit(train)
            rec = sae.inverse_transform(sae.transform(noisy))
            errs.append(((rec - test) ** 2).sum())
        assert errs[1] < 0.95 * errs[0], (seed, errs)
        ratios.append(errs[1] / errs[0])
    assert np.mean(ratios) < 0.85, ratios
