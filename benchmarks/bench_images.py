"""Patch-dictionary image denoising end to end: sparsecode vs scikit-learn.

Data: centred grey crops (``--size`` x ``--size``, default 256) of
scikit-image's ``camera`` and ``astronaut`` (``rgb2gray``), in [0, 1], plus
Gaussian noise of std sigma drawn with ``numpy.random.default_rng(seed)``.

Recipe (scikit-learn's "Image denoising using dictionary learning" example),
timed end to end for each library on the same noisy image:

1. ``--n-train`` random p x p patches of the noisy image (scikit-learn's
   ``extract_patches_2d(max_patches=..., random_state=seed)``, the same
   patches for both), each minus its own mean;
2. ``MiniBatchDictionaryLearning(n_components=--atoms, alpha=2 sigma,
   random_state=seed, transform_algorithm="lasso_lars",
   transform_alpha=2 sigma)``, every other parameter at its default (both
   libraries), fitted on them -- scikit-learn in float64, sparsecode in
   float32;
3. every patch on the step-``--step`` grid (default 1: all patches, as the
   example) centred, coded by the estimator's ``transform``, rebuilt
   (``codes @ components_`` plus the patch means) and averaged back into the
   image: scikit-learn with ``extract_patches_2d`` /
   ``reconstruct_from_patches_2d`` (step 1 only), sparsecode with
   ``sparsecode.data.images.extract_patches`` / ``PatchGrid.reconstruct``.

PSNR is scikit-image's ``peak_signal_noise_ratio(data_range=1)`` of the
output clipped to [0, 1]. Ratio = time(scikit-learn) / time(sparsecode):
above 1 means sparsecode is faster; dPSNR = ours - scikit-learn's. Wall
time and process CPU time (all threads; less sensitive to other jobs on a
shared machine) are both printed.
``--busy`` runs one CPU-bound process alongside the timings.

Run: ``python benchmarks/bench_images.py`` (``--quick``: camera, sigma 0.1,
a 128 crop, 64 atoms, 3000 training patches, seeds 0,1; ``--help``).
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import sklearn
import torch
from _load import cpu_load  # benchmarks/_load.py (scripts run from benchmarks/)
from skimage.metrics import peak_signal_noise_ratio
from sklearn import decomposition as skd
from sklearn.feature_extraction.image import (
    extract_patches_2d,
    reconstruct_from_patches_2d,
)

import sparsecode as sc
from sparsecode.data.images import extract_patches, load_image

IMAGES = ("camera", "astronaut")
Row = dict[str, Any]
FIT_ALPHA = TRANSFORM_ALPHA = 2.0  # in units of sigma


def crop(name: str, size: int) -> np.ndarray:
    """The centred size x size grey crop of an image."""
    img = load_image(name, grey=True)
    if size > min(img.shape):
        raise ValueError(f"--size {size} is larger than {name} {img.shape}")
    top, left = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
    return img[top:top + size, left:left + size]


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """fn(), its wall-clock and its process CPU seconds (all threads), after a
    collection and a short pause."""
    gc.collect()
    time.sleep(0.5)  # let the previous library's threads go idle
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def estimator_params(sigma: float, atoms: int, seed: int) -> dict[str, Any]:
    """The parameters the recipe fixes, the same for both libraries."""
    return {"n_components": atoms, "alpha": FIT_ALPHA * sigma, "random_state": seed,
            "transform_algorithm": "lasso_lars",
            "transform_alpha": TRANSFORM_ALPHA * sigma}


def training_patches(noisy: np.ndarray, p: int, n: int, seed: int) -> np.ndarray:
    """n random centred p x p patches (extract_patches_2d's sample)."""
    X = extract_patches_2d(noisy, (p, p), max_patches=n, random_state=seed)
    X = X.reshape(len(X), -1)
    return X - X.mean(axis=1, keepdims=True)


def denoise_sklearn(noisy: np.ndarray, sigma: float, seed: int,
                    args: argparse.Namespace) -> np.ndarray:
    """scikit-learn's recipe: sampled fit, every patch coded, reassembled."""
    p = args.patch
    est = skd.MiniBatchDictionaryLearning(**estimator_params(sigma, args.atoms, seed))
    est.fit(training_patches(noisy, p, args.n_train, seed))
    P = extract_patches_2d(noisy, (p, p)).reshape(-1, p * p)
    mean = P.mean(axis=1, keepdims=True)
    R = est.transform(P - mean) @ est.components_ + mean
    return reconstruct_from_patches_2d(R.reshape(-1, p, p), noisy.shape)


def denoise_ours(noisy: np.ndarray, sigma: float, seed: int,
                 args: argparse.Namespace) -> np.ndarray:
    """sparsecode's recipe on the same patches (float32), strided grid allowed."""
    p = args.patch
    est = sc.MiniBatchDictionaryLearning(**estimator_params(sigma, args.atoms, seed),
                                         device=args.device)
    est.fit(training_patches(noisy, p, args.n_train, seed).astype(np.float32))
    X, grid = extract_patches(noisy, p, step=args.step)
    U = np.asarray(est.transform(X.astype(np.float32)))
    return grid.reconstruct(U @ np.asarray(est.components_))


def psnr(clean: np.ndarray, image: np.ndarray) -> float:
    """PSNR in dB of image clipped to [0, 1]."""
    return float(peak_signal_noise_ratio(clean, np.clip(image, 0, 1),
                                         data_range=1.0))


def bench_one(clean: np.ndarray, sigma: float, seed: int,
              args: argparse.Namespace) -> Row:
    """Both pipelines on one noisy image: times, PSNRs, ratio."""
    noisy = clean + sigma * np.random.default_rng(seed).standard_normal(clean.shape)
    ours, t_ours, c_ours = timed(lambda: denoise_ours(noisy, sigma, seed, args))
    theirs, t_sk, c_sk = timed(lambda: denoise_sklearn(noisy, sigma, seed, args))
    row = {"sigma": sigma, "seed": seed, "psnr_noisy": psnr(clean, noisy),
           "t_ours": t_ours, "t_sklearn": t_sk, "ratio": t_sk / t_ours,
           "c_ours": c_ours, "c_sklearn": c_sk, "cpu_ratio": c_sk / c_ours,
           "psnr_ours": psnr(clean, ours), "psnr_sklearn": psnr(clean, theirs)}
    row["dpsnr"] = row["psnr_ours"] - row["psnr_sklearn"]
    return row


COLUMNS = (("image", "image", 10, "s"), ("sigma", "sigma", 5, ".2g"),
           ("seed", "seed", 4, "d"), ("psnr_noisy", "noisy dB", 8, ".2f"),
           ("t_sklearn", "sk s", 8, ".2f"), ("t_ours", "ours s", 7, ".2f"),
           ("ratio", "sk/ours", 7, ".1f"), ("c_sklearn", "sk cpu s", 8, ".2f"),
           ("c_ours", "ours cpu s", 10, ".2f"), ("cpu_ratio", "cpu sk/ours", 11, ".1f"),
           ("psnr_sklearn", "sk dB", 6, ".2f"),
           ("psnr_ours", "ours dB", 7, ".2f"), ("dpsnr", "dPSNR", 6, "+.2f"))


def format_row(row: Row) -> str:
    """One fixed-width text line of COLUMNS."""
    return "  ".join(format(row[key], spec).rjust(width)
                     for key, _, width, spec in COLUMNS)


def text_header() -> str:
    """The header line for format_row."""
    return "  ".join(head.rjust(width) for _, head, width, _ in COLUMNS)


def print_summary(rows: list[Row]) -> None:
    """Worst and median time ratio and PSNR difference over the rows."""
    if not rows:
        return
    print(f"\nsummary over {len(rows)} runs (ratio > 1: sparsecode faster; "
          "dPSNR > 0: sparsecode's output closer to the clean image)")
    for key, label, spec in (("ratio", "wall time ratio sklearn/ours", "7.2f"),
                             ("cpu_ratio", "CPU time ratio sklearn/ours", "7.2f"),
                             ("dpsnr", "dPSNR ours - sklearn dB", "+7.3f")):
        values = [r[key] for r in rows]
        print(f"  {label:28s}: worst {min(values):{spec}}, median "
              f"{np.median(values):{spec}}")


def warm_up(args: argparse.Namespace) -> None:
    """One small fit and transform per library, so none pays start-up costs."""
    X = training_patches(crop("camera", 64) + 0.0, args.patch, 1024, 0)
    for est in (skd.MiniBatchDictionaryLearning(16, max_iter=1, random_state=0,
                                                transform_algorithm="lasso_lars"),
                sc.MiniBatchDictionaryLearning(16, max_iter=1, random_state=0,
                                               transform_algorithm="lasso_lars",
                                               device=args.device)):
        data = X if isinstance(est, skd.MiniBatchDictionaryLearning) else \
            X.astype(np.float32)
        est.fit(data).transform(data[:256])


def comma_list(kind: type) -> Callable[[str], list]:
    """An argparse type: a comma-separated list of kind."""
    return lambda text: [kind(v) for v in text.split(",") if v.strip()]


def parse_args() -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=comma_list(str), default=list(IMAGES))
    parser.add_argument("--sigmas", type=comma_list(float), default=[0.1, 0.2])
    parser.add_argument("--seeds", type=comma_list(int), default=[0, 1, 2])
    parser.add_argument("--size", type=int, default=256, help="crop side")
    parser.add_argument("--patch", type=int, default=7)
    parser.add_argument("--atoms", type=int, default=100)
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--step", type=int, default=1,
                        help="sparsecode's coding grid (scikit-learn's is 1)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--busy", action="store_true",
                        help="run one CPU-bound process during the timings")
    args = parser.parse_args()
    if args.quick:
        args.images, args.sigmas, args.seeds = ["camera"], [0.1], [0, 1]
        args.size, args.atoms, args.n_train = 128, 64, 3000
    for name in args.images:
        if name not in IMAGES:
            parser.error(f"unknown image {name!r}; choose from {','.join(IMAGES)}")
    return args


def print_header(args: argparse.Namespace) -> None:
    """Library versions, threads and the run's settings."""
    cores = os.cpu_count()
    print(f"{cores} cores; torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads), scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
          f"sparsecode device {args.device!r}")
    print(f"images {','.join(args.images)} ({args.size}x{args.size}), sigmas "
          f"{args.sigmas}, seeds {args.seeds}, patch {args.patch}, atoms "
          f"{args.atoms}, train {args.n_train}, sparsecode step {args.step}")
    print("busy: 1 CPU-bound process running" if args.busy else "busy: none")
    print(text_header(), flush=True)


def main() -> None:
    """Warm up, time every image x sigma x seed, print rows and the summary."""
    args = parse_args()
    warnings.filterwarnings("ignore")  # early stopping / lars convergence chatter
    print_header(args)
    rows: list[Row] = []
    try:
        with cpu_load(args.busy):
            warm_up(args)
            for name in args.images:
                clean = crop(name, args.size)
                for sigma in args.sigmas:
                    for seed in args.seeds:
                        rows.append({"image": name,
                                     **bench_one(clean, sigma, seed, args)})
                        print(format_row(rows[-1]), flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: the summary covers the rows that finished")
    print_summary(rows)


if __name__ == "__main__":
    main()
