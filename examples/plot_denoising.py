"""
Denoising an image with a patch dictionary
==========================================

The classic recipe: learn a dictionary on the centred 7x7 patches of a noisy
image, code every patch sparsely (OMP with 2 atoms, or the lasso), put the
patches back (overlaps averaged, means restored) and compare PSNR with the
noisy input. ``SPARSECODE_EXAMPLES_FULL=1`` runs the full-size image.
"""

import os
import time
from pathlib import Path

import numpy as np
from skimage.metrics import peak_signal_noise_ratio

from sparsecode import MiniBatchDictionaryLearning, sparse_encode
from sparsecode.data.image_files import load_image
from sparsecode.data.images import extract_patches, sample_patches
from sparsecode.viz import plot_denoising

QUICK = not os.environ.get("SPARSECODE_EXAMPLES_FULL")
OUT = Path(os.environ.get("SPARSECODE_EXAMPLES_OUT", "out/examples"))
sigma = 0.1
clean = load_image("camera", grey=True)[:128, 192:320] if QUICK else load_image(
    "camera", grey=True)
noisy = clean + sigma * np.random.default_rng(0).normal(size=clean.shape)

# %%
# Learn the dictionary on the noisy patches, then code every patch.
t0 = time.perf_counter()
train = sample_patches(noisy, 7, 2000 if QUICK else 20_000, random_state=0)
dico = MiniBatchDictionaryLearning(64 if QUICK else 100, alpha=2 * sigma,
                                   random_state=0, device="cpu").fit(train)
patches, grid = extract_patches(noisy, 7, step=2 if QUICK else 1)
results = {}
for name, kw in {"OMP-2": dict(algorithm="omp", n_nonzero_coefs=2),
                 "lasso": dict(algorithm="lasso_lars", alpha=2 * sigma)}.items():
    codes = sparse_encode(patches, dico.components_, **kw)
    results[name] = np.clip(grid.reconstruct(codes @ dico.components_), 0, 1)
print(f"fit and code in {time.perf_counter() - t0:.1f} s")

# %%
# PSNR before and after.
psnr = {name: peak_signal_noise_ratio(clean, img, data_range=1.0)
        for name, img in {"noisy": noisy, **results}.items()}
for name, value in psnr.items():
    print(f"PSNR {name}: {value:.2f} dB")
path = plot_denoising(clean, noisy, results, OUT / "denoising.png")
print(f"figure: {path}")
