"""sparsecode vs scikit-learn vs SPAMS dictionary learning over a grid of images.

Data: grey images scaled to [0, 1] -- scikit-image's ``camera``, ``astronaut``
(``rgb2gray``) and ``coins``, and scikit-learn's ``china.jpg`` (``rgb2gray``).
From each, ``n_train + n_test`` random p x p patches (``extract_patches_2d``,
``random_state=seed``); each patch minus its own mean, then all divided by one
global std; the first ``--n-train`` (default 20,000) train, the last
``--n-test`` (default 5,000) are held out.

Grid: image x patch {8, 12} x n_components {64, 128, 256, 512} x alpha
{0.5, 1.0}, each with the seeds of ``--seeds`` (times and objectives are
averaged over seeds).

1. Fit, after one small warm-up fit per library: scikit-learn's
   ``MiniBatchDictionaryLearning`` (float64) and sparsecode's (float32), both
   with their defaults (``batch_size=256``, ``max_iter=1000`` with early
   stopping) except n_components, alpha and random_state; SPAMS's
   ``trainDL`` (``mode=2``: ``0.5||x - D a||^2 + lambda1 ||a||_1``, the
   objective of scikit-learn's alpha; ``batchsize=256``, all threads) on the
   float64 data, given the same number of mini-batch steps (``iter``) as
   sparsecode ran on that configuration.  SPAMS takes no seed.
2. Held-out objective ``mean_i 0.5||x_i - u_i V||^2 + alpha ||u_i||_1`` of each
   dictionary with exact lasso codes from one encoder for all three
   (sparsecode's ``lasso_lars`` in float64), so only the dictionaries differ.
   Atoms are rescaled to unit norm first only where a library returns
   non-unit atoms (the run says so).
3. Encode, on sparsecode's dictionary: sparsecode's ``sparse_encode``
   (``lasso_lars``, float32) against SPAMS's ``lasso`` (``mode=2``, float64,
   all threads), best of ``--encode-repeats`` runs each; time ratio and the
   mean objective of each one's codes (computed in float64).

Ratios are time(other) / time(sparsecode): above 1 means sparsecode is faster.
The libraries' early stopping ends at different steps (random batches), so
the time per step is compared too.
Objective gaps are 100 (ours - SPAMS) / SPAMS in %: below 0 means sparsecode's
objective is lower.  One extra row ("best batch size") fits the first
configuration with batch sizes 256, 512 and 1024 and keeps each library's
fastest.  ``--busy`` runs one CPU-bound process alongside the timings.

Run: ``python benchmarks/bench_dictionary_sweep.py`` (``--quick``: camera only,
patch 8, 64 and 256 atoms, alpha 1, 10,000 / 2,000 patches; ``--help`` for
the rest; ``--from-csv PATH`` prints a saved run's table and summary).
SPAMS comes with ``pip install -e ".[bench]"`` (``spams-bin``).
"""

from __future__ import annotations

import argparse
import csv
import gc
import importlib.metadata
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import sklearn
import torch
from _load import cpu_load  # benchmarks/_load.py
from sklearn import decomposition as skd
from sklearn.datasets import load_sample_image
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.image import extract_patches_2d

import sparsecode as sc

try:
    import spams
except ImportError:  # optional: the SPAMS columns print "n/a"
    spams = None

IMAGES = ("camera", "astronaut", "coins", "china")
BATCH_SIZES = (256, 512, 1024)
LABELS = {"sklearn": "sklearn", "spams": "SPAMS", "ours": "sparsecode"}
Row = dict[str, Any]

