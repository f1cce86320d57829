"""PatchFeatures: patch extraction, pooling semantics, errors, meta-estimator use."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sparsecode import SparseAutoencoder
from sparsecode.data.images import load_digits_images
from sparsecode.features import PatchFeatures


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((12, 6, 6))


def _by_hand(pf, images, step=1):
    """Codes of every patch, one patch at a time: (n, nr, nc, n_codes)."""
    ph, pw = pf.patch_size_
    h, w = images.shape[1:3]
    rows, cols = range(0, h - ph + 1, step), range(0, w - pw + 1, step)
    out = np.empty((len(images), len(rows), len(cols), pf.n_codes_))
    for n, img in enumerate(images):
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                patch = img[r:r + ph, c:c + pw].reshape(1, -1)
                patch = patch - patch.mean() if pf.center else patch
                out[n, i, j] = pf.encoder_.transform(patch)[0]
    return out


@pytest.mark.parametrize("pooling, reduce", [("max", np.max), ("mean", np.mean),
                                             ("sum", np.sum)])
def test_pooling_equals_the_reduction_of_per_patch_codes(images, pooling, reduce):
    pf = PatchFeatures(PCA(3), patch_size=3, pooling=pooling, grid=2,
                       random_state=0).fit(images)
    codes = _by_hand(pf, images)  # 4 x 4 positions -> 2 x 2 regions of 2 x 2
    expected = np.stack([reduce(codes[:, a:a + 2, b:b + 2], axis=(1, 2))
                         for a in (0, 2) for b in (0, 2)], axis=1)
    got = pf.transform(images)
    assert got.shape == (12, 4 * 3)
    np.testing.assert_allclose(got, expected.reshape(12, -1), atol=1e-10)


def test_grid_one_is_global_pooling_and_grid_three_overlaps(images):
    pf = PatchFeatures(PCA(2), patch_size=3, grid=1, random_state=0).fit(images)
    codes = _by_hand(pf, images)
    np.testing.assert_allclose(pf.transform(images), codes.max(axis=(1, 2)),
                               atol=1e-10)
    # 4 positions in 3 regions: [0, 2), [1, 3), [2, 4) (adaptive pooling)
    got = pf.set_params(grid=3).transform(images).reshape(12, 3, 3, 2)
    for i, (a, b) in enumerate([(0, 2), (1, 3), (2, 4)]):
        np.testing.assert_allclose(got[:, i, 2], codes[:, a:b, 2:4].max((1, 2)),
                                   atol=1e-10)


def test_step_takes_every_step_th_patch():
    X = np.random.default_rng(1).random((5, 7, 7))
    pf = PatchFeatures(PCA(2), patch_size=3, step=2, grid=3, random_state=0).fit(X)
    codes = _by_hand(pf, X, step=2)  # offsets 0, 2, 4: one patch per region
    assert codes.shape[1:3] == (3, 3)
    np.testing.assert_allclose(pf.transform(X), codes.reshape(5, -1), atol=1e-10)
    dense = pf.set_params(step=1, grid=1).transform(X)
    sparse = pf.set_params(step=2).transform(X)
    assert np.all(sparse <= dense + 1e-12) and np.any(sparse < dense - 1e-6)


def test_input_layouts_agree_and_names_match_the_columns(images):
    pf = PatchFeatures(PCA(3), patch_size=3, random_state=0)
    from_images = pf.fit(images).transform(images)
    assert pf.image_shape_ == (6, 6, 1) and pf.n_features_in_ == 36
    rows = clone(pf).fit(images.reshape(12, -1))
    np.testing.assert_allclose(rows.transform(images.reshape(12, -1)), from_images)
    names = pf.get_feature_names_out()
    assert len(names) == from_images.shape[1] == 12
    assert names[0] == "patchfeatures_r0_c0_pca0" and names[-1].endswith("r1_c1_pca2")
    colour = np.random.default_rng(2).random((4, 5, 5, 3))
    pc = PatchFeatures(PCA(2), patch_size=2, grid=2, random_state=0).fit(colour)
    assert pc.encoder_.n_features_in_ == 12 and pc.transform(colour).shape == (4, 8)
    wide = PatchFeatures(PCA(2), patch_size=2, image_shape=(3, 12), random_state=0)
    assert wide.fit(colour.reshape(4, -1)[:, :36]).image_shape_ == (3, 12, 1)


def test_center_removes_each_patch_mean(images):
    pf = PatchFeatures(PCA(2), patch_size=3, random_state=0).fit(images)
    np.testing.assert_allclose(pf.transform(images + 0.7), pf.transform(images),
                               atol=1e-10)
    raw = PatchFeatures(PCA(2), patch_size=3, center=False, random_state=0)
    assert not np.allclose(raw.fit(images).transform(images + 0.7),
                           raw.transform(images), atol=1e-3)


def test_fit_samples_n_patches_and_is_seeded(images):
    enc = SparseAutoencoder(8, k=2, max_iter=2, batch_size=16, device="cpu")
    a = PatchFeatures(enc, patch_size=3, n_patches=50, random_state=3).fit(images)
    b = PatchFeatures(enc, patch_size=3, n_patches=50, random_state=3).fit(images)
    assert a.encoder_.n_features_in_ == 9 and a.n_codes_ == 8
    assert enc.random_state is None and a.encoder_.random_state is not None
    assert not hasattr(enc, "components_")  # the parameter is cloned, not fitted
    np.testing.assert_array_equal(a.transform(images), b.transform(images))
    assert np.all(a.transform(images) >= 0)  # TopK codes are non-negative
    few = PatchFeatures(PCA(2), patch_size=6, n_patches=1000).fit(images)
    assert few.encoder_.n_samples_ == 12  # one patch per image: all of them


@pytest.mark.parametrize("params, X, match", [
    ({"patch_size": 7}, np.zeros((3, 6, 6)), "patch_size"),
    ({"patch_size": (2, 3, 4)}, np.zeros((3, 6, 6)), "patch_size"),
    ({"pooling": "median"}, np.zeros((3, 6, 6)), "pooling"),
    ({"grid": 0}, np.zeros((3, 6, 6)), "grid"),
    ({"step": 0}, np.zeros((3, 6, 6)), "step"),
    ({"image_shape": (4, 4)}, np.zeros((3, 6, 6)), "image_shape"),
    ({"image_shape": (5, 5)}, np.zeros((3, 36)), "image_shape"),
    ({"encoder": "pca"}, np.zeros((3, 6, 6)), "encoder"),
    ({}, np.zeros((3, 6, 6, 1, 1)), "dimensions"),
    ({"patch_size": 2}, np.zeros((3, 1)), "n_features=1"),
])
def test_bad_input_raises_a_clear_error(params, X, match):
    with pytest.raises(ValueError, match=match):
        PatchFeatures(**{"encoder": PCA(1), **params}).fit(X)


def test_transform_checks_the_fitted_image_shape(images):
    with pytest.raises(NotFittedError):
        PatchFeatures(PCA(1)).transform(images)
    pf = PatchFeatures(PCA(1), patch_size=3).fit(images)
    with pytest.raises(ValueError, match="shape"):
        pf.transform(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="features"):
        pf.transform(np.zeros((2, 30)))


def test_pipeline_and_grid_search_clone_the_encoder():
    X, y = load_digits_images()
    X, y = X[:300].reshape(300, -1), y[:300]
    pipe = Pipeline([("features", PatchFeatures(PCA(6), patch_size=4,
                                                random_state=0)),
                     ("clf", LogisticRegression(max_iter=500))])
    search = GridSearchCV(pipe, {"features__grid": [1, 2],
                                 "features__encoder__n_components": [3, 6]}, cv=3)
    search.fit(X, y)
    best = search.best_estimator_.named_steps["features"]
    assert best.transform(X).shape[1] == best.grid ** 2 * best.n_codes_
    assert best.n_codes_ == best.encoder.n_components
    assert not hasattr(pipe.named_steps["features"], "encoder_")
    assert not hasattr(pipe.named_steps["features"].encoder, "components_")
    assert search.best_score_ > 0.8  # pooled patch codes do classify digits
