"""DictionaryLearning, MiniBatchDictionaryLearning, SparseCoder: parity and API."""

import pickle

import numpy as np
import pytest
import torch
from sklearn import decomposition as skd
from sklearn.datasets import make_sparse_coded_signal
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sparsecode import (
    DictionaryLearning,
    MiniBatchDictionaryLearning,
    SparseCoder,
    sparse_encode,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)


@pytest.fixture(scope="module")
def signal():
    X, _, _ = make_sparse_coded_signal(
        n_samples=30, n_components=15, n_features=20, n_nonzero_coefs=10,
        random_state=42,
    )
    return X


def _objective(X, V, alpha):
    """Training objective with exact lasso codes for the dictionary V."""
    U = sparse_encode(X, V, algorithm="lasso_lars", alpha=alpha)
    return 0.5 * ((X - U @ V) ** 2).sum() + alpha * np.abs(U).sum()


def test_docstring_example_bands(signal):
    """sklearn's documented example: ~52% zero codes, mean relative error ~0.05."""
    dl = DictionaryLearning(15, transform_algorithm="lasso_lars", transform_alpha=0.1,
                            random_state=42, device="cpu")
    codes = dl.fit(signal).transform(signal)
    err = np.mean(np.sum((signal - codes @ dl.components_) ** 2, 1)
                  / np.sum(signal**2, 1))
    assert 0.4 < np.mean(codes == 0) < 0.65
    assert 0.02 < err < 0.08


def test_dictionary_learning_objective_parity(signal, china_patches):
    for X, k in ((signal, 15), (china_patches[:400], 24)):
        ours = DictionaryLearning(k, alpha=1.0, max_iter=30, random_state=0,
                                  device="cpu").fit(X)
        ref = skd.DictionaryLearning(k, alpha=1.0, max_iter=30, random_state=0).fit(X)
        assert ours.error_[-1] <= 1.01 * ref.error_[-1]
        assert _objective(X, ours.components_, 1.0) <= 1.01 * _objective(
            X, ref.components_, 1.0
        )


def test_minibatch_objective_parity(china_patches):
    X = china_patches[:1500]
    kw = dict(n_components=32, alpha=1.0, batch_size=64, max_iter=3, random_state=0)
    ours = MiniBatchDictionaryLearning(**kw, device="cpu").fit(X)
    ref = skd.MiniBatchDictionaryLearning(**kw).fit(X)
    assert _objective(X, ours.components_, 1.0) <= 1.01 * _objective(
        X, ref.components_, 1.0
    )
    assert ours.n_steps_ >= 1 and ours.n_iter_ == np.ceil(ours.n_steps_ / 24)


def test_fit_equals_repeated_partial_fit_minibatch(china_patches):
    X = china_patches[:256]
    V0 = np.random.RandomState(0).randn(16, 64)
    kw = dict(n_components=16, alpha=1.0, batch_size=64, dict_init=V0, shuffle=False,
              random_state=0, device="cpu")
    full = MiniBatchDictionaryLearning(**kw, max_iter=1, tol=0,
                                       max_no_improvement=None).fit(X)
    part = MiniBatchDictionaryLearning(**kw)
    for lo in range(0, 256, 64):
        part.partial_fit(X[lo:lo + 64])
    np.testing.assert_allclose(part.components_, full.components_, atol=1e-10)
    assert part.n_steps_ == full.n_steps_ == 4


def test_fit_equals_repeated_partial_fit_batch(signal):
    full = DictionaryLearning(10, max_iter=4, tol=0, random_state=0,
                              device="cpu").fit(signal)
    part = DictionaryLearning(10, random_state=0, device="cpu")
    for _ in range(4):
        part.partial_fit(signal)
    np.testing.assert_allclose(part.components_, full.components_, atol=1e-10)
    assert part.n_iter_ == full.n_iter_ == 4