# (key, header, width, format); a None value prints "n/a"
COLUMNS = (
    ("image", "image", 10, "s"),
    ("patch", "patch", 5, "d"),
    ("atoms", "atoms", 5, "d"),
    ("alpha", "alpha", 5, ".2g"),
    ("batch", "batch sk/sp/ours", 16, "s"),
    ("steps", "steps ours/sk", 13, "s"),
    ("t_sklearn", "sk s", 7, ".2f"),
    ("t_spams", "spams s", 7, ".2f"),
    ("t_ours", "ours s", 7, ".2f"),
    ("r_sklearn", "sk/ours", 7, ".2f"),
    ("r_step", "sk/ours per step", 16, ".2f"),
    ("r_spams", "spams/ours", 10, ".2f"),
    ("obj_sklearn", "obj sk", 8, ".4f"),
    ("obj_spams", "obj spams", 9, ".4f"),
    ("obj_ours", "obj ours", 8, ".4f"),
    ("gap_sklearn", "gap % vs sk", 11, "+.2f"),
    ("gap_spams", "gap % vs spams", 14, "+.2f"),
    ("r_encode", "enc spams/ours", 14, ".2f"),
    ("enc_obj_spams", "enc obj spams", 13, ".4f"),
    ("enc_obj_ours", "enc obj ours", 12, ".4f"),
    ("gap_encode", "enc gap %", 9, "+.3f"),
)
# the README's table: the columns of COLUMNS kept by --markdown
MARKDOWN = ("image", "patch", "atoms", "alpha", "steps", "t_sklearn", "t_spams",
            "t_ours", "r_sklearn", "r_step", "r_spams", "gap_sklearn", "gap_spams",
            "r_encode", "gap_encode")
# summary: (key, label, worst is the smallest value)
SUMMARY = (
    ("r_sklearn", "fit time sklearn/ours", True),
    ("r_step", "time per step sklearn/ours", True),
    ("gap_sklearn", "held-out objective gap ours vs sklearn %", False),
    ("r_spams", "fit time SPAMS/ours", True),
    ("r_encode", "encode time SPAMS/ours", True),
    ("gap_spams", "held-out objective gap ours vs SPAMS %", False),
    ("gap_encode", "encode objective gap ours vs SPAMS %", False),
)


def load_image(name: str) -> np.ndarray:
    """One of IMAGES as a grey float64 image in [0, 1]."""
    from skimage import color, data, util

    if name == "camera":
        img = data.camera()
    elif name == "astronaut":
        img = color.rgb2gray(data.astronaut())
    elif name == "coins":
        img = data.coins()
    elif name == "china":
        img = color.rgb2gray(load_sample_image("china.jpg"))
    else:
        raise ValueError(f"unknown image {name!r}; choose from {', '.join(IMAGES)}")
    return util.img_as_float64(img)


