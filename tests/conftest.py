"""Shared fixtures: real image patches from scikit-learn's bundled china.jpg."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def china_patches():
    """3000 centred, standardised 8x8 grey patches of china.jpg (float64)."""
    from sklearn.datasets import load_sample_image
    from sklearn.feature_extraction.image import extract_patches_2d

    img = load_sample_image("china.jpg").mean(axis=2) / 255.0
    P = extract_patches_2d(img, (8, 8), max_patches=3000, random_state=0)
    P = P.reshape(len(P), -1)
    P -= P.mean(axis=0)
    P /= P.std(axis=0)
    return P
