"""Transcoder: codes of X trained to reconstruct Y (synthetic and MiniLM MLPs)."""

import numpy as np
import pytest
import torch

from sparsecode import Transcoder, load, save
from sparsecode.metrics import fvu, l0, mmcs
from sparsecode.nn import ACTIVATIONS


def _pairs(seed, n=3000, d_in=16, d_out=10, m=24, k=3, noise=0.01):
    """X and Y both linear in the same k-sparse codes S: X = S F, Y = S G."""
    rng = np.random.RandomState(seed)
    F = rng.randn(m, d_in)
    G = rng.randn(m, d_out)
    F /= np.linalg.norm(F, axis=1, keepdims=True)
    G /= np.linalg.norm(G, axis=1, keepdims=True)
    S = np.zeros((n, m))
    for row in S:
        row[rng.choice(m, k, replace=False)] = rng.uniform(0.5, 2.0, k)
    X = S @ F + noise * rng.randn(n, d_in)
    Y = S @ G + noise * rng.randn(n, d_out)
    return X.astype(np.float32), Y.astype(np.float32), G


@pytest.mark.parametrize("seed", [0, 1])
def test_transcoder_recovers_the_generating_output_features(seed):
    X, Y, G = _pairs(seed)
    tc = Transcoder(48, k=3, max_iter=60, random_state=seed, device="cpu")
    tc.fit(X[:2500], Y[:2500])
    assert tc.components_.shape == (48, 10) and tc.n_outputs_ == 10
    assert mmcs(G, tc.components_) >= 0.9
    assert -tc.score(X[2500:], Y[2500:]) < 0.15


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_trains_as_a_transcoder(activation):
    X, Y, G = _pairs(0)
    params = {"k": 3} if ACTIVATIONS[activation].takes_k else {}
    tc = Transcoder(48, activation=activation, max_iter=60, random_state=0,
                    device="cpu", **params).fit(X[:2500], Y[:2500])
    codes = tc.transform(X[2500:])
    assert codes.shape == (500, 48) and (codes >= 0).all()
    assert 1 <= l0(codes) <= 12
    assert fvu(Y[2500:], tc.predict(X[2500:])) < 0.3
    # the decoder maps codes to Y, not to X
    assert mmcs(G, tc.components_) >= 0.75


def test_skip_connection_takes_the_linear_part_of_y():
    rng = np.random.RandomState(0)
    X, Y_sparse, _ = _pairs(1, noise=0.0)
    A = rng.randn(16, 10).astype(np.float32)
    Y = X @ A + Y_sparse
    kw = {"k": 3, "max_iter": 60, "random_state": 0, "device": "cpu"}
    with_skip = Transcoder(48, skip_connection=True, **kw).fit(X[:2500], Y[:2500])
    without = Transcoder(48, **kw).fit(X[:2500], Y[:2500])
    err_skip = fvu(Y[2500:], with_skip.predict(X[2500:]))
    err = fvu(Y[2500:], without.predict(X[2500:]))
    assert err_skip < 0.05 and err_skip < err / 2
    assert np.abs(with_skip.module_.W_skip.detach().numpy()).max() > 0.1
    # inverse_transform decodes the codes alone (no skip term)
    codes = with_skip.transform(X[2500:])
    assert not np.allclose(with_skip.inverse_transform(codes),
                           with_skip.predict(X[2500:]), atol=1e-3)


def test_inputs_targets_and_errors():
    X, Y, _ = _pairs(2, n=600)
    tc = Transcoder(12, k=2, max_iter=2, random_state=0, device="cpu")
    with pytest.raises(ValueError, match="requires y"):
        tc.fit(X)
    with pytest.raises(ValueError, match="600 samples but Y has 599"):
        tc.fit(X, Y[:-1])
    with pytest.raises(ValueError, match="NaN"):
        tc.fit(X, np.where(Y > 1, np.nan, Y))
    tc.fit(X, Y[:, 0])  # 1-D y: one output, 1-D predictions
    assert tc.n_outputs_ == 1 and tc.predict(X).shape == (600,)
    tc.fit(X, Y)
    with pytest.raises(ValueError, match="Y has 9 columns"):
        tc.partial_fit(X, Y[:, :9])
    with pytest.raises(ValueError, match="X has 15 features"):
        tc.predict(X[:, :15])
    # tensors in, tensors out
    out = tc.predict(torch.from_numpy(X))
    assert isinstance(out, torch.Tensor) and out.shape == (600, 10)
    np.testing.assert_allclose(out.numpy(), tc.predict(X), rtol=1e-6)


def test_partial_fit_goes_on_and_save_load_round_trips(tmp_path):
    X, Y, _ = _pairs(3, n=1000)
    tc = Transcoder(24, k=3, skip_connection=True, max_iter=3, random_state=0,
                    device="cpu")
    tc.partial_fit(X, Y)
    before = tc.score(X, Y)
    for _ in range(10):
        tc.partial_fit(X, Y)
    assert tc.n_iter_ == 11 and tc.score(X, Y) > before
    back = load(save(tc, tmp_path / "tc"))
    assert isinstance(back, Transcoder) and back.skip_connection
    np.testing.assert_array_equal(back.predict(X), tc.predict(X))
    np.testing.assert_array_equal(back.transform(X), tc.transform(X))


def test_checkpoint_resume_gives_the_uninterrupted_weights(tmp_path):
    X, Y, _ = _pairs(4, n=1200)
    kw = {"k": 3, "max_iter": 4, "random_state": 0, "device": "cpu",
          "checkpoint_every": 7}
    full = Transcoder(24, **kw).fit(X, Y)

    def stop(entry):
        return entry["step"] >= 10

    Transcoder(24, checkpoint_dir=tmp_path, callback=stop, log_every=5,
               **kw).fit(X, Y)
    resumed = Transcoder(24, checkpoint_dir=tmp_path, **kw).fit(X, Y)
    assert resumed.n_steps_ == full.n_steps_
    np.testing.assert_allclose(resumed.components_, full.components_, atol=1e-6)