@pytest.mark.parametrize("Est", [DictionaryLearning, MiniBatchDictionaryLearning])
def test_float32_preserved_and_atoms_in_unit_ball(Est, signal):
    X = signal.astype(np.float32)
    est = Est(8, max_iter=3, random_state=0, device="cpu").fit(X)
    assert est.components_.dtype == np.float32
    assert est.transform(X).dtype == np.float32
    assert np.all(np.linalg.norm(est.components_, axis=1) <= 1 + 1e-5)


def test_tensor_in_tensor_out(signal):
    est = MiniBatchDictionaryLearning(8, max_iter=2, random_state=0,
                                      device="cpu").fit(signal)
    Xt = torch.as_tensor(signal, dtype=torch.float32)
    codes = est.transform(Xt)
    assert isinstance(codes, torch.Tensor) and codes.dtype == torch.float32
    np.testing.assert_allclose(codes.numpy(), est.transform(signal), atol=1e-4)
    back = est.inverse_transform(codes)
    assert isinstance(back, torch.Tensor) and back.shape == Xt.shape


def test_positive_options_and_split_sign(signal):
    est = DictionaryLearning(8, max_iter=5, positive_code=True, positive_dict=True,
                             fit_algorithm="cd", transform_algorithm="lasso_cd",
                             random_state=0, device="cpu").fit(np.abs(signal))
    assert (est.components_ >= 0).all()
    assert (est.transform(np.abs(signal)) >= 0).all()
    split = DictionaryLearning(8, max_iter=5, split_sign=True, random_state=0,
                               transform_algorithm="lasso_lars", device="cpu")
    codes = split.fit(signal).transform(signal)
    assert codes.shape == (30, 16) and (codes >= 0).all()
    assert len(split.get_feature_names_out()) == 16
    plain = split.inverse_transform(codes)
    ref = (codes[:, :8] - codes[:, 8:]) @ split.components_
    np.testing.assert_allclose(plain, ref)


def test_unused_atoms_are_resampled():
    X = np.random.RandomState(0).randn(50, 5)
    V0 = np.zeros((6, 5))  # all atoms unused: A_kk == 0
    est = MiniBatchDictionaryLearning(6, dict_init=V0, batch_size=50, max_iter=1,
                                      random_state=0, device="cpu").partial_fit(X)
    assert (np.linalg.norm(est.components_, axis=1) > 0.5).all()


def test_callback_is_called(signal):
    seen = []
    DictionaryLearning(5, max_iter=11, tol=0, callback=seen.append, random_state=0,
                       device="cpu").fit(signal)
    assert [c["ii"] for c in seen] == [0, 5, 10]


def test_pickle_roundtrip(signal):
    est = MiniBatchDictionaryLearning(8, max_iter=2, random_state=0,
                                      device="cpu").fit(signal)
    clone = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(clone.transform(signal), est.transform(signal))
    clone.partial_fit(signal)  # the online state survived the round trip
    assert clone.n_steps_ == est.n_steps_ + 1


def test_sparse_coder_matches_sparse_encode(signal):
    V = np.random.RandomState(1).randn(12, 20)
    coder = SparseCoder(V, transform_algorithm="lasso_lars", transform_alpha=0.5,
                        device="cpu")
    np.testing.assert_allclose(
        coder.transform(signal),
        sparse_encode(signal, V, algorithm="lasso_lars", alpha=0.5),
    )


def test_pipeline_and_grid_search(signal):
    pipe = make_pipeline(
        StandardScaler(),
        MiniBatchDictionaryLearning(6, max_iter=2, transform_algorithm="lasso_lars",
                                    random_state=0, device="cpu"),
    )
    grid = GridSearchCV(pipe, {"minibatchdictionarylearning__alpha": [0.1, 10.0]},
                        cv=2, scoring=lambda est, X, y=None: -np.abs(
                            est.transform(X)).sum())
    grid.fit(signal)
    assert grid.best_params_["minibatchdictionarylearning__alpha"] == 10.0


