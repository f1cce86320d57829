"""make_histology: shapes, stain statistics, nuclei where the centres are, checks."""

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from skimage.color import rgb2hed

from sparsecode.data.histology import STAINS, make_histology, stain_levels
from sparsecode.data.image_files import load_image


def test_shapes_range_and_centres():
    images, centres = make_histology(3, size=(48, 40), n_nuclei=6, random_state=0)
    assert images.shape == (3, 48, 40, 3) and images.dtype == np.float64
    assert images.min() >= 0 and images.max() <= 1
    assert len(centres) == 3 and all(c.shape == (6, 2) for c in centres)
    allc = np.concatenate(centres)
    assert allc.min() >= 0 and (allc < [48, 40]).all()


def test_seeds_are_reproducible_and_matter():
    a, ca = make_histology(2, size=32, n_nuclei=3, random_state=1)
    b, cb = make_histology(2, size=32, n_nuclei=3, random_state=1)
    c, _ = make_histology(2, size=32, n_nuclei=3, random_state=2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ca[0], cb[0])
    assert not np.allclose(a, c)


def test_default_stains_are_those_of_the_real_image():
    levels = stain_levels(load_image("immunohistochemistry"))
    for key, value in STAINS.items():
        assert abs(levels[key] - value) < 1e-3, key
    assert levels["nucleus_h"] > 2 * levels["background_h"]


def test_nuclei_are_hematoxylin_at_the_true_centres():
    images, centres = make_histology(4, size=64, n_nuclei=8, random_state=0)
    h = np.stack([rgb2hed(img)[..., 0] for img in images])
    rr, cc = np.mgrid[:64, :64]
    at_centre, far = [], []
    for i, c in enumerate(centres):
        idx = np.round(c).astype(int)
        at_centre.append(h[i, idx[:, 0], idx[:, 1]])
        d = np.min(np.hypot(rr[..., None] - c[:, 0], cc[..., None] - c[:, 1]), -1)
        far.append(h[i][d > 15])
    assert np.median(np.concatenate(at_centre)) > 1.7 * np.median(np.concatenate(far))
    # an image without nuclei has no nuclear levels of hematoxylin
    empty, none = make_histology(1, size=64, n_nuclei=0, random_state=0)
    assert none[0].shape == (0, 2)
    h0 = rgb2hed(empty[0])[..., 0]
    assert np.percentile(h0, 99) < np.percentile(np.concatenate(at_centre), 25)


def test_neighbours_touch_but_respect_min_distance():
    _, centres = make_histology(3, size=64, n_nuclei=25, radius=5.0, random_state=0)
    d = np.concatenate([pdist(c) for c in centres])
    assert d.min() >= 1.2 * 5.0 - 1e-9
    assert (d < 2 * 5.0).sum() >= 3  # some nuclei overlap (closer than 2 radii)
    _, far = make_histology(1, size=64, n_nuclei=5, min_distance=20.0,
                            random_state=0)
    assert pdist(far[0]).min() >= 20.0


def test_noise_and_blur_act():
    kw = dict(n_images=1, size=48, n_nuclei=4, random_state=0)
    rough = np.diff(make_histology(noise=0.1, blur=0.0, **kw)[0], axis=1).std()
    smooth = np.diff(make_histology(noise=0.0, blur=2.0, **kw)[0], axis=1).std()
    assert rough > 3 * smooth


def test_stains_override():
    red, _ = make_histology(1, size=32, n_nuclei=0, stains={"eosin": 0.3},
                            random_state=0)
    plain, _ = make_histology(1, size=32, n_nuclei=0, random_state=0)
    assert rgb2hed(red[0])[..., 1].mean() > rgb2hed(plain[0])[..., 1].mean() + 0.05


@pytest.mark.parametrize("kw, match", [
    ({"n_images": 0}, "n_images"),
    ({"n_images": 2.5}, "n_images"),
    ({"size": 4}, "size"),
    ({"size": (32, 32, 3)}, "size"),
    ({"n_nuclei": -1}, "n_nuclei"),
    ({"radius": 0.5}, "radius"),
    ({"radius": float("nan")}, "radius"),
    ({"elongation": 0.5}, "elongation"),
    ({"intensity_var": 1.5}, "intensity_var"),
    ({"noise": -0.1}, "noise"),
    ({"blur": -1.0}, "blur"),
    ({"stains": {"dab": -1.0}}, "dab"),
    ({"stains": {"purple": 0.1}}, "unknown"),
    ({"n_nuclei": 200, "size": 32}, "could not place"),
    ({"radius": 20.0, "size": 32}, "too small"),
])
def test_bad_parameters_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        make_histology(**{"n_images": 1, "size": 32, "n_nuclei": 2, **kw})


def test_bad_stains_and_images():
    with pytest.raises(TypeError, match="stains"):
        make_histology(1, size=32, stains=[0.1])
    with pytest.raises(ValueError, match="shape"):
        stain_levels(np.zeros((8, 8)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stain_levels(np.full((8, 8, 3), 2.0))
