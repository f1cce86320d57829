"""ConvSparseAutoencoder: shapes, sparsity, training, seeds, bad input."""

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

import sparsecode
from sparsecode.nn.conv import ConvSparseAutoencoderModule, spatial_topk
from sparsecode.sae.conv import ConvSparseAutoencoder, image_shape_of


def _blobs(n=6, size=24, seed=0):
    """Grey images of a few Gaussian blobs (and their centres)."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, size, size), np.float32)
    centres = rng.integers(4, size - 4, size=(n, 3, 2))
    for i in range(n):
        X[i, centres[i, :, 0], centres[i, :, 1]] = 1.0
    X = ndimage.gaussian_filter(X, (0, 1.5, 1.5)) * 10
    return X + 0.01 * rng.normal(size=X.shape).astype(np.float32), centres


def _sae(**kw):
    params = dict(n_components=4, kernel_size=7, density=0.02, crop_size=16,
                  max_iter=60, batch_size=8, learning_rate=3e-3, random_state=0,
                  device="cpu")
    return ConvSparseAutoencoder(**{**params, **kw})


def test_shapes_of_codes_maps_and_reconstructions():
    X, _ = _blobs()
    sae = _sae(max_iter=5).fit(X)
    assert sae.transform(X).shape == (6, 4, 24, 24)
    assert sae.detection_map(X).shape == (6, 24, 24)
    assert sae.inverse_transform(sae.transform(X)).shape == X.shape
    assert sae.components_.shape == (4, 49)
    assert sae.image_shape_ == (24, 24, 1) and sae.n_features_in_ == 576
    # another image size at transform (fully convolutional)
    assert sae.transform(X[:2, :20, :18]).shape == (2, 4, 20, 18)
    # colour images, channels last
    rgb = np.repeat(X[..., None], 3, axis=-1)
    sae3 = _sae(max_iter=3).fit(rgb)
    assert sae3.inverse_transform(sae3.transform(rgb)).shape == rgb.shape
    assert sae3.components_.shape == (4, 49 * 3)


def test_rows_are_read_as_images():
    assert image_shape_of(25) == (5, 5, 1) and image_shape_of(7) == (1, 7, 1)
    X, _ = _blobs()
    rows = X.reshape(6, -1)
    sae = _sae(max_iter=5).fit(rows)
    assert sae.transform(rows).shape == (6, 4 * 24 * 24)
    assert len(sae.get_feature_names_out()) == 4 * 24 * 24
    np.testing.assert_allclose(sae.transform(rows).reshape(6, 4, 24, 24),
                               sae.transform(X), atol=1e-5)
    with pytest.raises(ValueError, match="image_shape"):
        _sae(image_shape=(5, 5)).fit(rows)


def test_each_map_keeps_at_most_k_active_positions():
    X, _ = _blobs()
    sae = _sae(density=0.01).fit(X)
    codes = sae.transform(X)
    k = max(1, round(0.01 * 24 * 24))
    active = (codes != 0).sum(axis=(2, 3))
    assert active.max() <= k
    assert (codes >= 0).all()
    z = spatial_topk(torch.randn(3, 2, 5, 5), 4)
    assert int((z != 0).sum((2, 3)).max()) <= 4


def test_training_improves_the_reconstruction():
    X, _ = _blobs()
    short, long = _sae(max_iter=2).fit(X), _sae(max_iter=150).fit(X)
    assert long.score(X) > short.score(X) + 0.05
    losses = [h["loss"] for h in long.history_]
    assert len(losses) == 150 and np.mean(losses[-10:]) < np.mean(losses[:10])


def test_detection_map_peaks_near_the_blobs():
    X, centres = _blobs()
    sae = _sae(max_iter=150).fit(X)
    det = sae.detection_map(X)
    for i in range(3):
        peak = np.unravel_index(det[i].argmax(), det[i].shape)
        assert np.min(np.linalg.norm(centres[i] - np.array(peak), axis=1)) <= 3


def test_seeds_are_reproducible_and_matter():
    X, _ = _blobs()
    a, b, c = _sae(max_iter=10).fit(X), _sae(max_iter=10).fit(X), _sae(
        max_iter=10, random_state=1).fit(X)
    np.testing.assert_array_equal(a.components_, b.components_)
    assert not np.allclose(a.components_, c.components_)


def test_partial_fit_continues_training():
    X, _ = _blobs()
    sae = _sae(max_iter=5).partial_fit(X)
    first = sae.components_.copy()
    sae.partial_fit(X)
    assert sae.n_iter_ == 10 and len(sae.history_) == 10
    assert not np.allclose(first, sae.components_)


def test_float32_and_tensors_are_preserved():
    X, _ = _blobs()
    sae = _sae(max_iter=3).fit(X.astype(np.float64))
    assert sae.transform(X).dtype == np.float32
    out = sae.transform(torch.from_numpy(X))
    assert isinstance(out, torch.Tensor) and out.shape == (6, 4, 24, 24)


@pytest.mark.parametrize("params, match", [
    ({"kernel_size": 4}, "odd"),
    ({"density": 0.0}, "density"),
    ({"n_components": 0}, "n_components"),
    ({"crop_size": -1}, "crop_size"),
])
def test_bad_parameters_raise(params, match):
    X, _ = _blobs()
    with pytest.raises(ValueError, match=match):
        _sae(**params).fit(X)


def test_bad_input_raises():
    X, _ = _blobs()
    with pytest.raises(ValueError, match="dimensions"):
        _sae().fit(X[None, ..., None])
    bad = X.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _sae().fit(bad)
    sae = _sae(max_iter=2).fit(X)
    with pytest.raises(ValueError, match="channels"):
        sae.transform(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="maps"):
        sae.inverse_transform(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="odd"):
        ConvSparseAutoencoderModule(1, 2, 6)


def test_save_and_load_round_trip(tmp_path):
    blobs = _blobs()[0]
    sae = ConvSparseAutoencoder(4, kernel_size=5, max_iter=20, random_state=0,
                                device="cpu").fit(blobs)
    back = sparsecode.load(sparsecode.save(sae, tmp_path / "conv"))
    assert isinstance(back, ConvSparseAutoencoder)
    assert back.image_shape_ == sae.image_shape_
    np.testing.assert_array_equal(back.transform(blobs), sae.transform(blobs))
    np.testing.assert_array_equal(back.detection_map(blobs), sae.detection_map(blobs))
    back.partial_fit(blobs)  # training goes on from the loaded weights
    assert back.n_iter_ == 40


def test_load_refuses_atoms_that_do_not_match_the_kernel(tmp_path):
    blobs = _blobs()[0]
    sae = ConvSparseAutoencoder(4, kernel_size=5, max_iter=2, random_state=0,
                                device="cpu").fit(blobs)
    path = sparsecode.save(sae, tmp_path / "conv")
    config = json.loads((path / "config.json").read_text())
    config["params"]["kernel_size"] = 3
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="kernel_size"):
        sparsecode.load(path)
