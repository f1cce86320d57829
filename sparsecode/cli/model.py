"""``sparsecode transform`` and ``sparsecode evaluate``: use a saved model."""

from __future__ import annotations

import argparse

import numpy as np

from .arrays import read_array, write_codes
from .options import FORMAT

__all__ = ["add_commands", "evaluate", "run_evaluate", "run_transform"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="folder written by `sparsecode fit` / sparsecode.save")
    p.add_argument("input", help=".npy, .npz, .safetensors file or activation store")
    p.add_argument("--key", default=None,
                   help="array (.npz/.safetensors) or module (store) to read")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the ``transform`` and ``evaluate`` subcommands."""
    fmt = FORMAT
    t = sub.add_parser("transform", help="encode data with a saved model",
                       formatter_class=fmt)
    _common(t)
    t.add_argument("--out", required=True,
                   help="codes file: .npy (dense) or .npz (scipy sparse)")
    e = sub.add_parser("evaluate", formatter_class=fmt,
                       help="FVU, L0, dead and dense fractions of a saved model")
    _common(e)
    e.add_argument("--json", default=None, help="also write the metrics here")


def _load(args: argparse.Namespace):
    from ..io import load

    return load(args.model, device=args.device), read_array(args.input, args.key)


def run_transform(args: argparse.Namespace) -> None:
    """Run ``sparsecode transform`` with parsed arguments."""
    est, X = _load(args)
    codes = np.asarray(est.transform(X))
    path = write_codes(args.out, codes)
    print(f"codes {codes.shape} -> {path}")


def evaluate(est, X: np.ndarray) -> dict[str, float]:
    """Reconstruction metrics of a fitted estimator on X.

    Parameters
    ----------
    est : fitted sparsecode estimator
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    dict
        ``fvu``, ``l0``, ``dead_fraction``, ``dense_fraction``, ``n_samples``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode import SparseAutoencoder
    >>> from sparsecode.cli.model import evaluate
    >>> X = np.random.default_rng(0).normal(size=(256, 8)).astype(np.float32)
    >>> est = SparseAutoencoder(16, k=2, max_iter=2, random_state=0, device="cpu")
    >>> evaluate(est.fit(X), X)["l0"] <= 2
    True
    """
    from ..metrics import dead_fraction, dense_fraction, fvu, l0

    codes = np.asarray(est.transform(X))
    recon = np.asarray(est.inverse_transform(codes))
    return {"n_samples": len(X), "fvu": fvu(X, recon), "l0": l0(codes),
            "dead_fraction": dead_fraction(codes),
            "dense_fraction": dense_fraction(codes)}


def run_evaluate(args: argparse.Namespace) -> None:
    """Run ``sparsecode evaluate`` with parsed arguments."""
    est, X = _load(args)
    metrics = evaluate(est, X)
    for name, value in metrics.items():
        print(f"{name:<15} {value:.6g}" if isinstance(value, float)
              else f"{name:<15} {value}")
    if args.json:
        from .._utils import write_json

        write_json(args.json, metrics)
