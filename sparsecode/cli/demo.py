"""``sparsecode demo``: a dictionary of china.jpg patches, its metrics and atoms."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ..data.images import load_china_patches
from ..dictionary import MiniBatchDictionaryLearning, sparse_encode
from ..metrics import fvu, l0
from ..viz import plot_atoms
from .options import FORMAT, positive_float, positive_int

__all__ = ["add_command", "demo", "run"]


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register the ``demo`` subcommand."""
    p = sub.add_parser("demo", help="dictionary learning on china.jpg patches",
                       formatter_class=FORMAT)
    p.add_argument("--out", default="out", help="output folder")
    p.add_argument("--n-patches", type=positive_int, default=20_000,
                   help="training patches (2,000 more are held out)")
    p.add_argument("--n-components", type=positive_int, default=128,
                   help="dictionary atoms")
    p.add_argument("--alpha", type=positive_float, default=1.0,
                   help="lasso penalty of fit and held-out coding")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def run(args: argparse.Namespace) -> None:
    """Run ``sparsecode demo`` with parsed arguments."""
    demo(args.out, args.n_patches, args.n_components, args.alpha, args.device)


def demo(
    out: str | Path = "out", n_patches: int = 20_000, n_components: int = 128,
    alpha: float = 1.0, device: str = "auto",
) -> dict:
    """Learn a dictionary on 8x8 patches of china.jpg; print metrics, save atoms.

    Returns the printed metrics as a dict.
    """
    X = load_china_patches(n_patches + 2000)
    X_train, X_test = X[:n_patches], X[n_patches:]
    est = MiniBatchDictionaryLearning(
        n_components, alpha=alpha, batch_size=1024, max_iter=5, random_state=0,
        device=device,
    )
    t0 = time.perf_counter()
    est.fit(X_train)
    fit_s = time.perf_counter() - t0
    codes = sparse_encode(X_test, est.components_, algorithm="lasso_lars",
                          alpha=alpha)
    recon = codes @ est.components_
    objective = float(0.5 * ((X_test - recon) ** 2).sum(1).mean()
                      + alpha * np.abs(codes).sum(1).mean())
    result = {"n_train": len(X_train), "n_components": n_components,
              "fit_seconds": fit_s, "steps": est.n_steps_,
              "heldout_objective_per_sample": objective, "heldout_l0": l0(codes),
              "heldout_fvu": fvu(X_test, recon)}
    for key, val in result.items():
        print(f"{key:>30}: {val:.4g}" if isinstance(val, float) else
              f"{key:>30}: {val}")
    png = plot_atoms(est.components_, (8, 8), Path(out) / "demo_atoms.png",
                     title=f"{n_components} atoms, china.jpg 8x8 patches")
    print(f"{'atoms':>30}: {png}")
    result["png"] = str(png)
    return result
