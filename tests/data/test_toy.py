"""Tests for the superposition toy-data generator (Sharkey et al. 2022)."""

import numpy as np
import pytest

from sparsecode.data.toy import make_superposition

N = 20_000  # samples for the statistical checks


def _generate(**kwargs):
    params = dict(
        n_samples=N,
        n_features=8,
        n_true=12,
        mean_active=3.0,
        decay=0.8,
        random_state=0,
        return_probs=True,
        return_codes=True,
    )
    params.update(kwargs)
    return make_superposition(**params)


def _binomial_tol(p, n=N, n_sigma=5.0):
    return n_sigma * np.sqrt(p * (1 - p) / n) + 1e-12


def test_shapes_dtypes_and_unit_features():
    X, features = make_superposition(100, 5, 9, mean_active=2, random_state=0)
    assert X.shape == (100, 5) and features.shape == (9, 5)
    assert X.dtype == np.float32 and features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-6)
    X64, f64, probs, codes = _generate(n_samples=50, dtype=np.float64)
    assert X64.dtype == f64.dtype == codes.dtype == np.float64
    assert probs.shape == (12,) and codes.shape == (50, 12)


def test_x_equals_codes_times_features():
    X, features, _, codes = _generate(n_samples=500, dtype=np.float64)
    np.testing.assert_allclose(X, codes @ features, rtol=1e-12, atol=1e-12)
    X32, f32, _, c32 = _generate(n_samples=500)
    np.testing.assert_allclose(X32, c32 @ f32, rtol=1e-4, atol=1e-5)


def test_deterministic_with_random_state():
    a = _generate(n_samples=200, correlated=True)
    b = _generate(n_samples=200, correlated=True)
    c = _generate(n_samples=200, correlated=True, random_state=1)
    for left, right in zip(a, b, strict=True):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(a[0], c[0])
    rs = np.random.RandomState(0)
    d = make_superposition(200, 8, 12, mean_active=3, decay=0.8, random_state=rs)
    e = _generate(n_samples=200)
    np.testing.assert_array_equal(d[0], e[0])  # same stream as the int seed


def test_probabilities_decay_and_sum():
    *_, probs, _ = _generate(n_samples=1)
    assert probs.sum() == pytest.approx(3.0)
    np.testing.assert_allclose(probs[1:] / probs[:-1], 0.8)


def test_probabilities_clipped_keep_mean():
    # Plain rescaling would give p_0 > 1; the top features are clipped to 1 and
    # the rest rescaled so the expected number of active features stays 8.
    *_, probs, codes = _generate(n_true=10, mean_active=8.0, decay=0.5)
    assert probs.max() == 1.0
    assert probs.sum() == pytest.approx(8.0)
    assert np.all(np.diff(probs) <= 0)
    always = probs == 1.0
    assert always.sum() >= 1
    assert np.all(codes[:, always] > 0)


def test_equal_probabilities_when_no_decay():
    *_, probs, _ = _generate(n_samples=1, decay=1.0)
    np.testing.assert_allclose(probs, 3.0 / 12)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"correlated": True, "correlation": 0.9},
        {"correlated": True, "correlation": -0.9},
    ],
    ids=["independent", "positive", "negative"],
)
def test_empirical_activation_probabilities(kwargs):
    *_, probs, codes = _generate(**kwargs)
    freq = (codes > 0).mean(axis=0)
    assert np.all(np.abs(freq - probs) <= _binomial_tol(probs))


def test_mean_number_active():
    *_, probs, codes = _generate(mean_active=4.0)
    counts = (codes > 0).sum(axis=1)
    # Var(count) = sum p (1 - p) for independent activations.
    tol = 5 * np.sqrt(np.sum(probs * (1 - probs)) / N)
    assert abs(counts.mean() - 4.0) <= tol


def _mean_indicator_correlation(codes):
    corr = np.corrcoef((codes > 0).T)
    return corr[~np.eye(len(corr), dtype=bool)].mean()


def test_correlation_sign_follows_parameter():
    pos = _mean_indicator_correlation(_generate(correlated=True, correlation=0.9)[3])
    neg = _mean_indicator_correlation(_generate(correlated=True, correlation=-0.9)[3])
    ind = _mean_indicator_correlation(_generate()[3])
    # Noise on the mean of 66 pair correlations from 20k samples is ~1e-3.
    assert pos > 0.015
    assert neg < -0.015
    assert abs(ind) < 0.01


def test_coefficient_distributions():
    vals = {}
    for kind in ("uniform", "exponential", "lognormal"):
        codes = _generate(coef=kind, dtype=np.float64)[3]
        vals[kind] = codes[codes != 0]
        assert np.all(vals[kind] > 0)
    assert vals["uniform"].max() <= 1.0
    assert vals["uniform"].mean() == pytest.approx(0.5, abs=0.01)
    assert vals["exponential"].mean() == pytest.approx(1.0, abs=0.03)
    assert vals["exponential"].max() > 3.0
    assert np.median(np.log(vals["lognormal"])) == pytest.approx(0.0, abs=0.03)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_samples": 0}, "n_samples"),
        ({"n_samples": 2.5}, "n_samples"),
        ({"n_features": True}, "n_features"),
        ({"n_true": 0}, "n_true"),
        ({"mean_active": 0.0}, "mean_active"),
        ({"mean_active": 13.0}, "mean_active"),
        ({"decay": 0.0}, "decay"),
        ({"decay": 1.5}, "decay"),
        ({"correlation": -1.5, "correlated": True}, "correlation"),
        ({"coef": "gaussian"}, "coef"),
        ({"dtype": np.int32}, "dtype"),
        ({"n_partners": 0, "correlated": True}, "n_partners"),
        ({"n_true": 1, "mean_active": 1.0, "correlated": True}, "n_true >= 2"),
    ],
)
def test_invalid_parameters(kwargs, match):
    params = dict(n_samples=10, n_features=4, n_true=12, random_state=0)
    params.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_superposition(**params)
