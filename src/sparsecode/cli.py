"""Command-line interface: ``sparsecode demo|compare|extract|fit``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["main", "demo"]


def load_china_patches(
    n_patches: int = 20_000, patch_size: int = 8, random_state: int = 0
) -> np.ndarray:
    """Centred, standardised grey patches of scikit-learn's bundled ``china.jpg``."""
    from sklearn.datasets import load_sample_image
    from sklearn.feature_extraction.image import extract_patches_2d

    img = load_sample_image("china.jpg").mean(axis=2) / 255.0
    P = extract_patches_2d(img, (patch_size, patch_size), max_patches=n_patches,
                           random_state=random_state)
    P = P.reshape(len(P), -1)
    P -= P.mean(axis=0)
    P /= P.std(axis=0)
    return P.astype(np.float32)


def demo(
    out: str | Path = "out", n_patches: int = 20_000, n_components: int = 128,
    alpha: float = 1.0, device: str = "auto",
) -> dict:
    """Learn a dictionary on 8x8 patches of china.jpg; print metrics, save atoms.

    Returns the printed metrics as a dict.
    """
    from . import MiniBatchDictionaryLearning, sparse_encode
    from .metrics import fvu, l0

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
    from .viz import plot_atoms

    png = plot_atoms(est.components_, (8, 8), Path(out) / "demo_atoms.png",
                     title=f"{n_components} atoms, china.jpg 8x8 patches")
    print(f"{'atoms':>30}: {png}")
    result["png"] = str(png)
    return result


def load_compare_data(name: str, quick: bool = False):
    """Data for ``sparsecode compare``: (X, true_features or None, centre?)."""
    n = 4_000 if quick else 20_000
    if name == "toy":
        from .data.toy import make_superposition

        X, truth = make_superposition(n, 32, 64, mean_active=4, random_state=0)
        return X, truth, False
    if name == "patches":
        return load_china_patches(n), None, True
    if name == "glove":
        from .data.words import load_glove_6b_50d

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

    from .data.activations import extract_activations, load_minilm
    from .data.text import load_default_corpus

    model, tok = load_minilm()
    with tempfile.TemporaryDirectory() as tmp:
        store = extract_activations(model, tok, load_default_corpus(),
                                    ["encoder.layer.3"], tmp, max_tokens=n_tokens)
        return np.array(store.load("encoder.layer.3"))


def _compare_cmd(args: argparse.Namespace) -> None:
    from .comparison import FAMILIES, compare

    X, truth, center = load_compare_data(args.data, args.quick)
    families = args.estimators.split(",") if args.estimators else list(FAMILIES)
    compare(X, families, true_features=truth, center=center, device=args.device,
            out_dir=args.out, n_components=args.n_components)
    print(f"report: {args.out}/report.md")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparsecode", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="dictionary learning on china.jpg patches")
    p.add_argument("--out", default="out", help="output folder (default: out)")
    p.add_argument("--n-patches", type=int, default=20_000)
    p.add_argument("--n-components", type=int, default=128)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--device", default="auto")
    c = sub.add_parser("compare", help="SAEs vs dictionary learning vs PCA/ICA")
    c.add_argument("--data", default="toy",
                   help="toy, patches, glove, minilm or PATH.npy (default: toy)")
    c.add_argument("--estimators", default="",
                   help="comma-separated families (default: all)")
    c.add_argument("--n-components", type=int, default=None)
    c.add_argument("--out", default="out/compare")
    c.add_argument("--quick", action="store_true")
    c.add_argument("--device", default="auto")
    from ._cli_activations import add_commands

    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sparsecode`` command."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        demo(args.out, args.n_patches, args.n_components, args.alpha, args.device)
    elif args.command == "compare":
        _compare_cmd(args)
    elif args.command in ("extract", "fit"):
        from ._cli_activations import run_extract, run_fit

        (run_extract if args.command == "extract" else run_fit)(args)
    return 0
