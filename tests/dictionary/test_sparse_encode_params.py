"""`sparse_encode` and `SparseCoder` validate their parameters and data as
scikit-learn 1.9 does (`InvalidParameterError`, scikit-learn's messages)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import SparseCoder as SkSparseCoder
from sklearn.decomposition import sparse_encode as sk_sparse_encode
from sklearn.utils._param_validation import InvalidParameterError

from sparsecode import MiniBatchDictionaryLearning, SparseCoder, sparse_encode

NAN, INF = float("nan"), float("inf")

# (parameter, an invalid value): every parameter of sklearn's sparse_encode
INVALID = [
    ("X", None), ("X", "abc"), ("X", 3.0),
    ("dictionary", None), ("dictionary", 1.0),
    ("gram", "G"), ("gram", 2.0),
    ("cov", "C"),
    ("algorithm", "nope"), ("algorithm", 1), ("algorithm", None),
    ("n_nonzero_coefs", 0), ("n_nonzero_coefs", -1), ("n_nonzero_coefs", 2.5),
    ("n_nonzero_coefs", "3"),
    ("alpha", -1), ("alpha", -0.5), ("alpha", NAN), ("alpha", INF), ("alpha", -INF),
    ("alpha", "1"),
    ("copy_cov", "yes"), ("copy_cov", 1), ("copy_cov", None),
    ("init", "init"), ("init", 1.0),
    ("max_iter", -1), ("max_iter", 2.5), ("max_iter", None), ("max_iter", "10"),
    ("n_jobs", 1.5), ("n_jobs", "2"),
    ("check_input", "no"), ("check_input", 0), ("check_input", None),
    ("verbose", -1), ("verbose", "loud"), ("verbose", 1.5),
    ("positive", "yes"), ("positive", 1), ("positive", None),
]


def _problem(n=20, d=6, k=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    V = rng.standard_normal((k, d))
    return X, V / np.linalg.norm(V, axis=1, keepdims=True)


def _raised(f, **kw) -> Exception:
    with pytest.raises(InvalidParameterError) as info:
        f(**kw)
    return info.value


@pytest.mark.parametrize("param, value", INVALID)
def test_invalid_parameter_rejected_as_sklearn_rejects_it(param, value):
    X, V = _problem()
    kw = {"X": X, "dictionary": V, param: value}
    theirs = _raised(sk_sparse_encode, **kw)
    ours = _raised(sparse_encode, **kw)
    assert isinstance(ours, ValueError)
    if param == "algorithm":  # (ours has more algorithms)
        head = "The 'algorithm' parameter of sparse_encode must be a str among"
        assert str(ours).startswith(head) and str(theirs).startswith(head)
        assert str(ours).endswith(f"Got {value!r} instead.")
    else:
        assert str(ours) == str(theirs)


@pytest.mark.parametrize("value", ["nonsense-device", 3])
def test_invalid_device_rejected(value):
    X, V = _problem()
    with pytest.raises(InvalidParameterError, match="'device' parameter"):
        sparse_encode(X, V, device=value)


@pytest.mark.parametrize("kw", [  # (max_iter=0 warns: not converged)
    dict(alpha=0.0), dict(alpha=np.float32(0.5)), dict(alpha=None),
    dict(algorithm="omp", n_nonzero_coefs=1), dict(algorithm="omp",
                                                   n_nonzero_coefs=np.int64(2)),
    dict(algorithm="lars", n_nonzero_coefs=None), dict(max_iter=0),
    dict(n_jobs=-1), dict(n_jobs=np.int32(1)), dict(verbose=True), dict(verbose=2),
    dict(positive=np.bool_(True)), dict(copy_cov=False), dict(check_input=False),
    dict(device="cpu"), dict(device=torch.device("cpu")), dict(device=None),
    dict(cov=np.zeros((8, 20))), dict(algorithm="fista", init=np.zeros((20, 8))),
])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_valid_edge_values_accepted(kw):
    X, V = _problem()
    codes = sparse_encode(X, V, **kw)
    assert codes.shape == (20, 8) and np.isfinite(codes).all()


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
@pytest.mark.parametrize("as_tensor", [True, False])
def test_non_finite_row_raises(bad, as_tensor):
    """One NaN/inf row used to come back as a row of zeros for a tensor X."""
    X, V = _problem()
    X[3, 2] = bad
    X = torch.as_tensor(X) if as_tensor else X
    with pytest.raises(ValueError, match="NaN|infinity"):
        sparse_encode(X, V, algorithm="lasso_lars", alpha=0.1)
    with pytest.raises(ValueError, match="NaN|infinity"):
        sparse_encode(X, torch.as_tensor(V) if as_tensor else V, algorithm="omp")


@pytest.mark.parametrize("as_tensor", [True, False])
def test_non_finite_dictionary_raises(as_tensor):
    X, V = _problem()
    V[1, 1] = NAN
    with pytest.raises(ValueError, match="NaN|infinity"):
        sparse_encode(torch.as_tensor(X) if as_tensor else X,
                      torch.as_tensor(V) if as_tensor else V)


@pytest.mark.parametrize("X", [torch.zeros(0, 6), torch.zeros(5, 0), torch.zeros(6),
                               torch.zeros(4, 6, dtype=torch.complex64)])
def test_degenerate_tensor_raises(X):
    _, V = _problem()
    with pytest.raises(ValueError):
        sparse_encode(X, torch.as_tensor(V))


def test_shape_mismatches_raise():
    X, V = _problem()
    with pytest.raises(ValueError, match="gram must have shape"):
        sparse_encode(X, V, gram=np.eye(3))
    with pytest.raises(ValueError, match="init must have shape"):
        sparse_encode(X, V, algorithm="fista", init=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="different numbers of features"):
        sparse_encode(torch.as_tensor(X[:, :5]), torch.as_tensor(V))


# ---------------------------------------------------------------- SparseCoder
CODER_INVALID = [
    ("transform_algorithm", "nope"), ("transform_n_nonzero_coefs", 0),
    ("transform_n_nonzero_coefs", 2.5), ("transform_alpha", -1),
    ("transform_alpha", NAN), ("split_sign", "yes"), ("n_jobs", 1.5),
    ("positive_code", 1), ("transform_max_iter", -1),
]


@pytest.mark.parametrize("param, value", CODER_INVALID)
def test_sparse_coder_invalid_parameter_on_fit_and_transform(param, value):
    X, V = _problem()
    theirs = _raised(SkSparseCoder(V, **{param: value}).fit, X=X)
    ours = _raised(SparseCoder(V, device="cpu", **{param: value}).fit, X=X)
    if param != "transform_algorithm":
        assert str(ours) == str(theirs)
    _raised(SparseCoder(V, device="cpu", **{param: value}).transform, X=X)
    coder = SparseCoder(V, device="cpu").fit(X)
    coder.set_params(**{param: value})  # after fit: caught at transform
    _raised(coder.transform, X=X)


def test_learner_transform_validates_parameters_set_after_fit():
    X, _ = _problem(n=60)
    est = MiniBatchDictionaryLearning(4, batch_size=20, max_iter=1, random_state=0,
                                      device="cpu").fit(X)
    est.set_params(transform_n_nonzero_coefs=0)
    with pytest.raises(InvalidParameterError, match="transform_n_nonzero_coefs"):
        est.transform(X)


@pytest.mark.parametrize("as_tensor", [True, False])
def test_sparse_coder_rejects_non_finite_data(as_tensor):
    X, V = _problem()
    coder = SparseCoder(V, transform_algorithm="lasso_lars", device="cpu")
    Xn = X.copy()
    Xn[4, 0] = NAN
    with pytest.raises(ValueError, match="NaN|infinity"):
        coder.transform(torch.as_tensor(Xn) if as_tensor else Xn)
    Vn = V.copy()
    Vn[0, 0] = INF
    bad = SparseCoder(torch.as_tensor(Vn) if as_tensor else Vn, device="cpu")
    with pytest.raises(ValueError, match="NaN|infinity"):
        bad.transform(X)
    with pytest.raises(ValueError, match="NaN|infinity"):
        bad.fit(X)


def test_sparse_coder_feature_mismatch_is_a_value_error():
    X, V = _problem()
    with pytest.raises(ValueError, match="different numbers of features"):
        SparseCoder(V[:, :5], device="cpu").transform(X)
    with pytest.raises(ValueError, match="different numbers of features"):
        SparseCoder(V[:, :5], device="cpu").fit(X)
