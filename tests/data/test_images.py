"""Image loaders, image files and the patch grid's round trip."""

from __future__ import annotations

import os

import numpy as np
import pytest
import skimage

from sparsecode.data.images import (
    IMAGE_NAMES,
    extract_patches,
    load_digits_images,
    load_image,
    load_lfw_subset,
    read_image,
    sample_patches,
)

SKIMAGE_DATA = os.path.join(os.path.dirname(skimage.__file__), "data")


@pytest.mark.parametrize("name", ["camera", "astronaut", "coins", "china.jpg",
                                  "immunohistochemistry"])
def test_load_image_in_unit_range(name):
    img = load_image(name)
    assert img.dtype == np.float64 and img.ndim in (2, 3)
    assert 0.0 <= img.min() < img.max() <= 1.0
    grey = load_image(name, grey=True)
    assert grey.shape == img.shape[:2]


def test_every_listed_image_loads_offline():
    for name in IMAGE_NAMES:
        assert load_image(name).size > 0, name


def test_unknown_image_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="camera"):
        load_image("lena")


def test_read_image_matches_the_bundled_loader():
    np.testing.assert_array_equal(read_image(os.path.join(SKIMAGE_DATA, "coins.png")),
                                  load_image("coins"))
    rgb = read_image(os.path.join(SKIMAGE_DATA, "astronaut.png"))
    np.testing.assert_array_equal(rgb, load_image("astronaut"))
    jpg = read_image(os.path.join(SKIMAGE_DATA, "rocket.jpg"), grey=True)
    assert jpg.ndim == 2 and 0 <= jpg.min() < jpg.max() <= 1


def test_read_image_names_a_missing_or_broken_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        read_image(tmp_path / "nothere.png")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ValueError, match="broken.png"):
        read_image(bad)


def test_lfw_subset_and_digits():
    images, y = load_lfw_subset()
    assert images.shape == (200, 25, 25) and y.tolist() == [1] * 100 + [0] * 100
    digits, labels = load_digits_images()
    assert digits.shape == (1797, 8, 8) and digits.max() == 1.0
    assert set(labels.tolist()) == set(range(10))


@pytest.mark.parametrize("colour", [False, True])
@pytest.mark.parametrize("step", [1, 3, 5])
@pytest.mark.parametrize("center,normalize", [(False, False), (True, False),
                                              (True, True)])
def test_patch_round_trip_is_exact(colour, step, center, normalize):
    rng = np.random.default_rng(step)
    shape = (37, 29, 3) if colour else (37, 29)
    img = rng.random(shape)
    img[5:12, 3:9] = 0.25  # flat patches: normalisation must not divide by 0
    X, grid = extract_patches(img, (6, 5), step=step, center=center,
                              normalize=normalize)
    assert X.shape == (grid.n_patches, grid.n_features)
    assert grid.n_features == 6 * 5 * (3 if colour else 1)
    if center:
        np.testing.assert_allclose(X.mean(axis=1), 0, atol=1e-12)
    if normalize:
        std = X.std(axis=1)
        assert np.all((np.abs(std - 1) < 1e-9) | (std < 1e-9))
    np.testing.assert_allclose(grid.reconstruct(X), img, rtol=0, atol=1e-12)


def test_strided_grid_covers_the_edges_and_averages_overlaps():
    img = np.arange(10 * 11, dtype=float).reshape(10, 11)
    X, grid = extract_patches(img, 4, step=3, center=False)
    assert grid.rows.tolist() == [0, 3, 6] and grid.cols.tolist() == [0, 3, 6, 7]
    # a patch matrix of ones except the first patch, doubled: overlaps average
    Y = np.ones_like(X)
    Y[0] = 3.0
    out = grid.reconstruct(Y)
    assert out[1, 1] == 3.0 and out[3, 3] == 1.5 and out[9, 10] == 1.0


def test_step_one_matches_sklearn_extract_patches_2d():
    from sklearn.feature_extraction.image import extract_patches_2d

    img = load_image("coins")[:40, :50]
    X, _ = extract_patches(img, 5, center=False)
    expected = extract_patches_2d(img, (5, 5)).reshape(len(X), -1)
    np.testing.assert_array_equal(X, expected)


def test_recoded_patches_change_the_image():
    img = load_image("coins")[100:164, 100:164]
    X, grid = extract_patches(img, 8, step=4)
    assert np.abs(grid.reconstruct(np.zeros_like(X)) - img).max() > 0.1


def test_sample_patches_is_seeded_and_centred():
    img = load_image("camera")
    a = sample_patches(img, 8, 300, random_state=0)
    b = sample_patches(img, 8, 300, random_state=0)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (300, 64)
    np.testing.assert_allclose(a.mean(axis=1), 0, atol=1e-12)
    assert not np.array_equal(a, sample_patches(img, 8, 300, random_state=1))


@pytest.mark.parametrize("kwargs,match", [
    ({"patch_size": 0}, "patch_size"),
    ({"patch_size": (4, 4, 4)}, "patch_size"),
    ({"patch_size": 100}, "larger than the image"),
    ({"step": 0}, "step"),
    ({"step": 1.5}, "step"),
    ({"step": 5}, "pixels between patches"),
])
def test_bad_patch_parameters(kwargs, match):
    img = np.zeros((20, 20))
    with pytest.raises(ValueError, match=match):
        extract_patches(img, **{"patch_size": 4, **kwargs})


def test_bad_images_and_patch_matrices():
    with pytest.raises(ValueError, match="shape"):
        extract_patches(np.zeros(10), 2)
    with pytest.raises(ValueError, match="NaN"):
        extract_patches(np.full((5, 5), np.nan), 2)
    with pytest.raises(TypeError, match="dtype"):
        extract_patches(np.array([["a"]]), 1)
    X, grid = extract_patches(np.zeros((8, 8)), 4, step=2)
    with pytest.raises(ValueError, match="shape"):
        grid.reconstruct(X[:, :-1])
    with pytest.raises(ValueError, match="n_patches"):
        sample_patches(np.zeros((8, 8)), 4, 0)
