"""Transcoder training speed against the SAE's, at the same sizes.

A TopK `Transcoder` (MiniLM layer-2 MLP input -> MLP output) and a TopK
`SparseAutoencoder` (the MLP input) are trained in turns in one process at
the estimators' defaults (batch 256, k 32, 8x latents) for the same number of
steps, several seeds each, and the script prints tokens/s of both, the ratio
per seed, its median and its worst case. Target: the transcoder within 15% of
the SAE (ratio >= 0.85). ``--busy`` starts one CPU-bound process beside it
(a shared machine); ``--quick`` is a smoke run.

    python benchmarks/bench_transcoder.py [--busy] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
from _load import cpu_load  # benchmarks/_load.py

from sparsecode import SparseAutoencoder, Transcoder
from sparsecode.data.activations import (
    extract_activations,
    load_minilm,
    mlp_pair_modules,
)
from sparsecode.data.text import load_default_corpus


def mlp_pairs(n_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    model, tok = load_minilm()
    mlp_in, mlp_out = mlp_pair_modules(2, model)
    with tempfile.TemporaryDirectory() as tmp:
        store = extract_activations(model, tok, load_default_corpus(),
                                    [mlp_in, mlp_out], tmp, max_tokens=n_tokens)
        return np.array(store.load(mlp_in)), np.array(store.load(mlp_out))


def tokens_per_second(est, *data) -> float:
    start = time.perf_counter()
    est.fit(*data)
    return est.n_steps_ * est.batch_size / (time.perf_counter() - start)


def compare(steps: int, seeds: int, busy: bool = False) -> list[float]:
    """Print SAE and transcoder tokens/s per seed; return the ratios."""
    X, Y = mlp_pairs(steps * 256)
    print(f"# transcoder vs SAE: MiniLM layer-2 MLP pairs X {X.shape}, Y {Y.shape}; "
          f"{steps} steps of 256")
    ratios = []
    with cpu_load(busy):
        for seed in range(seeds):
            kw = {"max_iter": 1, "random_state": seed, "device": "cpu"}
            sae = tokens_per_second(SparseAutoencoder(**kw), X)
            tc = tokens_per_second(Transcoder(**kw), X, Y)
            ratios.append(tc / sae)
            print(f"seed {seed}: SAE {sae:,.0f} tok/s, transcoder {tc:,.0f} tok/s, "
                  f"ratio {tc / sae:.3f}", flush=True)
    print(f"transcoder / SAE tokens/s ({'busy' if busy else 'idle'}): median "
          f"{statistics.median(ratios):.3f}, worst {min(ratios):.3f} "
          f"(target >= 0.85: {'MET' if min(ratios) >= 0.85 else 'NOT MET'})")
    return ratios


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--busy", action="store_true", help="one CPU-bound process beside")
    p.add_argument("--quick", action="store_true", help="a smoke run")
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    compare(40 if args.quick else 300, args.seeds, args.busy)


if __name__ == "__main__":
    main()
