"""Throughput of ``extract_activations`` against a bare forward pass.

Both run all-MiniLM-L6-v2 over the same right-padded batches (same batch size
and max_length, texts split into windows). The bare pass only calls the model;
extraction also tokenizes, hooks, gathers the non-padding rows and writes the
shards and manifest. Tokens/s counts real (non-padding) tokens.

``stop_early=False`` runs every layer, like the bare pass: its overhead is the
price of extraction. The default ``stop_early=True`` skips the layers after the
hooked module, so it is usually faster than the bare pass. On a busy shared CPU
the model timings are noisy; the "null model" line times the extraction work
alone (same texts, a model that costs nothing), which is a steadier estimate of
the overhead.

Usage::

    PYTHONPATH=src python benchmarks/bench_activations.py --n-texts 8 --repeats 5
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from sparsecode.data.activations import (
    extract_activations,
    load_minilm,
    token_batches,
)
from sparsecode.data.text import load_default_corpus


def _texts(n_texts: int) -> list[str]:
    """`n_texts` documents spread evenly over the default corpus."""
    corpus = load_default_corpus()
    index = np.linspace(0, len(corpus) - 1, n_texts).round().astype(int)
    return [corpus[i] for i in np.unique(index)]


class _NullEncoder(torch.nn.Module):
    """Stand-in with the model's call signature whose forward costs ~nothing.

    Extracting from it times only the extraction work (tokenizing, collating,
    gathering rows, writing shards): a measure of the overhead that does not
    depend on how busy the machine's cores are during the model's matmuls.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layer = torch.nn.Identity()
        self.dim = dim

    def forward(self, input_ids, attention_mask):
        return self.layer(torch.zeros(*input_ids.shape, self.dim))


def _module_dim(model, tokenizer, module: str) -> int:
    with tempfile.TemporaryDirectory() as out_dir:
        probe = extract_activations(model, tokenizer, ["probe"], module, out_dir)
        return probe.dim(module)


def _bare(model, batches) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    return time.perf_counter() - start


def _extract(model, tokenizer, texts, args, stop_early=True, module=None):
    module = module or args.module
    with tempfile.TemporaryDirectory() as out_dir:
        start = time.perf_counter()
        store = extract_activations(
            model,
            tokenizer,
            texts,
            module,
            out_dir,
            batch_size=args.batch_size,
            max_length=args.max_length,
            stop_early=stop_early,
        )
        return time.perf_counter() - start, store.n_tokens


_LABELS = {
    "bare": "bare forward",
    "extract": "extract_activations(stop_early=False)",
    "extract_stop": "extract_activations(stop_early=True)",
    "null": "extraction work only (null model)",
}


def _report(times: dict[str, list[float]], n_tokens: int, repeats: int) -> None:
    """Print tokens/s and the overhead relative to the bare forward pass."""
    best = {name: min(values) for name, values in times.items()}
    median = {name: float(np.median(values)) for name, values in times.items()}
    for name, label in _LABELS.items():
        # The null model's whole time is overhead; the others' is the excess.
        shift = 0 if name == "null" else 1
        overhead = 100 * (best[name] / best["bare"] - shift)
        overhead_median = 100 * (median[name] / median["bare"] - shift)
        print(
            f"{label:40s} {n_tokens / best[name]:8.0f} tokens/s "
            f"(best of {repeats}: {best[name]:.2f} s)  "
            f"overhead {overhead:+.1f}% (medians: {overhead_median:+.1f}%)"
        )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print tokens/s and the overhead in percent."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-texts", type=int, default=8)
    parser.add_argument("--module", default="encoder.layer.3")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="0: torch default")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    model, tokenizer = load_minilm()
    texts = _texts(args.n_texts)
    batches = list(token_batches(tokenizer, texts, args.batch_size, args.max_length,
                                 True))
    n_tokens = int(sum(int(b.attention_mask.sum()) for b in batches))
    print(
        f"{len(texts)} texts, {len(batches)} batches, {n_tokens} tokens, "
        f"module={args.module}, batch_size={args.batch_size}, "
        f"max_length={args.max_length}, torch threads={torch.get_num_threads()}"
    )
    _bare(model, batches[:2])  # warm-up
    times: dict[str, list[float]] = {k: [] for k in _LABELS}
    null = _NullEncoder(_module_dim(model, tokenizer, args.module))
    for _ in range(args.repeats):  # interleaved, to share the machine's noise
        times["bare"].append(_bare(model, batches))
        seconds, stored = _extract(model, tokenizer, texts, args, stop_early=False)
        times["extract"].append(seconds)
        times["extract_stop"].append(
            _extract(model, tokenizer, texts, args, stop_early=True)[0]
        )
        assert stored == n_tokens, (stored, n_tokens)
        times["null"].append(_extract(null, tokenizer, texts, args, module="layer")[0])
    _report(times, n_tokens, args.repeats)


if __name__ == "__main__":
    main()