def make_patches(img: np.ndarray, p: int, n_train: int, n_test: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random p x p patches, each centred, all divided by one std; train, test."""
    X = extract_patches_2d(img, (p, p), max_patches=n_train + n_test,
                           random_state=seed).reshape(-1, p * p)
    X = X - X.mean(axis=1, keepdims=True)
    X /= X.std()
    return X[:n_train], X[n_train:]


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """fn() and its wall-clock seconds, after a collection and a short pause."""
    gc.collect()
    time.sleep(0.5)  # let the previous library's threads go idle
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def fit_sklearn(X: np.ndarray, k: int, alpha: float, seed: int,
                batch_size: int = 256) -> tuple[np.ndarray, int, float]:
    """scikit-learn's fit on float64: (components, steps, seconds)."""
    est = skd.MiniBatchDictionaryLearning(k, alpha=alpha, random_state=seed,
                                          batch_size=batch_size)
    est, t = timed(lambda: est.fit(X))
    return est.components_, int(est.n_steps_), t


def fit_ours(X32: np.ndarray, k: int, alpha: float, seed: int, batch_size: int = 256,
             device: str = "auto") -> tuple[np.ndarray, int, float]:
    """sparsecode's fit on float32: (components, steps, seconds)."""
    est = sc.MiniBatchDictionaryLearning(k, alpha=alpha, random_state=seed,
                                         batch_size=batch_size, device=device)
    est, t = timed(lambda: est.fit(X32))
    return np.asarray(est.components_), int(est.n_steps_), t


def fit_spams(X: np.ndarray, k: int, alpha: float, n_steps: int,
              batch_size: int = 256) -> tuple[np.ndarray, int, float]:
    """SPAMS's trainDL for n_steps mini-batches: (components, steps, seconds)."""
    Xf = np.asfortranarray(X.T)
    D, t = timed(lambda: spams.trainDL(Xf, K=k, lambda1=alpha, mode=2,
                                       batchsize=batch_size, iter=n_steps,
                                       numThreads=-1, verbose=False))
    return np.ascontiguousarray(D.T), n_steps, t


def unit_atoms(V: np.ndarray, name: str, notes: set[str]) -> np.ndarray:
    """V in float64 with non-zero atoms rescaled to unit norm if any is not."""
    V = np.asarray(V, dtype=np.float64)
    norms = np.linalg.norm(V, axis=1)
    if np.allclose(norms, 1.0, atol=1e-4):
        return V
    notes.add(f"{name} returned atoms of norm {norms.min():.4g}..{norms.max():.4g}"
              f" (rescaled to 1 for the held-out objective)")
    return V / np.where(norms > 0, norms, 1.0)[:, None]


def lasso_objective(X: np.ndarray, U: np.ndarray, V: np.ndarray,
                    alpha: float) -> float:
    """Mean per-sample 0.5||x - u V||^2 + alpha ||u||_1, in float64."""
    U = np.asarray(U, dtype=np.float64)
    resid = 0.5 * ((X - U @ V) ** 2).sum(axis=1).mean()
    return float(resid + alpha * np.abs(U).sum(axis=1).mean())


def heldout_objective(X: np.ndarray, V: np.ndarray, alpha: float) -> float:
    """Lasso objective of X on V with exact codes (sparsecode's lasso_lars)."""
    U = sc.sparse_encode(X, V, algorithm="lasso_lars", alpha=alpha)
    return lasso_objective(X, U, V, alpha)


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """The output of fn() and its fastest time over repeats runs."""
    runs = [timed(fn) for _ in range(max(1, repeats))]
    return runs[-1][0], min(t for _, t in runs)


def bench_encode(X_te: np.ndarray, V32: np.ndarray, alpha: float, repeats: int,
                 device: str) -> dict[str, float | None]:
    """sparsecode's lasso_lars against SPAMS's lasso on V32: ratio, objectives."""
    V = V32.astype(np.float64)
    X32 = X_te.astype(np.float32)
    U, t_ours = best_time(lambda: sc.sparse_encode(
        X32, V32, algorithm="lasso_lars", alpha=alpha, device=device), repeats)
    out: dict[str, float | None] = {
        "enc_obj_ours": lasso_objective(X_te, np.asarray(U), V, alpha),
        "r_encode": None, "enc_obj_spams": None, "gap_encode": None}
    if spams is not None:
        Xf, Df = np.asfortranarray(X_te.T), np.asfortranarray(V.T)
        A, t_sp = best_time(lambda: spams.lasso(Xf, D=Df, lambda1=alpha, mode=2,
                                                numThreads=-1), repeats)
        out["enc_obj_spams"] = lasso_objective(X_te, A.toarray().T, V, alpha)
        out["r_encode"] = t_sp / t_ours
        out["gap_encode"] = gap(out["enc_obj_ours"], out["enc_obj_spams"])
    return out


def gap(ours: float | None, ref: float | None) -> float | None:
    """100 (ours - ref) / ref, or None without ref."""
    return None if ours is None or ref is None else 100.0 * (ours - ref) / ref


def ratio(t: float | None, t_ours: float) -> float | None:
    """t / t_ours, or None without t."""
    return None if t is None else t / t_ours


def bench_seed(X_tr: np.ndarray, X_te: np.ndarray, k: int, alpha: float,
               seed: int, args: argparse.Namespace, notes: set[str]) -> Row:
    """Fit the three libraries once on one seed's patches; times and objectives."""
    X32 = X_tr.astype(np.float32)  # the same data; sparsecode computes in its dtype
    V_ours, n_ours, t_ours = fit_ours(X32, k, alpha, seed, device=args.device)
    res: Row = {"steps_ours": n_ours, "t_ours": t_ours, "t_spams": None,
                "obj_spams": None}
    if spams is not None:
        V_sp, _, res["t_spams"] = fit_spams(X_tr, k, alpha, n_ours)
        res["obj_spams"] = heldout_objective(X_te, unit_atoms(V_sp, "SPAMS", notes),
                                             alpha)
    V_sk, res["steps_sklearn"], res["t_sklearn"] = fit_sklearn(X_tr, k, alpha, seed)
    res["obj_sklearn"] = heldout_objective(X_te, unit_atoms(V_sk, "sklearn", notes),
                                           alpha)
    res["obj_ours"] = heldout_objective(X_te, unit_atoms(V_ours, "sparsecode", notes),
                                        alpha)
    res.update(bench_encode(X_te, V_ours, alpha, args.encode_repeats, args.device))
    return res


def mean_or_none(values: list[Any]) -> float | None:
    """Mean of values, or None if any is None."""
    return None if any(v is None for v in values) else float(np.mean(values))


def bench_config(data: list[tuple[np.ndarray, np.ndarray]], image: str, p: int,
                 k: int, alpha: float, args: argparse.Namespace,
                 notes: set[str]) -> Row:
    """One table row: bench_seed over the seeds, averaged."""
    runs = [bench_seed(X_tr, X_te, k, alpha, seed, args, notes)
            for seed, (X_tr, X_te) in zip(args.seeds, data, strict=True)]
    avg = {key: mean_or_none([r[key] for r in runs]) for key in runs[0]}
    steps = "/".join(f"{avg[f'steps_{n}']:.0f}" for n in ("ours", "sklearn"))
    row: Row = {"image": image, "patch": p, "atoms": k, "alpha": alpha,
                "batch": "256", "steps": steps}
    row.update({key: avg[key] for key in ("t_sklearn", "t_spams", "t_ours",
                                          "obj_sklearn", "obj_spams", "obj_ours",
                                          "r_encode", "enc_obj_spams",
                                          "enc_obj_ours", "gap_encode")})
    row["r_step"] = ratio(row["t_sklearn"] / avg["steps_sklearn"],
                          row["t_ours"] / avg["steps_ours"])
    row["r_sklearn"] = ratio(row["t_sklearn"], row["t_ours"])
    row["r_spams"] = ratio(row["t_spams"], row["t_ours"])
    row["gap_spams"] = gap(row["obj_ours"], row["obj_spams"])
    row["gap_sklearn"] = gap(row["obj_ours"], row["obj_sklearn"])
    return row


def bench_batch_sizes(X_tr: np.ndarray, X_te: np.ndarray, image: str, p: int,
                      k: int, alpha: float, seed: int, args: argparse.Namespace,
                      notes: set[str]) -> Row:
    """The 'best batch size' row: each library's fastest fit over BATCH_SIZES."""
    X32 = X_tr.astype(np.float32)
    fits: dict[str, list[tuple[float, int, int, np.ndarray]]] = {
        "ours": [], "sklearn": [], "spams": []}
    for bs in BATCH_SIZES:
        V, n, t = fit_ours(X32, k, alpha, seed, bs, args.device)
        fits["ours"].append((t, bs, n, V))
        if spams is not None:
            V_sp, _, t_sp = fit_spams(X_tr, k, alpha, n, bs)
            fits["spams"].append((t_sp, bs, n, V_sp))
        V_sk, n_sk, t_sk = fit_sklearn(X_tr, k, alpha, seed, bs)
        fits["sklearn"].append((t_sk, bs, n_sk, V_sk))
        print(f"  batch {bs:4d}: ours {t:.2f} s ({n} steps), sklearn {t_sk:.2f} s "
              f"({n_sk} steps), SPAMS "
              f"{fmt(fits['spams'][-1][0] if fits['spams'] else None, '.2f')} s",
              flush=True)
    best = {name: min(f, key=lambda r: r[0]) if f else None
            for name, f in fits.items()}
    row: Row = {"image": f"{image} best batch size", "patch": p, "atoms": k,
                "alpha": alpha}
    row["batch"] = "/".join("n/a" if best[n] is None else str(best[n][1])
                            for n in ("sklearn", "spams", "ours"))
    row["steps"] = f"{best['ours'][2]}/{best['sklearn'][2]}"
    for name in ("sklearn", "spams", "ours"):
        b = best[name]
        row[f"t_{name}"] = None if b is None else b[0]
        row[f"obj_{name}"] = None if b is None else heldout_objective(
            X_te, unit_atoms(b[3], LABELS[name], notes), alpha)
    row["r_sklearn"] = ratio(row["t_sklearn"], row["t_ours"])
    row["r_spams"] = ratio(row["t_spams"], row["t_ours"])
    row["gap_spams"] = gap(row["obj_ours"], row["obj_spams"])
    row["gap_sklearn"] = gap(row["obj_ours"], row["obj_sklearn"])
    return row


def warm_up(X: np.ndarray, device: str) -> None:
    """One small fit and encode per library, so none pays start-up costs later."""
    X = X[:2048]
    skd.MiniBatchDictionaryLearning(32, max_iter=1, random_state=0).fit(X)
    est = sc.MiniBatchDictionaryLearning(32, random_state=0, device=device)
    V = np.asarray(est.fit(X.astype(np.float32)).components_)
    sc.sparse_encode(X[:256].astype(np.float32), V, algorithm="lasso_lars",
                     alpha=1.0, device=device)
    heldout_objective(X[:256], V.astype(np.float64), 1.0)
    if spams is not None:
        D = spams.trainDL(np.asfortranarray(X.T), K=32, lambda1=1.0, mode=2,
                          batchsize=256, iter=5, numThreads=-1, verbose=False)
        spams.lasso(np.asfortranarray(X[:256].T), D=np.asfortranarray(D),
                    lambda1=1.0, mode=2, numThreads=-1)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def version(*dists: str) -> str:
    """The installed version of the first of dists found, else 'not installed'."""
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def print_header(args: argparse.Namespace) -> None:
    """Machine, library versions, threads and the run's settings."""
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    print(f"CPU: {cpu_model()}, {cores} cores ({usable} usable)")
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"scikit-learn {sklearn.__version__}, "
          f"spams {version('spams-bin', 'spams') if spams else 'not installed'}, "
          f"numpy {np.__version__}, sparsecode device {args.device!r}")
    print(f"images {','.join(args.images)}, patches {args.patches}, "
          f"atoms {args.atoms}, alphas {args.alphas}, seeds {args.seeds}, "
          f"train {args.n_train}, held-out {args.n_test}")
    print("busy: 1 CPU-bound process running" if args.busy else "busy: none")
    print(flush=True)


