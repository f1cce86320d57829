"""``sparsecode extract`` and ``sparsecode fit``: activations to sparse models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..nn import ACTIVATIONS
from .options import FORMAT, positive_float, positive_int

__all__ = ["add_commands", "run_extract", "run_fit"]


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the ``extract`` and ``fit`` subcommands."""
    e = sub.add_parser("extract", help="hook a transformer, store its activations",
                       formatter_class=FORMAT)
    e.add_argument("--model", default="minilm",
                   help="'minilm' (bundled) or a local Hugging Face model folder")
    e.add_argument("--modules", default=None,
                   help="comma-separated module paths to hook (default: "
                        "encoder.layer.3, or none with --mlp-pair)")
    e.add_argument("--mlp-pair", type=int, default=None, metavar="N",
                   help="also hook the input and output of layer N's MLP "
                        "(encoder.layer.N.attention.output and "
                        "encoder.layer.N.output.dense), for a transcoder")
    e.add_argument("--texts", default=None,
                   help="UTF-8 file with one text per line (default: bundled corpus)")
    e.add_argument("--out", required=True, help="activation store folder")
    e.add_argument("--max-tokens", type=positive_int, default=None,
                   help="stop after this many tokens (default: every text)")
    e.add_argument("--batch-size", type=positive_int, default=32,
                   help="texts per forward pass")
    e.add_argument("--max-length", type=positive_int, default=128,
                   help="tokens per window (longer texts are split)")
    e.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    f = sub.add_parser("fit", help="train a SAE or dictionary on an activation store",
                       formatter_class=FORMAT)
    f.add_argument("--store", required=True, help="activation store folder")
    f.add_argument("--module", default=None, help="stored module (default: first)")
    f.add_argument("--estimator", default="topk",
                   help=f"an SAE variant ({', '.join(ACTIVATIONS)}) or dl")
    f.add_argument("--n-components", type=positive_int, default=None,
                   help="latents / atoms (default: 8x the activation width)")
    f.add_argument("--k", type=positive_int, default=32,
                   help="active latents per token (TopK-style variants)")
    f.add_argument("--alpha", type=positive_float, default=None,
                   help="sparsity penalty (default: the variant's own; 1.0 for dl)")
    f.add_argument("--max-iter", type=positive_int, default=5,
                   help="passes over the training tokens")
    f.add_argument("--batch-size", type=positive_int, default=1024,
                   help="tokens per step")
    f.add_argument("--out", required=True, help="folder for the saved model")
    f.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def _extract_modules(args: argparse.Namespace, model) -> list[str]:
    """The ``--modules`` list plus the ``--mlp-pair`` modules, without repeats."""
    from ..data.activations import mlp_pair_modules

    if args.modules is None:
        modules = [] if args.mlp_pair is not None else ["encoder.layer.3"]
    else:
        modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    if args.mlp_pair is not None:
        try:
            modules += mlp_pair_modules(args.mlp_pair, model)
        except ValueError as exc:
            print(f"sparsecode extract: error: --mlp-pair {args.mlp_pair}: {exc}",
                  file=sys.stderr)
            raise SystemExit(2) from exc
    return list(dict.fromkeys(modules))


def run_extract(args: argparse.Namespace) -> None:
    """Extract activations to a sharded, resumable store (with a progress bar).

    Every hooked module is stored in the same rows (same tokens, same order),
    so ``--mlp-pair N`` gives the paired inputs and outputs of layer N's MLP.
    """
    from ..data.activations import extract_activations, load_hf_model, load_minilm

    model, tok = (load_minilm(args.device) if args.model == "minilm"
                  else load_hf_model(args.model, args.device))
    modules = _extract_modules(args, model)
    if args.texts:
        lines = Path(args.texts).read_text(encoding="utf-8").splitlines()
        texts = [t for t in lines if t.strip()]
    else:
        from ..data.text import load_default_corpus

        texts = load_default_corpus()
    store = extract_activations(
        model, tok, texts, modules, args.out,
        batch_size=args.batch_size, max_length=args.max_length,
        max_tokens=args.max_tokens, progress=True, device=args.device,
    )
    print(f"stored {store.n_tokens} tokens of {store.modules} in {args.out}")


def _estimator(args: argparse.Namespace, n_features: int):
    n = args.n_components or 8 * n_features
    if args.estimator == "dl":
        from ..dictionary import MiniBatchDictionaryLearning

        return MiniBatchDictionaryLearning(
            n, alpha=args.alpha or 1.0, batch_size=args.batch_size,
            max_iter=args.max_iter, transform_algorithm="lasso_lars",
            device=args.device, random_state=0, verbose=True)
    from ..sae import SparseAutoencoder

    return SparseAutoencoder(n, activation=args.estimator, k=args.k,
                             alpha=args.alpha, max_iter=args.max_iter,
                             batch_size=args.batch_size, device=args.device,
                             random_state=0, verbose=True)


def run_fit(args: argparse.Namespace) -> None:
    """Fit on the store's first 90% of tokens; report held-out FVU and L0; save."""
    from ..data.store import ActivationStore
    from ..io import save
    from ..metrics import fvu, l0

    store = ActivationStore(args.store)
    module = args.module or store.modules[0]
    X = store.load(module)
    n_train = int(0.9 * len(X))
    est = _estimator(args, X.shape[1])
    est.fit(X[:n_train])
    codes = np.asarray(est.transform(X[n_train:]))
    recon = np.asarray(est.inverse_transform(codes))
    print(f"held-out FVU {fvu(X[n_train:], recon):.4f}  L0 {l0(codes):.2f}")
    save(est, args.out)
    print(f"saved to {args.out}")
