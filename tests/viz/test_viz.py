"""Figures: each writes a PNG matplotlib reads back, of the expected layout."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio  # noqa: E402

from sparsecode.viz import (  # noqa: E402
    plot_atoms,
    plot_density_histograms,
    plot_frontier,
    plot_spectra,
)
from sparsecode.viz.denoising import plot_denoising, psnr  # noqa: E402


@pytest.fixture
def saved(monkeypatch):
    """The figures saved during a test: each one's axes titles and image axes."""
    figures = []
    original = Figure.savefig

    def savefig(fig, *args, **kwargs):
        figures.append({"n_axes": len(fig.axes),
                        "titles": [ax.get_title() for ax in fig.axes],
                        "n_images": sum(len(ax.images) for ax in fig.axes)})
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return figures


def _png(path):
    img = mpimg.imread(path)
    assert img.dtype == np.float32 and img.ndim == 3 and img.shape[2] in (3, 4)
    return img


# ------------------------------------------------------------------ atoms
def test_plot_atoms_grid_of_grey_atoms(tmp_path, saved):
    atoms = np.random.default_rng(0).normal(size=(10, 49))
    out = plot_atoms(atoms, (7, 7), tmp_path / "sub" / "atoms.png", n_cols=4)
    assert out == tmp_path / "sub" / "atoms.png"
    img = _png(out)
    assert img.shape[:2] == (180, 240)  # 3 rows x 4 columns of 0.6 in at 100 dpi
    assert saved[0]["n_axes"] == 12 and saved[0]["n_images"] == 10


def test_plot_atoms_colour_atoms_and_title(tmp_path, saved):
    atoms = np.random.default_rng(1).uniform(size=(3, 4 * 4 * 3))
    _png(plot_atoms(atoms, (4, 4, 3), tmp_path / "c.png", title="colour"))
    assert saved[0]["n_axes"] == 3 and saved[0]["n_images"] == 3


@pytest.mark.parametrize("components, shape", [
    (np.zeros((4, 50)), (7, 7)),     # 50 values are not 7x7 patches
    (np.zeros(49), (7, 7)),          # not 2-D
    (np.zeros((4, 49)), (7, 7, 1, 1)),
])
def test_plot_atoms_rejects_wrong_shapes(tmp_path, components, shape):
    with pytest.raises(ValueError, match="components"):
        plot_atoms(components, shape, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


# ---------------------------------------------------------------- spectra
def test_plot_spectra_lines_with_reference(tmp_path, saved):
    wl = np.linspace(400, 700, 31)
    S = np.random.default_rng(0).uniform(size=(3, 31))
    out = plot_spectra(S, wl, tmp_path / "s.png", labels=["a", "b", "c"],
                       reference=S * 0.9, title="endmembers")
    assert _png(out).shape[:2] == (400, 600)
    assert saved[0]["n_axes"] == 1 and saved[0]["titles"] == ["endmembers"]


@pytest.mark.parametrize("kwargs, match", [
    ({"wavelengths": np.arange(30)}, "wavelengths"),
    ({"reference": np.ones((2, 30))}, "reference"),
    ({"labels": ["only one"]}, "labels"),
])
def test_plot_spectra_rejects_mismatches(tmp_path, kwargs, match):
    args = {"spectra": np.ones((2, 31)), "wavelengths": np.arange(31), **kwargs}
    with pytest.raises(ValueError, match=match):
        plot_spectra(args.pop("spectra"), args.pop("wavelengths"),
                     tmp_path / "bad.png", **args)


# --------------------------------------------------------------- frontier
def test_plot_frontier_one_line_per_family(tmp_path, saved):
    rows = [{"family": fam, "l0": l0, "fvu": 1.0 / l0}
            for fam in ("sae", "dictionary") for l0 in (2, 8, 32)]
    out = plot_frontier(rows, tmp_path / "f.png")
    assert _png(out).shape[:2] == (400, 600)
    assert saved[0]["n_axes"] == 1


def test_plot_density_histograms(tmp_path, saved):
    dens = {"a": np.random.default_rng(0).uniform(size=100), "b": np.zeros(50)}
    out = plot_density_histograms(dens, tmp_path / "h.png")
    assert _png(out).shape[:2] == (400, 600)
    assert saved[0]["n_axes"] == 1


# -------------------------------------------------------------- denoising
def _images(shape=(32, 40), seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.uniform(size=shape)
    noisy = clean + 0.1 * rng.normal(size=shape)
    return clean, noisy, {"half": 0.5 * (clean + noisy), "clean copy": clean + 0.01}


def test_plot_denoising_panels_and_psnr_titles(tmp_path, saved):
    clean, noisy, results = _images()
    out = plot_denoising(clean, noisy, results, tmp_path / "d.png")
    img = _png(out)
    assert img.shape[:2] == (330, 4 * 260)  # 2.6 x 3.3 in per panel at 100 dpi
    fig = saved[0]
    assert fig["n_axes"] == 4 and fig["n_images"] == 4
    assert fig["titles"][0] == "clean"
    for title, image in zip(fig["titles"][1:], [noisy, *results.values()],
                            strict=True):
        expected = peak_signal_noise_ratio(clean, image, data_range=1.0)
        assert title.endswith(f"{expected:.2f} dB"), (title, expected)
    assert fig["titles"][2].startswith("half")


def test_plot_denoising_custom_titles_and_colour(tmp_path, saved):
    clean, noisy, results = _images((16, 16, 3), seed=1)
    titles = ["ref", "input", "A", "B"]
    _png(plot_denoising(clean, noisy, results, tmp_path / "c.png", titles=titles))
    assert [t.split("\n")[0] for t in saved[0]["titles"]] == titles


@pytest.mark.parametrize("case, match", [
    ("empty", "non-empty dict"),
    ("noisy_shape", "noisy"),
    ("result_shape", "half"),
    ("clean_1d", "clean"),
    ("titles", "titles"),
])
def test_plot_denoising_rejects_bad_input(tmp_path, case, match):
    clean, noisy, results = _images()
    kwargs = {}
    if case == "empty":
        results = {}
    elif case == "noisy_shape":
        noisy = noisy[:-1]
    elif case == "result_shape":
        results["half"] = results["half"].T
    elif case == "clean_1d":
        clean, noisy = clean.ravel(), noisy.ravel()
        results = {"x": clean}
    else:
        kwargs["titles"] = ["only", "three", "titles"]
    with pytest.raises(ValueError, match=match):
        plot_denoising(clean, noisy, results, tmp_path / "bad.png", **kwargs)
    assert not (tmp_path / "bad.png").exists()


def test_psnr_matches_scikit_image_and_rejects_mismatch():
    clean, noisy, _ = _images()
    assert psnr(clean, noisy) == pytest.approx(
        peak_signal_noise_ratio(clean, noisy, data_range=1.0))
    assert psnr(clean, clean) == float("inf")
    with pytest.raises(ValueError, match="shape"):
        psnr(clean, noisy[:, :-1])
    with pytest.raises(ValueError, match="data_range"):
        psnr(clean, noisy, data_range=0)