def fmt(value: Any, spec: str) -> str:
    """value formatted with spec, or 'n/a' for None."""
    return "n/a" if value is None else format(value, spec)


def format_row(row: Row) -> str:
    """One fixed-width text line of COLUMNS."""
    return "  ".join(fmt(row.get(key), spec).rjust(width)
                     for key, _, width, spec in COLUMNS)


def text_header() -> str:
    """The header line for format_row."""
    return "  ".join(head.rjust(width) for _, head, width, _ in COLUMNS)


def markdown_table(rows: list[Row]) -> str:
    """The rows as a Markdown table of the MARKDOWN columns (all are in --csv)."""
    cols = [c for c in COLUMNS if c[0] in MARKDOWN]
    lines = ["| " + " | ".join(head for _, head, _, _ in cols) + " |",
             "|" + "|".join("---" if spec == "s" else "---:"
                            for _, _, _, spec in cols) + "|"]
    lines += ["| " + " | ".join(fmt(row.get(key), spec) for key, _, _, spec in cols)
              + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: str, rows: list[Row]) -> None:
    """The rows, with full precision, as CSV."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[key for key, *_ in COLUMNS],
                                extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "n/a" if row.get(k) is None else row[k]
                             for k in writer.fieldnames})


def read_csv(path: str) -> list[Row]:
    """Rows written by write_csv, with their numbers parsed back."""
    kinds = {key: spec for key, _, _, spec in COLUMNS}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key, text in row.items():
            spec = kinds.get(key, "s")
            if text == "n/a":
                row[key] = None
            elif spec == "d":
                row[key] = int(text)
            elif spec != "s":
                row[key] = float(text)
    return rows


def print_summary(rows: list[Row]) -> None:
    """Worst and median of each ratio and objective gap over the grid rows."""
    print(f"\nsummary over {len(rows)} configurations (ratio > 1: sparsecode "
          f"faster; gap < 0: sparsecode's objective lower)")
    for key, label, low_is_worst in SUMMARY:
        values = [r[key] for r in rows if r.get(key) is not None]
        if not values:
            print(f"  {label:40s}: n/a")
            continue
        worst = min(values) if low_is_worst else max(values)
        print(f"  {label:40s}: worst {worst:8.3f}, median {np.median(values):8.3f}")


def comma_list(kind: type) -> Callable[[str], list]:
    """An argparse type: a comma-separated list of kind."""
    return lambda text: [kind(v) for v in text.split(",") if v.strip()]


def parse_args() -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=comma_list(str), default=list(IMAGES),
                        help=f"comma list from {','.join(IMAGES)}")
    parser.add_argument("--patches", type=comma_list(int), default=[8, 12],
                        help="patch sides (default 8,12)")
    parser.add_argument("--atoms", type=comma_list(int), default=[64, 128, 256, 512],
                        help="n_components (default 64,128,256,512)")
    parser.add_argument("--alphas", type=comma_list(float), default=[0.5, 1.0],
                        help="alpha (default 0.5,1.0)")
    parser.add_argument("--seeds", type=comma_list(int), default=[0],
                        help="comma list; rows average over them (default 0)")
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--n-test", type=int, default=5_000)
    parser.add_argument("--quick", action="store_true",
                        help="camera, patch 8, atoms 64,256, alpha 1, 10000/2000")
    parser.add_argument("--encode-repeats", type=int, default=3,
                        help="encode timings keep the best of this many runs")
    parser.add_argument("--device", default="auto",
                        help="sparsecode's device (its default 'auto')")
    parser.add_argument("--busy", action="store_true",
                        help="run one CPU-bound process during the timings")
    parser.add_argument("--csv", metavar="PATH", help="also write the rows as CSV")
    parser.add_argument("--markdown", action="store_true",
                        help="print the final table as Markdown")
    parser.add_argument("--from-csv", metavar="PATH",
                        help="print the table and summary of a saved --csv run "
                             "instead of running")
    args = parser.parse_args()
    if args.quick:
        args.images, args.patches, args.atoms, args.alphas = (
            ["camera"], [8], [64, 256], [1.0])
        args.n_train, args.n_test = 10_000, 2_000
    for name in args.images:
        if name not in IMAGES:
            parser.error(f"unknown image {name!r}; choose from {','.join(IMAGES)}")
    return args


def run_grid(args: argparse.Namespace, notes: set[str], rows: list[Row]) -> None:
    """Append every configuration's row to rows as it finishes, then the batch row."""
    first: tuple | None = None
    print(text_header(), flush=True)
    for image in args.images:
        img = load_image(image)
        for p in args.patches:
            data = [make_patches(img, p, args.n_train, args.n_test, s)
                    for s in args.seeds]
            if first is None:
                first = (*data[0], image, p, args.atoms[0], args.alphas[0],
                         args.seeds[0])
            for k in args.atoms:
                for alpha in args.alphas:
                    rows.append(bench_config(data, image, p, k, alpha, args, notes))
                    print(format_row(rows[-1]), flush=True)
    print(f"\nbest batch size of {BATCH_SIZES} on the first configuration:",
          flush=True)
    batch_row = bench_batch_sizes(*first, args, notes)
    print(text_header())
    print(format_row(batch_row), flush=True)
    rows.append(batch_row)


