"""Speed of `SparseOvercompleteVectors` against the paper's per-word algorithm.

1. `SparseOvercompleteVectors` on all 400k GloVe-50d words to 500 dimensions
   for 20 epochs (the paper's setting): wall time, final objective, sparsity.
2. The same optimiser written the straightforward way, one word at a time in
   numpy (Faruqui et al.'s public code without its threads: per word a
   residual, the AdaGrad step on ``D`` and the AdaGrad-RDA update of the
   word's code), timed per epoch on a 20k-word subset. Its cost is linear in
   the number of words, so ``20 * 400k/20k`` times its epoch time is what 20
   epochs on all words would take; the ratio to (1) is the speed-up.
   The batched estimator is also timed on the same 20k subset.
3. ``transform`` of the next 20k (unseen) words with the 20k-word model:
   the default solver (FISTA finished exactly on its support) against the
   lasso homotopy (``transform_algorithm="lasso_lars"``); both give the exact
   minimiser, so the report gives their time and largest code difference.

Usage::

    PYTHONPATH=src python benchmarks/bench_words.py            # full (minutes)
    PYTHONPATH=src python benchmarks/bench_words.py --n-words 50000 --epochs 5
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch

from sparsecode.data.words import load_glove_6b_50d
from sparsecode.words import SparseOvercompleteVectors


def per_word_epoch(X: np.ndarray, D: np.ndarray, state: dict, lam: float,
                   tau: float, eta: float = 0.05) -> float:
    """One epoch of the paper's per-word AdaGrad / AdaGrad-RDA; returns seconds.

    ``X`` (n, L), ``D`` (L, K) updated in place; ``state`` holds the codes
    ``A``, the code accumulators ``G``, ``H``, the dictionary accumulator
    ``S`` and the update count ``t``.
    """
    A, G, H, S = state["A"], state["G"], state["H"], state["S"]
    t = state["t"] + 1
    c = 2.0 * tau / len(X)
    t0 = time.perf_counter()
    for i in range(len(X)):  # the reference: one word at a time
        a = A[i]
        diff = X[i] - D @ a
        g_dict = -2.0 * np.outer(diff, a) + c * D
        g_code = -2.0 * D.T @ diff
        S += g_dict * g_dict
        D -= eta * g_dict / np.sqrt(S + 1e-30)
        G[i] += g_code
        H[i] += g_code * g_code
        shrunk = np.maximum(np.abs(G[i]) - t * lam, 0.0)
        A[i] = -np.sign(G[i]) * eta * shrunk / np.sqrt(H[i] + 1e-30)
    state["t"] = t
    return time.perf_counter() - t0


def reference(X: np.ndarray, n_components: int, lam: float, tau: float,
              epochs: int, seed: int = 0) -> tuple[list[float], float]:
    """Seconds per epoch of the per-word loop (float32, like the estimator) and
    its final objective per word (paper's initialisation)."""
    rng = np.random.default_rng(seed)
    n, d = X.shape
    scale = 0.6 / math.sqrt(n_components + d)
    D = (scale * rng.uniform(-1, 1, (d, n_components))).astype(np.float32)
    state = {"A": (scale * rng.uniform(-1, 1, (n, n_components))).astype(np.float32),
             "G": np.zeros((n, n_components), np.float32),
             "H": np.zeros((n, n_components), np.float32),
             "S": np.zeros((d, n_components), np.float32), "t": 0}
    times = [per_word_epoch(X, D, state, lam, tau) for _ in range(epochs)]
    resid = X - state["A"] @ D.T
    obj = (resid**2).sum() + lam * np.abs(state["A"]).sum() + tau * (D**2).sum()
    return times, float(obj) / n


def batched(X: np.ndarray, n_components: int, epochs: int) -> SparseOvercompleteVectors:
    est = SparseOvercompleteVectors(n_components, max_iter=epochs, tol=0,
                                    random_state=0, device="cpu")
    return est.fit(X)


def _report(name: str, est: SparseOvercompleteVectors, seconds: float) -> None:
    print(f"{name}: {seconds:.1f} s for {est.n_iter_} epochs "
          f"({seconds / est.n_iter_:.2f} s/epoch), final objective per word "
          f"{est.objective_:.4f} (alpha {est.alpha_:.3f}), "
          f"{(est.codes_ == 0).mean():.1%} zeros")


def transform_speed(est: SparseOvercompleteVectors, X: np.ndarray) -> None:
    """Time ``transform`` of unseen words with both solvers; compare their
    per-word objectives (float64) and codes."""
    D, lam = est.components_.astype(np.float64), est.alpha_
    codes = {}
    for algo in ("fista", "lasso_lars"):
        est.set_params(transform_algorithm=algo)
        t0 = time.perf_counter()
        codes[algo] = A = est.transform(X)
        seconds = time.perf_counter() - t0
        resid = X - A.astype(np.float64) @ D
        obj = (resid**2).sum(1) + lam * np.abs(A).sum(1)
        print(f"transform of {len(X)} unseen words, {algo}: {seconds:.1f} s, "
              f"objective per word {obj.mean():.6f}")
    est.set_params(transform_algorithm="fista")
    diff = np.abs(codes["fista"] - codes["lasso_lars"]).max(1)
    print(f"codes differ by more than 1e-3 on {(diff > 1e-3).sum()} words "
          f"(largest {diff.max():.2e})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-words", type=int, default=None, help="default: all 400k")
    p.add_argument("--n-components", type=int, default=500)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--ref-words", type=int, default=20000)
    p.add_argument("--ref-epochs", type=int, default=2,
                   help="epochs of the per-word loop (20: compare objectives)")
    p.add_argument("--transform-words", type=int, default=20000,
                   help="unseen words to encode with both solvers (0: skip)")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} cpus; load average {os.getloadavg()[0]:.2f}")
    X = load_glove_6b_50d(limit=args.n_words).vectors
    K = args.n_components

    t0 = time.perf_counter()
    big = batched(X, K, args.epochs)
    t_big = time.perf_counter() - t0
    _report(f"batched, {len(X)} words", big, t_big)

    sub = X[: args.ref_words]
    t0 = time.perf_counter()
    small = batched(sub, K, args.epochs)
    _report(f"batched, {len(sub)} words", small, time.perf_counter() - t0)

    # the reference runs in the same (internal) units as the estimator
    s = small._scale
    lam = small.alpha_ / s**2
    times, obj = reference(sub / np.float32(s), K, lam, 1e-5, args.ref_epochs)
    per_epoch = float(np.median(times))
    print(f"per-word numpy loop, {len(sub)} words: {per_epoch:.1f} s/epoch; "
          f"objective per word after {args.ref_epochs} epochs {obj * s**2:.4f}")
    extrapolated = per_epoch * len(X) / len(sub) * args.epochs
    print(f"per-word loop extrapolated to {len(X)} words x {args.epochs} epochs: "
          f"{extrapolated:.0f} s")
    print(f"speed-up of the batched estimator: {extrapolated / t_big:.0f}x "
          f"(per epoch on the same {len(sub)} words: "
          f"{per_epoch / (small.history_[-1]['time'] / small.n_iter_):.0f}x)")
    if args.transform_words:
        transform_speed(small, X[len(sub): len(sub) + args.transform_words])
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
