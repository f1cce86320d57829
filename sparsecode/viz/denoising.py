"""Before/after figure of image denoising: clean | noisy | each denoised image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._common import _pyplot, _save

__all__ = ["plot_denoising", "psnr"]


def psnr(clean: Any, image: Any, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio of ``image`` against ``clean``, in dB.

    ``10 log10(data_range**2 / mse)``, as scikit-image's
    ``peak_signal_noise_ratio``; ``inf`` for identical images.

    Parameters
    ----------
    clean, image : array-like of the same shape
    data_range : float, default=1.0
        Peak-to-peak range of the pixels (1 for images in [0, 1]).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode.viz.denoising import psnr
    >>> round(psnr(np.zeros((4, 4)), np.full((4, 4), 0.1)), 6)
    20.0
    """
    a, b = np.asarray(clean, dtype=float), np.asarray(image, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"image of shape {b.shape} does not match clean of shape "
                         f"{a.shape}.")
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range!r}.")
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range ** 2 / mse))


def _check_panels(clean: Any, noisy: Any,
                  results: Mapping[str, Any]) -> list[np.ndarray]:
    """clean, noisy and each result as float arrays of one grey/RGB shape."""
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results must be a non-empty dict of name -> denoised "
                         "image.")
    images = [np.asarray(clean, dtype=float), np.asarray(noisy, dtype=float)]
    images += [np.asarray(v, dtype=float) for v in results.values()]
    shape = images[0].shape
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (3, 4)):
        raise ValueError("clean must have shape (h, w) or (h, w, 3), got "
                         f"{shape}.")
    names = ["noisy", *map(str, results)]
    for name, img in zip(names, images[1:], strict=True):
        if img.shape != shape:
            raise ValueError(f"{name!r} has shape {img.shape}, expected the clean "
                             f"image's {shape}.")
    return images


def plot_denoising(
    clean: Any,
    noisy: Any,
    results: Mapping[str, Any],
    path: str | Path,
    *,
    titles: Sequence[str] | None = None,
    data_range: float = 1.0,
) -> Path:
    """Save clean | noisy | each denoised image in one row, PSNR in the titles.

    Parameters
    ----------
    clean : array-like of shape (h, w) or (h, w, 3)
        The reference image (pixels in ``[0, data_range]``).
    noisy : array-like of the same shape
    results : dict of str to array-like of the same shape
        Denoised images by method name (one panel each, in order).
    path : str or Path
        Output PNG file.
    titles : sequence of str, optional
        One per panel (``2 + len(results)``) replacing the default names
        ("clean", "noisy", the keys of ``results``); the PSNR against
        ``clean`` is appended to every title but the first.
    data_range : float, default=1.0
        Peak-to-peak pixel range for the PSNR and the display.

    Returns
    -------
    Path
        The written file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sparsecode.viz.denoising import plot_denoising
    >>> rng = np.random.default_rng(0)
    >>> clean = rng.uniform(size=(16, 16))
    >>> noisy = clean + 0.1 * rng.normal(size=clean.shape)
    >>> path = os.path.join(tempfile.mkdtemp(), "d.png")
    >>> plot_denoising(clean, noisy, {"mean": 0.5 * (clean + noisy)}, path).suffix
    '.png'
    """
    images = _check_panels(clean, noisy, results)
    names = ["clean", "noisy", *map(str, results)]
    if titles is not None:
        titles = [str(t) for t in titles]
        if len(titles) != len(names):
            raise ValueError(f"titles must hold {len(names)} strings (clean, noisy "
                             f"and one per result), got {len(titles)}.")
        names = titles
    plt = _pyplot()
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 3.3), squeeze=False)
    for i, (ax, img, name) in enumerate(zip(axes[0], images, names, strict=True)):
        shown = np.clip(img / data_range, 0.0, 1.0)
        if shown.ndim == 2:
            ax.imshow(shown, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(shown[..., :3], interpolation="nearest")
        ax.set_axis_off()
        label = name if i == 0 else (
            f"{name}\n{psnr(images[0], img, data_range):.2f} dB")
        ax.set_title(label, fontsize="small")
    return _save(fig, path)
