"""Images bundled with scikit-learn and scikit-image, and image files, in [0, 1]."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np

from ._packages import install_hint

__all__ = ["IMAGE_NAMES", "load_digits_images", "load_image", "load_lfw_subset",
           "read_image"]

_SKLEARN = ("china.jpg", "flower.jpg")
_SKIMAGE = ("astronaut", "brick", "camera", "cell", "chelsea", "coffee", "coins",
            "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry",
            "moon", "page", "retina", "rocket", "text")
#: Names `load_image` knows: scikit-learn's sample images and scikit-image's.
IMAGE_NAMES = _SKLEARN + _SKIMAGE


def _skimage():
    try:
        import skimage.color
        import skimage.data
    except ImportError as err:
        raise ImportError("This needs scikit-image: "
                          + install_hint("images")) from err
    return skimage


def _as_float_image(img: np.ndarray, grey: bool) -> np.ndarray:
    """uint8/bool/float pixels as float64 in [0, 1]; RGBA drops alpha."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        img = img / 255.0
    elif img.dtype == np.uint16:
        img = img / 65535.0
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if grey and img.ndim == 3:
        img = _skimage().color.rgb2gray(img)
    return img


def load_image(name: str, *, grey: bool = False) -> np.ndarray:
    """One of the images bundled with scikit-learn or scikit-image.

    Parameters
    ----------
    name : str
        ``"china.jpg"`` or ``"flower.jpg"`` (scikit-learn) or a scikit-image
        name such as ``"camera"``, ``"astronaut"``, ``"coins"`` or
        ``"immunohistochemistry"`` (see `IMAGE_NAMES`).
    grey : bool, default=False
        Convert colour images to grey (``skimage.color.rgb2gray``).

    Returns
    -------
    ndarray of shape (h, w) or (h, w, 3)
        float64 pixels in [0, 1].

    Examples
    --------
    >>> from sparsecode.data.images import load_image
    >>> load_image("astronaut", grey=True).shape
    (512, 512)
    """
    if name in _SKLEARN:
        from sklearn.datasets import load_sample_image

        return _as_float_image(load_sample_image(name), grey)
    if name not in _SKIMAGE:
        raise ValueError(f"Unknown image {name!r}; expected one of {IMAGE_NAMES}.")
    return _as_float_image(getattr(_skimage().data, name)(), grey)


def read_image(path: str | PathLike, *, grey: bool = False) -> np.ndarray:
    """An image file (PNG, JPEG, TIFF, ... anything Pillow reads) in [0, 1].

    Parameters
    ----------
    path : str or path-like
    grey : bool, default=False
        Convert colour to grey (``skimage.color.rgb2gray``).

    Returns
    -------
    ndarray of shape (h, w) or (h, w, 3)
        float64 pixels in [0, 1] (8- and 16-bit files are scaled).

    Examples
    --------
    >>> import os, skimage
    >>> from sparsecode.data.images import read_image
    >>> path = os.path.join(os.path.dirname(skimage.__file__), "data", "coins.png")
    >>> read_image(path).shape
    (303, 384)
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as err:
        raise ImportError("Reading image files needs Pillow: "
                          + install_hint("images")) from err
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No image file at {path}.")
    try:
        with Image.open(path) as im:
            if im.mode in ("P", "LA", "PA", "CMYK", "YCbCr", "HSV", "1"):
                im = im.convert("RGBA" if "A" in im.mode else "RGB")
            img = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"Cannot read {path} as an image: {err}") from err
    if img.ndim not in (2, 3):
        raise ValueError(f"{path} holds an array of shape {img.shape}, not an image.")
    return _as_float_image(img, grey)


def load_lfw_subset() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's ``lfw_subset``: 100 faces and 100 non-faces, 25 x 25.

    Returns
    -------
    images : ndarray of shape (200, 25, 25)
        float64 in [0, 1].
    y : ndarray of shape (200,)
        1 for a face (the first 100), 0 for a non-face.

    Examples
    --------
    >>> from sparsecode.data.images import load_lfw_subset
    >>> images, y = load_lfw_subset()
    >>> images.shape, int(y.sum())
    ((200, 25, 25), 100)
    """
    images = np.asarray(_skimage().data.lfw_subset(), dtype=np.float64)
    y = np.zeros(len(images), dtype=np.int64)
    y[: len(images) // 2] = 1
    return images, y


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as images: 1797 8 x 8 images in [0, 1], labels.

    Examples
    --------
    >>> from sparsecode.data.images import load_digits_images
    >>> images, y = load_digits_images()
    >>> images.shape, float(images.max())
    ((1797, 8, 8), 1.0)
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images / 16.0, digits.target
