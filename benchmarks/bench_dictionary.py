"""sparsecode vs scikit-learn dictionary learning, side by side in one process.

Data: 50,000 centred, standardised 8x8 grey patches of scikit-learn's
``china.jpg`` for training and 10,000 held out; 256 atoms; alpha = 1.

1. Fit: sklearn's ``MiniBatchDictionaryLearning`` (its defaults, early
   stopping on, float64) against sparsecode's (one pass, batch 512, on the
   same data cast to float32), each with seeds 0..4 after one small warm-up
   fit per library, timed (sparsecode's fit just before and just after
   sklearn's, averaged: the machine's speed drifts); then the held-out objective
   ``mean_i 0.5||x_i - u_i V||^2 + alpha ||u_i||_1`` of each dictionary with
   exact lasso codes (the same solver for both, so only the dictionaries
   differ).
2. Encode: ``sparse_encode`` of the held-out patches on sklearn's dictionary:
   sklearn's ``lasso_lars`` and ``lasso_cd`` against sparsecode's
   ``lasso_lars``; time and objective.

Run: ``python benchmarks/bench_dictionary.py`` (``--quick`` for a smaller run).
"""

from __future__ import annotations

import argparse
import gc
import time
import warnings

import numpy as np
import torch
from sklearn import decomposition as skd
from sklearn.exceptions import ConvergenceWarning

import sparsecode as sc
from sparsecode.data.images import load_china_patches


def heldout_objective(X: np.ndarray, V: np.ndarray, alpha: float) -> float:
    """Mean per-sample lasso objective of X on dictionary V (exact codes)."""
    U = sc.sparse_encode(X, V, algorithm="lasso_lars", alpha=alpha)
    resid = 0.5 * ((X - U @ V) ** 2).sum(1).mean()
    return float(resid + alpha * np.abs(U).sum(1).mean())


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_fit(X_tr, X_te, n_components, alpha, ours_kw, seeds):
    """Fit both libraries with each seed (after one small warm-up fit each, so
    neither pays one-time start-up costs) and compare mean time and objective."""
    X32 = X_tr.astype(np.float32)  # the same data; sparsecode computes in its dtype

    def make_sk(seed):
        return skd.MiniBatchDictionaryLearning(n_components, alpha=alpha,
                                               random_state=seed)

    def make_ours(seed):
        return sc.MiniBatchDictionaryLearning(n_components, alpha=alpha,
                                              random_state=seed, **ours_kw)

    make_sk(0).set_params(max_iter=1).fit(X_tr[:2048])
    make_ours(0).fit(X32[:2048])
    res = {"sklearn": [], "sparsecode": []}

    def run(make, data, seed):
        gc.collect()
        time.sleep(1.0)  # let the other library's threads go idle first
        return timed(lambda: make(seed).fit(data))

    for seed in seeds:
        # the machine's speed drifts over tens of seconds: sparsecode's fit
        # (~2 s) runs just before and just after sklearn's (~20 s), and its
        # time is the mean of the two
        ours, t1 = run(make_ours, X32, seed)
        sk, t_sk = run(make_sk, X_tr, seed)
        _, t2 = run(make_ours, X32, seed)
        for name, est, t, note in (("sklearn", sk, t_sk, ""),
                                   ("sparsecode", ours, (t1 + t2) / 2,
                                    f" (runs {t1:.2f}, {t2:.2f} s)")):
            obj = heldout_objective(X_te, est.components_.astype(np.float64), alpha)
            res[name].append((t, obj, est))
            print(f"fit  {name:10s} seed {seed}: {t:8.2f} s  steps "
                  f"{est.n_steps_:5d}  held-out objective {obj:.4f}{note}",
                  flush=True)
    (t_sk, o_sk), (t_ours, o_ours) = (
        np.mean([r[:2] for r in res[k]], axis=0) for k in ("sklearn", "sparsecode"))
    ratios = [a[0] / b[0]
              for a, b in zip(res["sklearn"], res["sparsecode"], strict=True)]
    print(f"fit  mean: sklearn {t_sk:.2f} s / {o_sk:.4f}, sparsecode {t_ours:.2f} s"
          f" / {o_ours:.4f}  ({ours_kw})")
    print(f"fit  speed-up {t_sk / t_ours:.1f}x (ratio of means; per seed "
          f"{', '.join(f'{r:.1f}' for r in ratios)}, median {np.median(ratios):.1f}x),"
          f" objective ratio ours/sklearn {o_ours / o_sk:.4f}")
    return res["sklearn"][0][2].components_


def bench_encode(X_te, V, alpha):
    rows = {}
    for name in ("lasso_lars", "lasso_cd"):
        U, t = timed(lambda a=name: skd.sparse_encode(X_te, V, algorithm=a,
                                                      alpha=alpha))
        rows[f"sklearn {name}"] = (t, U)
    U, t = timed(lambda: sc.sparse_encode(X_te, V, algorithm="lasso_lars",
                                          alpha=alpha))
    rows["sparsecode lasso_lars"] = (t, U)

    def obj(U):
        return 0.5 * ((X_te - U @ V) ** 2).sum() + alpha * np.abs(U).sum()

    for name, (t, U) in rows.items():
        print(f"encode {name:22s}: {t:7.2f} s  objective {obj(U):.6g}")
    best = min((v for k, v in rows.items() if k.startswith("sklearn")),
               key=lambda v: v[0])
    ours = rows["sparsecode lasso_lars"]
    print(f"encode speed-up vs sklearn's fastest lasso: {best[0] / ours[0]:.1f}x, "
          f"objective ratio {obj(ours[1]) / obj(best[1]):.6f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--max-iter", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=5,
                        help="fits per library (seeds 0..N-1); times are averaged")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    n_tr, n_te, k = (10_000, 2_000, 128) if args.quick else (50_000, 10_000, 256)
    X = load_china_patches(n_tr + n_te).astype(np.float64)
    X_tr, X_te = X[:n_tr], X[n_tr:]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"train {X_tr.shape}, held-out {X_te.shape}, {k} atoms, alpha=1")
    ours_kw = dict(batch_size=args.batch_size, max_iter=args.max_iter, device="cpu")
    V = bench_fit(X_tr, X_te, k, 1.0, ours_kw, range(args.seeds))
    bench_encode(X_te, V, 1.0)
    if torch.cuda.is_available():
        Xg = torch.as_tensor(X_te, device="cuda")
        _, t = timed(lambda: sc.sparse_encode(Xg, V, algorithm="lasso_lars"))
        print(f"encode sparsecode lasso_lars on CUDA: {t:.2f} s")


if __name__ == "__main__":
    main()
