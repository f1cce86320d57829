"""`SparseAutoencoder`: recovery of known features, API contract, errors."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sparsecode import SparseAutoencoder, metrics
from sparsecode.data.toy import make_superposition


@pytest.fixture(scope="module")
def toy():
    X, F = make_superposition(4000, 16, 32, mean_active=3, decay=0.99,
                              random_state=0)
    return X, F


@pytest.fixture(scope="module")
def small():
    X, _ = make_superposition(300, 8, 12, mean_active=2, random_state=1)
    return X.astype(np.float32)


def _quick(**kw):
    base = dict(n_components=16, max_iter=2, batch_size=64, random_state=0,
                device="cpu")
    return SparseAutoencoder(**{**base, **kw})


@pytest.mark.parametrize("activation, kw", [("topk", {"k": 3}), ("relu", {})])
def test_recovers_ground_truth_features(toy, activation, kw):
    X, F = toy
    est = SparseAutoencoder(n_components=64, activation=activation, max_iter=20,
                            batch_size=128, random_state=0, device="cpu", **kw)
    est.fit(X)
    assert metrics.mmcs(F, est.components_) >= 0.95
    assert -est.score(X) < 0.2


def test_topk_codes_have_exactly_k_nonzeros(toy):
    X, _ = toy
    est = _quick(n_components=32, k=5, max_iter=3).fit(X)
    codes = est.transform(X)
    assert ((codes != 0).sum(1) == 5).all()
    assert (codes >= 0).all()
    assert np.allclose(np.linalg.norm(est.components_, axis=1), 1.0, atol=1e-5)


def test_batchtopk_transform_does_not_depend_on_the_batch(small):
    est = _quick(activation="batchtopk", k=2).fit(small)
    full = est.transform(small)
    rows = np.vstack([est.transform(small[i:i + 1]) for i in range(0, 300, 37)])
    np.testing.assert_array_equal(rows > 0, full[::37] > 0)  # same latents fire
    np.testing.assert_allclose(rows, full[::37], rtol=1e-6)  # up to matmul rounding
    thr = float(est.module_.activation.threshold)
    assert thr > 0
    assert full[full > 0].min() > thr
    assert 0.5 < metrics.l0(full) < 8


def test_score_is_minus_pooled_fvu_and_inverse_transform(small):
    est = _quick(activation="relu").fit(small)
    recon = est.inverse_transform(est.transform(small))
    assert est.score(small) == pytest.approx(-metrics.fvu(small, recon), rel=1e-5)
    assert recon.shape == small.shape and recon.dtype == np.float32
    assert est.components_.shape == (16, 8)
    assert est.n_iter_ == 2 and est.n_steps_ == 10


def test_tensors_in_tensors_out_and_dtypes(small):
    est = _quick().fit(small.astype(np.float64))
    assert est.module_.W_dec.dtype == torch.float64
    Xt = torch.as_tensor(small)
    codes = est.transform(Xt)
    assert isinstance(codes, torch.Tensor) and codes.device == Xt.device
    assert codes.dtype == torch.float32
    back = est.inverse_transform(codes)
    assert isinstance(back, torch.Tensor) and back.shape == Xt.shape
    np.testing.assert_allclose(codes.numpy(), est.transform(small), rtol=1e-5,
                               atol=1e-6)
    assert est.transform(small).dtype == np.float32
    f32 = _quick(dtype="float32").fit(small.astype(np.float64))
    assert f32.module_.W_dec.dtype == torch.float32
    assert f32.transform(small.astype(np.float64)).dtype == np.float64


def test_feature_names_pandas_and_sklearn_tools(small):
    pd = pytest.importorskip("pandas")
    est = _quick().fit(small)
    names = est.get_feature_names_out()
    assert list(names[:2]) == ["sparseautoencoder0", "sparseautoencoder1"]
    out = clone(est).set_output(transform="pandas").fit(
        pd.DataFrame(small, columns=[f"f{i}" for i in range(8)])).transform(
        pd.DataFrame(small, columns=[f"f{i}" for i in range(8)]))
    assert list(out.columns) == list(names)
    pipe = make_pipeline(StandardScaler(), _quick()).fit(small)
    assert pipe.transform(small).shape == (300, 16)
    search = GridSearchCV(_quick(), {"k": [1, 3]}, cv=2).fit(small)
    assert search.best_params_["k"] == 3  # more active latents, lower FVU


def test_defaults_train_a_useful_sae(toy):
    X, F = toy
    est = SparseAutoencoder(random_state=0, device="cpu").fit(X[:1000])
    assert est.components_.shape == (128, 16)  # 8 * n_features latents
    assert est.n_steps_ == 2000 and est.n_iter_ == 500  # auto: ~2000 steps
    assert 7.9 < metrics.l0(est.transform(X)) <= 8  # k = min(32, n_features // 2)
    assert -est.score(X) < 0.1  # on 3000 held-out rows too
    assert metrics.mmcs(F, est.components_) > 0.9


@pytest.mark.parametrize("bad, match", [
    (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), "NaN"),
    (lambda X: X[:, :5], "features"),
    (lambda X: X[0], "2D"),
    (lambda X: sp.csr_matrix(X), "sparse"),
])
def test_bad_transform_input_raises(small, bad, match):
    est = _quick().fit(small)
    with pytest.raises((ValueError, TypeError), match=match):
        est.transform(bad(small))


def test_bad_fit_input_and_parameters_raise(small):
    with pytest.raises(ValueError, match="empty|0 sample"):
        _quick().fit(small[:0])
    with pytest.raises(ValueError, match="k=20 must be <= n_components=16"):
        _quick(k=20).fit(small)
    with pytest.raises(ValueError, match="activation"):
        _quick(activation="softmax").fit(small)
    with pytest.raises(ValueError, match="batch_size"):
        _quick(batch_size=0).fit(small)
    with pytest.raises(ValueError, match="NaN"):
        _quick().fit(torch.full((10, 8), float("inf")))
    est = _quick().fit(small)
    with pytest.raises(ValueError, match="Expected 16, got 5"):
        est.inverse_transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        est.inverse_transform(np.full((3, 16), np.nan))
    with pytest.raises(Exception, match="not fitted"):
        _quick().transform(small)
