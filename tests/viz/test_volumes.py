"""plot_slices: orthogonal slices of one volume or a stack, one row each."""

import numpy as np
import pytest
from matplotlib.image import imread

from sparsecode.viz.volumes import plot_slices


def test_one_volume_and_a_stack(tmp_path):
    rng = np.random.default_rng(0)
    vol = rng.random((10, 12, 8))
    one = imread(plot_slices(vol, tmp_path / "one.png"))
    stack = np.stack([vol, vol, vol - 0.5])  # the last is signed: colour bar
    three = imread(plot_slices(stack, tmp_path / "sub" / "three.png",
                               labels=["a", "b", "a - b"], title="t"))
    assert three.shape[0] > 2.5 * one.shape[0]  # one row of slices per volume
    narrow = imread(plot_slices(vol, tmp_path / "axial.png", axes="axial"))
    assert narrow.shape[1] < one.shape[1] / 2  # one column per slice axis
    assert narrow.shape[0] == one.shape[0]


def test_slices_are_the_central_ones(tmp_path):
    vol = np.zeros((9, 9, 9))
    vol[4, 4, 4] = 1.0  # only the centre voxel lights: every slice shows it
    img = imread(plot_slices(vol, tmp_path / "c.png"))[..., :3].mean(-1)
    vol[4, 4, 4] = 0.0
    vol[0, 0, 0] = 1.0  # off every central slice: all black
    dark = imread(plot_slices(vol, tmp_path / "d.png"))[..., :3].mean(-1)
    assert img.shape == dark.shape
    assert (img > 0.9).sum() > (dark > 0.9).sum()


@pytest.mark.parametrize("volume, kw, err", [
    (np.zeros((4, 4)), {}, ValueError),
    (np.full((4, 4, 4), np.nan), {}, ValueError),
    (np.array([[["a"]]]), {}, TypeError),
    (np.zeros((4, 4, 4)), {"axes": ("top",)}, ValueError),
    (np.zeros((4, 4, 4)), {"axes": ()}, ValueError),
    (np.zeros((2, 4, 4, 4)), {"labels": ["only one"]}, ValueError),
])
def test_bad_input_is_refused(tmp_path, volume, kw, err):
    with pytest.raises(err):
        plot_slices(volume, tmp_path / "x.png", **kw)
    assert not (tmp_path / "x.png").exists()
