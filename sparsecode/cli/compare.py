"""``sparsecode compare``: every family on one split of the data (FVU-L0 frontier)."""

from __future__ import annotations

import argparse

import numpy as np

from .options import FORMAT, positive_int

__all__ = ["add_command", "load_compare_data", "run"]


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register the ``compare`` subcommand."""
    c = sub.add_parser("compare", help="SAEs vs dictionary learning vs PCA/ICA",
                       formatter_class=FORMAT)
    c.add_argument("--data", default="toy",
                   help="toy, patches, glove, minilm or PATH.npy (default: toy)")
    c.add_argument("--estimators", default="",
                   help="comma-separated families of sparsecode.comparison.FAMILIES "
                        "(default: dl_lasso,dl_omp,sae_topk,sae_relu,pca)")
    c.add_argument("--n-components", type=positive_int, default=None,
                   help="latents of every family (default: each family's own)")
    c.add_argument("--out", default="out/compare",
                   help="folder for report.md and the figures")
    c.add_argument("--quick", action="store_true",
                   help="4,000 samples instead of 20,000")
    c.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def load_compare_data(name: str, quick: bool = False):
    """Data for ``sparsecode compare``: (X, true_features or None, centre?)."""
    n = 4_000 if quick else 20_000
    if name == "toy":
        from ..data.toy import make_superposition

        X, truth = make_superposition(n, 32, 64, mean_active=4, random_state=0)
        return X, truth, False
    if name == "patches":
        from ..data.images import load_china_patches

        return load_china_patches(n), None, True
    if name == "glove":
        from ..data.words import load_glove_6b_50d

        return load_glove_6b_50d(limit=n).vectors, None, True
    if name == "minilm":
        return _minilm_layer3(n), None, True
    if name.endswith(".npy"):
        return np.load(name, mmap_mode="r")[: 10 * n], None, True
    raise ValueError(f"--data must be toy, patches, glove, minilm or a .npy path; "
                     f"got {name!r}.")


def _minilm_layer3(n_tokens: int) -> np.ndarray:
    """Residual-stream activations of MiniLM layer 3 over the bundled corpus."""
    import tempfile

    from ..data.activations import extract_activations, load_minilm
    from ..data.text import load_default_corpus

    model, tok = load_minilm()
    with tempfile.TemporaryDirectory() as tmp:
        store = extract_activations(model, tok, load_default_corpus(),
                                    ["encoder.layer.3"], tmp, max_tokens=n_tokens)
        return np.array(store.load("encoder.layer.3"))


def run(args: argparse.Namespace) -> None:
    """Run ``sparsecode compare`` with parsed arguments."""
    from ..comparison import DEFAULT_FAMILIES, compare

    X, truth, center = load_compare_data(args.data, args.quick)
    families = (args.estimators.split(",") if args.estimators
                else list(DEFAULT_FAMILIES))
    compare(X, families, true_features=truth, center=center, device=args.device,
            out_dir=args.out, n_components=args.n_components)
    print(f"report: {args.out}/report.md")
