"""sparsecode vs scikit-learn dictionary learning, side by side in one process.

Data: 50,000 centred, standardised 8x8 grey patches of scikit-learn's
``china.jpg`` for training and 10,000 held out; 256 atoms; alpha = 1.

1. Fit: sklearn's ``MiniBatchDictionaryLearning`` (its defaults, early
   stopping on, float64) against sparsecode's (one pass, batch 512, on the
   same data cast to float32), timed; then the held-out objective
   ``mean_i 0.5||x_i - u_i V||^2 + alpha ||u_i||_1`` of each dictionary with
   exact lasso codes (the same solver for both, so only the dictionaries
   differ).
2. Encode: ``sparse_encode`` of the held-out patches on sklearn's dictionary:
   sklearn's ``lasso_lars`` and ``lasso_cd`` against sparsecode's
   ``lasso_lars``; time and objective.

Run: ``python benchmarks/bench_dictionary.py`` (``--quick`` for a smaller run).
"""

from __future__ import annotations

import os

# sparsecode sets this when imported before torch; say it explicitly here since
# numpy/sklearn may load an OpenMP runtime first (spinning threads cost 5-10x on a
# busy CPU for small kernels)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time
import warnings

import numpy as np
import torch
from sklearn import decomposition as skd
from sklearn.exceptions import ConvergenceWarning

import sparsecode as sc
from sparsecode.cli import load_china_patches


def heldout_objective(X: np.ndarray, V: np.ndarray, alpha: float) -> float:
    """Mean per-sample lasso objective of X on dictionary V (exact codes)."""
    U = sc.sparse_encode(X, V, algorithm="lasso_lars", alpha=alpha)
    resid = 0.5 * ((X - U @ V) ** 2).sum(1).mean()
    return float(resid + alpha * np.abs(U).sum(1).mean())


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_fit(X_tr, X_te, n_components, alpha, ours_kw):
    sk = skd.MiniBatchDictionaryLearning(n_components, alpha=alpha, random_state=0)
    _, t_sk = timed(lambda: sk.fit(X_tr))
    ours = sc.MiniBatchDictionaryLearning(n_components, alpha=alpha, random_state=0,
                                          **ours_kw)
    X32 = X_tr.astype(np.float32)  # the same data; sparsecode computes in its dtype
    _, t_ours = timed(lambda: ours.fit(X32))
    o_sk = heldout_objective(X_te, sk.components_, alpha)
    o_ours = heldout_objective(X_te, ours.components_.astype(np.float64), alpha)
    print(f"fit  sklearn   : {t_sk:8.2f} s  steps {sk.n_steps_:5d}  "
          f"held-out objective {o_sk:.4f}")
    print(f"fit  sparsecode: {t_ours:8.2f} s  steps {ours.n_steps_:5d}  "
          f"held-out objective {o_ours:.4f}   ({ours_kw})")
    print(f"fit  speed-up {t_sk / t_ours:.1f}x, objective ratio ours/sklearn "
          f"{o_ours / o_sk:.4f}")
    return sk.components_


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
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    n_tr, n_te, k = (10_000, 2_000, 128) if args.quick else (50_000, 10_000, 256)
    X = load_china_patches(n_tr + n_te).astype(np.float64)
    X_tr, X_te = X[:n_tr], X[n_tr:]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"train {X_tr.shape}, held-out {X_te.shape}, {k} atoms, alpha=1")
    ours_kw = dict(batch_size=args.batch_size, max_iter=args.max_iter, device="cpu")
    V = bench_fit(X_tr, X_te, k, 1.0, ours_kw)
    bench_encode(X_te, V, 1.0)
    if torch.cuda.is_available():
        Xg = torch.as_tensor(X_te, device="cuda")
        _, t = timed(lambda: sc.sparse_encode(Xg, V, algorithm="lasso_lars"))
        print(f"encode sparsecode lasso_lars on CUDA: {t:.2f} s")


if __name__ == "__main__":
    main()