@pytest.mark.parametrize(
    "make, X, match, exc",
    [
        (lambda: DictionaryLearning(-1), "ok", "n_components", ValueError),
        (lambda: DictionaryLearning(3, fit_algorithm="nope"), "ok", "fit_algorithm",
         ValueError),
        (lambda: MiniBatchDictionaryLearning(3, transform_algorithm="nope"), "ok",
         "transform_algorithm", ValueError),
        (lambda: DictionaryLearning(3, device="tpu9"), "ok", "device", ValueError),
        (lambda: DictionaryLearning(3), "nan", "NaN", ValueError),
        (lambda: DictionaryLearning(3), "inf", "infinity", ValueError),
        (lambda: DictionaryLearning(3), "empty", "0 sample", ValueError),
        (lambda: DictionaryLearning(3), "1d", "2D array", ValueError),
        (lambda: DictionaryLearning(3), "sparse", "sparse", TypeError),
    ],
)
def test_bad_input_clear_errors(make, X, match, exc):
    import scipy.sparse as sp

    data = {
        "ok": np.random.RandomState(0).randn(10, 4),
        "nan": np.array([[np.nan, 1.0], [1.0, 2.0]]),
        "inf": np.array([[np.inf, 1.0], [1.0, 2.0]]),
        "empty": np.zeros((0, 3)),
        "1d": np.ones(5),
        "sparse": sp.random(5, 4, density=0.5, format="csr"),
    }[X]
    est = make()
    if est.device == "auto":
        est.set_params(device="cpu")
    with pytest.raises(exc, match=match):
        est.fit(data)


def test_positive_with_greedy_transform_is_rejected(signal):
    est = MiniBatchDictionaryLearning(3, max_iter=1, transform_algorithm="omp",
                                      fit_algorithm="cd", positive_code=True,
                                      random_state=0, device="cpu").fit(signal)
    with pytest.raises(ValueError, match="Positive constraint not supported"):
        est.transform(signal)


@pytest.mark.parametrize("cls", [DictionaryLearning, MiniBatchDictionaryLearning])
def test_positive_codes_with_the_lars_name_are_refused_as_sklearn_does(cls, signal):
    # scikit-learn refuses positive_code with fit_algorithm="lars" (by name);
    # "cd" is the same exact solver here and takes positive codes
    with pytest.raises(ValueError, match="'lars' coding method; use fit_algorithm"):
        cls(3, max_iter=1, positive_code=True, random_state=0, device="cpu").fit(signal)
    est = cls(3, max_iter=1, positive_code=True, fit_algorithm="cd",
              transform_algorithm="lasso_lars", random_state=0,
              device="cpu").fit(np.abs(signal))
    assert (est.transform(np.abs(signal)) >= 0).all()


def test_wrong_n_features_in_transform(signal):
    est = DictionaryLearning(5, max_iter=2, random_state=0, device="cpu").fit(signal)
    with pytest.raises(ValueError, match="features"):
        est.transform(signal[:, :7])
    with pytest.raises(ValueError, match="features"):
        est.transform(torch.zeros(3, 7))
    with pytest.raises(ValueError, match="number of components"):
        est.inverse_transform(np.zeros((3, 4)))


def test_fits_and_encodes_run_on_one_thread_and_restore_the_setting():
    """On the CPU the dictionary family runs torch on one intra-op thread (robust
    when another process shares the cores) and leaves the user's setting as it
    was, also when several threads encode at once."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.RandomState(0)
    X = rng.randn(300, 8)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        MiniBatchDictionaryLearning(
            6, batch_size=50, max_iter=1, random_state=0, device="cpu",
            callback=lambda info: seen.append(torch.get_num_threads())).fit(X)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
        V = rng.randn(6, 8)
        with ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(lambda i: sparse_encode(X, V, alpha=0.5, n_jobs=2),
                                  range(8)))
        assert all(np.array_equal(c, codes[0]) for c in codes)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
