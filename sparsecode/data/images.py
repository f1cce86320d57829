"""Images that ship with scikit-learn, as patch matrices for dictionary learning."""

from __future__ import annotations

import numpy as np

__all__ = ["load_china_patches"]


def load_china_patches(
    n_patches: int = 20_000, patch_size: int = 8, random_state: int = 0
) -> np.ndarray:
    """Centred, standardised grey patches of scikit-learn's bundled ``china.jpg``."""
    from sklearn.datasets import load_sample_image
    from sklearn.feature_extraction.image import extract_patches_2d

    img = load_sample_image("china.jpg").mean(axis=2) / 255.0
    P = extract_patches_2d(img, (patch_size, patch_size), max_patches=n_patches,
                           random_state=random_state)
    P = P.reshape(len(P), -1)
    P -= P.mean(axis=0)
    P /= P.std(axis=0)
    return P.astype(np.float32)
