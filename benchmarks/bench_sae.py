"""Sparse autoencoder training speed and quality: sparsecode against SAELens.

Both train on the same activations (all-MiniLM-L6-v2 residual stream after
block 3, d=384, when ``sparsecode.data.activations`` and the MiniLM wheel are
installed; toy superposition data otherwise) with the same width, batch size,
number of steps, learning rate and schedule (1% warm-up, linear decay over the
last 20%), inputs scaled to ``E||x||^2 = d`` (SAELens:
``normalize_activations="expected_average_only_in"``), in float32 unless
``--autocast bf16``. Printed for each of ``topk`` (k=32) and ``relu`` (L1,
``alpha`` for both): tokens/s, the speed ratio, held-out FVU (pooled,
`sparsecode.metrics.fvu`) and L0, and the achieved matmul FLOP/s as a
fraction of this machine's measured fp32 and bf16 matmul peak.

FLOPs counted are those of the dense ``batch x d x m`` matmuls each
implementation runs per step, in units of ``2 * batch * d * m``: sparsecode
TopK runs 1 (the encoder forward; decoding and every gradient are sparse),
sparsecode ReLU 5 (encoder and decoder forward, encoder weight gradient,
decoder weight and code gradients) and SAELens 6 (the same plus the encoder
input gradient, which only feeds the pre-encoder bias).
"Dense-equivalent" FLOP/s counts 6 units for every implementation, i.e. the
speed expressed as the FLOP rate a dense trainer would need to match it.

Usage::

    python benchmarks/bench_sae.py                 # default run, < ~3 minutes
    python benchmarks/bench_sae.py --steps 300 --no-saelens
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

import sparsecode  # noqa: F401  (before torch: sets passive OpenMP waiting)

# isort: split
import numpy as np
import torch

from sparsecode import SparseAutoencoder, metrics

MODULE = "encoder.layer.3"


# --------------------------------------------------------------------- peak
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(dtype: torch.dtype, rows: int, d: int, m: int, reps: int,
                device: str = "cpu") -> float:
    """Best observed FLOP/s of ``(rows, d) @ (d, m)`` in ``dtype``."""
    a = torch.randn(rows, d, dtype=dtype, device=device)
    b = torch.randn(d, m, dtype=dtype, device=device)
    a @ b
    best = math.inf
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * rows * d * m / best


# --------------------------------------------------------------------- data
def load_data(n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray, str]:
    """MiniLM activations (cached in the temp dir) or toy data."""
    try:
        from sparsecode.data.activations import extract_activations, load_minilm
        from sparsecode.data.text import load_default_corpus

        model, tok = load_minilm()
    except Exception as exc:  # noqa: BLE001 - any missing piece -> toy data
        from sparsecode.data.toy import make_superposition

        print(f"# MiniLM unavailable ({exc.__class__.__name__}); using toy data")
        X, _ = make_superposition(n_train + n_test, 384, 4096, mean_active=32,
                                  random_state=0)
        return X[:n_train], X[n_train:], "toy superposition d=384"
    out = os.path.join(tempfile.gettempdir(), "sparsecode_bench_sae_acts")
    t = time.perf_counter()
    store = extract_activations(model, tok, load_default_corpus(), MODULE, out,
                                max_tokens=n_train + n_test, batch_size=32)
    X = store.load(MODULE).astype(np.float32)
    print(f"# activations: {len(X)} tokens of MiniLM {MODULE} "
          f"({time.perf_counter() - t:.1f}s incl. cache)")
    return X[:n_train], X[n_train:n_train + n_test], f"MiniLM {MODULE} d=384"


# ------------------------------------------------------------- sparsecode
def run_ours(activation: str, X: np.ndarray, args) -> dict:
    passes = args.steps // (len(X) // args.batch_size)
    est = SparseAutoencoder(
        n_components=args.n_components, activation=activation, k=args.k,
        alpha=args.alpha, max_iter=passes, batch_size=args.batch_size,
        learning_rate=args.lr, lr_warmup=0.01, lr_decay=0.2, sparsity_warmup=0.05,
        random_state=0, device=args.device, autocast=args.autocast, log_every=50)
    t = time.perf_counter()
    est.fit(X)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "steps": est.n_steps_, "encode": est.transform,
            "decode": est.inverse_transform, "units": 1 if activation == "topk" else 5}


# ---------------------------------------------------------------- SAELens
def _provider(X: np.ndarray, batch_size: int):
    rng = np.random.RandomState(0)
    Xt = torch.as_tensor(X)
    while True:
        perm = torch.as_tensor(rng.permutation(len(X)))
        for lo in range(0, len(X) - batch_size + 1, batch_size):
            yield Xt[perm[lo:lo + batch_size]]


def _saelens_sae(activation: str, d: int, args):
    from sae_lens.saes import (
        StandardTrainingSAE,
        StandardTrainingSAEConfig,
        TopKTrainingSAE,
        TopKTrainingSAEConfig,
    )

    common = {"d_in": d, "d_sae": args.n_components, "device": args.device,
              "normalize_activations": "expected_average_only_in"}
    if activation == "topk":  # use_sparse_activations=True fails on the CPU
        return TopKTrainingSAE(TopKTrainingSAEConfig(k=args.k, **common))
    return StandardTrainingSAE(StandardTrainingSAEConfig(
        l1_coefficient=args.alpha, l1_warm_up_steps=round(0.05 * args.steps),
        **common))


def run_saelens(activation: str, X: np.ndarray, args) -> dict | None:
    try:
        from sae_lens import LoggingConfig
        from sae_lens.config import SAETrainerConfig
        from sae_lens.training.sae_trainer import SAETrainer
    except ImportError:
        return None
    sae = _saelens_sae(activation, X.shape[1], args)
    cfg = SAETrainerConfig(
        total_training_samples=args.steps * args.batch_size,
        train_batch_size_samples=args.batch_size, lr=args.lr, lr_end=args.lr * 1e-6,
        lr_warm_up_steps=round(0.01 * args.steps),
        lr_decay_steps=round(0.2 * args.steps), device=args.device,
        autocast=args.autocast == "bf16", n_batches_for_norm_estimate=10,
        logger=LoggingConfig(log_to_wandb=False))
    trainer = SAETrainer(cfg, sae, _provider(X, args.batch_size))
    t = time.perf_counter()
    sae = trainer.fit()
    seconds = time.perf_counter() - t

    def encode(A):
        with torch.no_grad():
            return sae.encode(torch.as_tensor(A, device=args.device)).cpu().numpy()

    def decode(C):
        with torch.no_grad():
            return sae.decode(torch.as_tensor(C, device=args.device)).cpu().numpy()

    return {"seconds": seconds, "steps": args.steps, "encode": encode,
            "decode": decode, "units": 6}


# --------------------------------------------------------------------- main
def report(name: str, res: dict, X_test: np.ndarray, args, peaks: dict) -> dict:
    codes = res["encode"](X_test)
    fvu = metrics.fvu(X_test, res["decode"](codes))
    tok_s = res["steps"] * args.batch_size / res["seconds"]
    unit = 2 * args.batch_size * X_test.shape[1] * args.n_components
    flops = res["units"] * unit * res["steps"] / res["seconds"]
    dense_eq = 6 * unit * res["steps"] / res["seconds"]
    peak = peaks["bf16" if args.autocast == "bf16" else "fp32"]
    print(f"{name:<22} {tok_s:>9.0f} tok/s  fvu {fvu:.4f}  L0 {metrics.l0(codes):7.1f}"
          f"  {flops / 1e9:6.1f} GFLOP/s = {flops / peak:5.1%} of peak"
          f"  (dense-equiv {dense_eq / 1e9:6.1f} GFLOP/s = {dense_eq / peak:6.1%})")
    return {"tok_s": tok_s, "fvu": fvu, "l0": metrics.l0(codes)}


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-components", type=int, default=3072)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--alpha", type=float, default=1.0, help="L1 coefficient (relu)")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--steps", type=int, default=96)
    p.add_argument("--train-tokens", type=int, default=32768)
    p.add_argument("--test-tokens", type=int, default=4096)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--autocast", choices=["bf16"], default=None)
    p.add_argument("--activations", default="topk,relu")
    p.add_argument("--no-saelens", action="store_true")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    args.lr = args.lr or 2e-4 / math.sqrt(args.n_components / 2**14)
    return args


def main() -> None:
    args = _args()
    torch.manual_seed(0)
    print(f"# torch {torch.__version__}, device {args.device}, "
          f"{torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f}")
    peaks = {"fp32": matmul_peak(torch.float32, args.batch_size, 384,
                                 args.n_components, 10, args.device),
             "bf16": matmul_peak(torch.bfloat16, 128 if args.device == "cpu" else
                                 args.batch_size, 384, args.n_components, 3,
                                 args.device)}
    print(f"# measured matmul peak: fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, "
          f"bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s")
    X_train, X_test, what = load_data(args.train_tokens, args.test_tokens)
    print(f"# data: {what}; width {args.n_components}, k {args.k}, batch "
          f"{args.batch_size}, {args.steps} steps, lr {args.lr:.3g}, "
          f"autocast {args.autocast}")
    runs = []
    for act in args.activations.split(","):
        runs.append((f"sparsecode {act}", run_ours(act, X_train, args)))
        ref = None if args.no_saelens else run_saelens(act, X_train, args)
        if ref is None and not args.no_saelens:
            print("# sae-lens not installed: no reference run")
        if ref is not None:
            runs.append((f"SAELens {act}", ref))
    # the machine may be shared: take the best peak seen before and after
    peaks["fp32"] = max(peaks["fp32"], matmul_peak(
        torch.float32, args.batch_size, 384, args.n_components, 10, args.device))
    print(f"# fp32 peak after the runs: {peaks['fp32'] / 1e9:.1f} GFLOP/s (best "
          f"used); load average {os.getloadavg()[0]:.2f}")
    results = {name: report(name, res, X_test, args, peaks) for name, res in runs}
    for act in args.activations.split(","):
        ours, theirs = results[f"sparsecode {act}"], results.get(f"SAELens {act}")
        if theirs is not None:
            print(f"{'ratio ' + act:<22} {ours['tok_s'] / theirs['tok_s']:>9.2f}x "
                  f"tokens/s, FVU {ours['fvu']:.4f} vs {theirs['fvu']:.4f}, "
                  f"L0 {ours['l0']:.1f} vs {theirs['l0']:.1f}")


if __name__ == "__main__":
    main()