def main() -> None:
    """Warm up, run the grid (optionally with a busy process), print and save."""
    args = parse_args()
    if args.from_csv:
        rows = read_csv(args.from_csv)
        print(markdown_table(rows) if args.markdown
              else "\n".join([text_header(), *map(format_row, rows)]))
        print_summary([r for r in rows if "best batch size" not in r["image"]])
        return
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    if spams is None:
        print("spams is not installed: the SPAMS columns print n/a "
              "(install it with: pip install -e \".[bench]\")", file=sys.stderr)
    print_header(args)
    rows: list[Row] = []
    notes: set[str] = set()
    try:
        with cpu_load(args.busy):
            img = load_image(args.images[0])
            warm_up(make_patches(img, args.patches[0], 2048, 0, 0)[0], args.device)
            run_grid(args, notes, rows)
    except KeyboardInterrupt:
        print("\ninterrupted: the summary covers the rows that finished")
    grid = [r for r in rows if "best batch size" not in r["image"]]
    if args.markdown and rows:
        print()
        print(markdown_table(rows))
    for note in sorted(notes):
        print(f"note: {note}")
    print_summary(grid)
    if args.csv and rows:
        write_csv(args.csv, rows)
        print(f"rows written to {args.csv}")


if __name__ == "__main__":
    main()
