"""The functions, error messages and input handling of scikit-learn 1.9."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
from sklearn import decomposition as skd

import sparsecode as sc


@pytest.fixture
def X():
    return np.random.RandomState(0).randn(40, 8)


def _objective(X, U, V, alpha):
    return 0.5 * ((X - U @ V) ** 2).sum() + alpha * np.abs(U).sum()


@pytest.mark.parametrize("name", ["dict_learning", "dict_learning_online"])
def test_functions_have_sklearns_signature_plus_device(name):
    ours = inspect.signature(getattr(sc, name)).parameters
    theirs = inspect.signature(getattr(skd, name)).parameters
    assert list(ours)[:-1] == list(theirs)
    assert list(ours)[-1] == "device"
    for key, p in theirs.items():
        assert ours[key].default == p.default, key
        assert ours[key].kind == p.kind, key


@pytest.mark.parametrize("method", ["lars", "cd"])
def test_dict_learning_returns_what_sklearn_returns(X, method):
    out = sc.dict_learning(X, 5, alpha=0.5, method=method, random_state=0,
                           return_n_iter=True, device="cpu")
    ref = skd.dict_learning(X, 5, alpha=0.5, method=method, random_state=0,
                            return_n_iter=True)
    assert len(out) == len(ref) == 4
    U, V, errors, n_iter = out
    assert U.shape == ref[0].shape and V.shape == ref[1].shape
    assert len(errors) == n_iter and n_iter >= 2
    assert np.all(np.diff(errors) <= 1e-9 * errors[0])  # the cost never rises
    np.testing.assert_allclose(np.linalg.norm(V, axis=1), 1.0, rtol=1e-6)
    # the same alternation from the same start: the same objective as sklearn's
    assert _objective(X, U, V, 0.5) == pytest.approx(
        _objective(X, ref[0], ref[1], 0.5), rel=1e-3)
    assert errors[-1] == pytest.approx(_objective(X, U, V, 0.5), rel=1e-6)
    assert len(sc.dict_learning(X, 5, alpha=0.5, max_iter=3, device="cpu")) == 3


def test_dict_learning_online_codes_are_the_lasso_codes_of_its_dictionary(X):
    U, V = sc.dict_learning_online(X, 5, alpha=0.5, max_iter=5, batch_size=10,
                                   random_state=0, device="cpu")
    again = sc.dict_learning_online(X, 5, alpha=0.5, max_iter=5, batch_size=10,
                                    random_state=0, return_code=False, device="cpu")
    np.testing.assert_array_equal(V, again)
    np.testing.assert_allclose(
        U, sc.sparse_encode(X, V, algorithm="lasso_lars", alpha=0.5), atol=1e-8)
    est = sc.MiniBatchDictionaryLearning(5, alpha=0.5, max_iter=5, batch_size=10,
                                         random_state=0, device="cpu").fit(X)
    np.testing.assert_array_equal(V, est.components_)


def test_functions_validate_like_sklearn(X):
    with pytest.raises(ValueError, match="'method' parameter"):
        sc.dict_learning(X, 5, alpha=1.0, method="omp")
    with pytest.raises(ValueError, match="'return_code' parameter"):
        sc.dict_learning_online(X, 5, return_code="yes")
    with pytest.raises(ValueError, match="not supported for 'lars' coding"):
        sc.dict_learning_online(X, 5, positive_code=True, max_iter=1)


# ----------------------------------------------------------- width mismatches
def _message(make, lib):
    with pytest.raises(ValueError) as info:
        make(lib)
    return str(info.value).replace(" ", "")


def _both(make):
    """The error messages of the same call on sklearn's and on our classes,
    without spaces (sklearn's runs two sentences together: "dictionary.Expected")."""
    return _message(make, skd), _message(make, sc)


@pytest.mark.parametrize("cls", ["SparseCoder", "DictionaryLearning",
                                 "MiniBatchDictionaryLearning"])
def test_inverse_transform_width_mismatch_says_what_sklearn_says(X, cls):
    def make(lib):
        est = getattr(lib, cls)
        est = (est(np.eye(5, 8)) if cls == "SparseCoder"
               else est(5, max_iter=2, random_state=0).fit(X))
        return est.inverse_transform(np.ones((3, 4)))

    theirs, ours = _both(make)
    assert ours == theirs
    assert "Expected5,got4." in ours


@pytest.mark.parametrize("fitted", [False, True])
def test_sparse_coder_width_mismatch_is_a_value_error(X, fitted):
    coder = sc.SparseCoder(np.eye(5, 8), device="cpu")
    if fitted:
        coder.fit(X)
    expected = ("X has 6 features, but SparseCoder is " if fitted else
                r"different numbers of features: dictionary.shape: \(5, 8\) "
                r"X.shape: \(n_samples, 6\)")
    with pytest.raises(ValueError, match=expected):
        coder.transform(X[:, :6])


@pytest.mark.parametrize("cls", ["DictionaryLearning", "MiniBatchDictionaryLearning"])
def test_learned_transform_width_mismatch_says_what_sklearn_says(X, cls):
    theirs, ours = _both(lambda lib: getattr(lib, cls)(5, max_iter=2, random_state=0)
                         .fit(X).transform(X[:, :6]))
    assert ours == theirs


def test_sparse_encode_width_mismatch_names_both_shapes(X):
    with pytest.raises(ValueError) as info:
        sc.sparse_encode(X[:, :6], np.eye(5, 8))
    msg = str(info.value)
    assert msg.startswith("Dictionary and X have different numbers of features")
    assert "(5, 8)" in msg and "(40, 6)" in msg


# ------------------------------------------------------------- read-only input
def _read_only_inputs(X, tmp_path):
    ro = X.copy()
    ro.flags.writeable = False
    path = tmp_path / "x.dat"
    mm = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    del mm
    return [ro, np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)]


@pytest.mark.parametrize("call", [
    lambda A: sc.DictionaryLearning(4, max_iter=3, random_state=0,
                                    device="cpu").fit_transform(A),
    lambda A: sc.MiniBatchDictionaryLearning(4, max_iter=2, batch_size=8,
                                             random_state=0, device="cpu").fit(A)
    .transform(A),
    lambda A: sc.SparseCoder(np.eye(4, 8), transform_algorithm="lasso_lars",
                             device="cpu").fit_transform(A),
    lambda A: sc.sparse_encode(A, np.eye(4, 8), algorithm="lasso_cd"),
    lambda A: sc.dict_learning(A, 4, alpha=1.0, max_iter=3, device="cpu")[0],
    lambda A: sc.dict_learning_online(A, 4, max_iter=2, device="cpu")[0],
], ids=["DictionaryLearning", "MiniBatch", "SparseCoder", "sparse_encode",
        "dict_learning", "dict_learning_online"])
def test_read_only_arrays_are_accepted_without_warning_and_never_written(
        X, tmp_path, call):
    for A in _read_only_inputs(X, tmp_path):
        before = np.array(A, copy=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # torch: "not writable"
            codes = call(A)
        assert codes.shape == (40, 4) and np.isfinite(codes).all()
        np.testing.assert_array_equal(A, before)
        assert not A.flags.writeable
