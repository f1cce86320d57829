"""Head-to-head: SAEs vs classic dictionary learning vs PCA/ICA on the same data.

`compare` fits every family at several sparsity levels on one train split and
evaluates all of them on one held-out split with the pinned metrics of
`sparsecode.metrics` (pooled FVU, L0, dead and dense fractions, and MMCS /
Hungarian matching when the true features are known), plus fit time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics
from ._utils import atomic_write
from .dictionary import MiniBatchDictionaryLearning
from .nn import ACTIVATIONS
from .sae import SparseAutoencoder
from .viz import plot_density_histograms, plot_frontier

__all__ = [
    "DEFAULT_FAMILIES",
    "FAMILIES",
    "CompareResult",
    "Family",
    "compare",
    "evaluate",
    "get_family",
    "sae_family",
]


@dataclass(frozen=True)
class Family:
    """One estimator family: how to build it at a sparsity level and encode with it.

    ``make(level, n_components, random_state, device)`` returns an unfitted
    estimator; ``encode(est, X)`` returns ``(codes, X_hat)``; ``atoms(est)``
    returns the learned directions (rows) or None.

    Examples
    --------
    A whitened PCA family, scored by `evaluate`:

    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from sparsecode.comparison import Family, evaluate, get_family
    >>> pca = get_family("pca")
    >>> fam = Family("pca_white", (2,), lambda level, n, rs, device: PCA(
    ...     level, whiten=True), pca.encode, pca.atoms, "n_components")
    >>> X = np.random.default_rng(0).standard_normal((50, 4))
    >>> evaluate(fam, fam.make(2, 8, 0, "cpu").fit(X), X, None)["l0"]
    2.0
    """

    name: str
    levels: tuple
    make: Callable[..., Any]
    encode: Callable[[Any, np.ndarray], tuple[np.ndarray, np.ndarray]]
    atoms: Callable[[Any], np.ndarray | None]
    level_name: str


def _transform_encode(est, X):
    codes = np.asarray(est.transform(X))
    return codes, np.asarray(est.inverse_transform(codes))


def _dl(level, n, rs, device, **kw):
    return MiniBatchDictionaryLearning(n, batch_size=256, max_iter=3, random_state=rs,
                                       device=device, **kw)


def _make_dl_lasso(level, n, rs, device):
    return _dl(level, n, rs, device, alpha=level, transform_algorithm="lasso_lars")


def _make_dl_omp(level, n, rs, device):
    return _dl(level, n, rs, device, alpha=1.0, transform_algorithm="omp",
               transform_n_nonzero_coefs=int(level))


def _sae_maker(activation: str, by: str):
    def make(level, n, rs, device):
        kw = {"k": int(level)} if by == "k" else {"alpha": _sae_alpha(activation,
                                                                      level)}
        return SparseAutoencoder(n, activation=activation, random_state=rs,
                                 device=device, **kw)

    return make


def _sae_alpha(activation: str, multiplier: float) -> float:
    """Alpha levels of the penalised SAEs: multiples of the variant's default."""
    return float(ACTIVATIONS[activation].default_alpha or 1.0) * float(multiplier)


def _make_pca(level, n, rs, device):
    from sklearn.decomposition import PCA

    return PCA(int(level), random_state=rs)


def _make_ica(level, n, rs, device):
    from sklearn.decomposition import FastICA

    return FastICA(int(level), random_state=rs, max_iter=400, whiten="unit-variance")


def _components(est):
    return getattr(est, "components_", None)


def _ica_atoms(est):
    return est.mixing_.T


def sae_family(activation: str) -> Family:
    """The comparison family of a registered SAE variant: levels of ``k`` for
    variants that take it, else multiples of the default ``alpha``.

    Parameters
    ----------
    activation : str
        A key of `sparsecode.nn.ACTIVATIONS`.

    Returns
    -------
    Family

    Examples
    --------
    >>> from sparsecode.comparison import sae_family
    >>> topk, relu = sae_family("topk"), sae_family("relu")
    >>> topk.name, topk.levels, relu.levels, relu.level_name
    ('sae_topk', (2, 4, 8, 16), (0.3, 1.0, 3.0), 'alpha x default')
    """
    if ACTIVATIONS[activation].takes_k:
        return Family(f"sae_{activation}", (2, 4, 8, 16), _sae_maker(activation, "k"),
                      _transform_encode, _components, "k")
    return Family(f"sae_{activation}", (0.3, 1.0, 3.0), _sae_maker(activation, "alpha"),
                  _transform_encode, _components, "alpha x default")


#: what `compare` and ``sparsecode compare`` fit when no family is named
DEFAULT_FAMILIES = ("dl_lasso", "dl_omp", "sae_topk", "sae_relu", "pca")
FAMILIES: dict[str, Family] = {
    "dl_lasso": Family("dl_lasso", (0.3, 1.0, 3.0), _make_dl_lasso,
                       _transform_encode, _components, "alpha"),
    "dl_omp": Family("dl_omp", (2, 4, 8, 16), _make_dl_omp, _transform_encode,
                     _components, "k"),
    **{f"sae_{name}": sae_family(name) for name in ACTIVATIONS},
    "pca": Family("pca", (2, 4, 8, 16), _make_pca, _transform_encode,
                  _components, "n_components"),
    "ica": Family("ica", (2, 4, 8, 16), _make_ica, _transform_encode, _ica_atoms,
                  "n_components"),
}


def get_family(name: str) -> Family:
    """The family ``name``: a key of `FAMILIES`, or ``sae_<variant>`` for any
    variant registered since (ValueError otherwise).

    Parameters
    ----------
    name : str

    Returns
    -------
    Family

    Examples
    --------
    >>> from sparsecode.comparison import get_family
    >>> omp = get_family("dl_omp")
    >>> omp.name, omp.levels, omp.level_name
    ('dl_omp', (2, 4, 8, 16), 'k')
    """
    if name in FAMILIES:
        return FAMILIES[name]
    if name.startswith("sae_") and name[4:] in ACTIVATIONS:
        return sae_family(name[4:])
    raise ValueError(f"unknown estimator family {name!r}; choose from "
                     f"{sorted(FAMILIES)}.")


@dataclass
class CompareResult:
    """Rows of the comparison plus what is needed to recompute them.

    Attributes
    ----------
    rows : list of dict
        One per (family, level): ``family, level, level_name, l0, fvu,
        dead_fraction, dense_fraction, fit_seconds`` and, with true features,
        ``mmcs`` and ``hungarian_mcc``.
    X_train, X_test : ndarray
        The preprocessed splits every estimator saw.
    fitted : dict
        ``(family, level) -> fitted estimator``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode import compare
    >>> X = np.random.default_rng(0).standard_normal((100, 6))
    >>> res = compare(X, ["pca"], {"pca": [2]}, device="cpu", verbose=False)
    >>> res.X_train.shape, res.X_test.shape, list(res.fitted)
    ((80, 6), (20, 6), [('pca', 2)])
    >>> res.table().split()[:4], res.to_markdown().startswith("| family | level |")
    (['family', 'level', 'l0', 'fvu'], True)
    """

    rows: list[dict]
    X_train: np.ndarray
    X_test: np.ndarray
    fitted: dict = field(default_factory=dict)

    def table(self) -> str:
        """The rows as a fixed-width text table."""
        cols = ["family", "level", "l0", "fvu", "dead_fraction", "dense_fraction",
                "fit_seconds"] + (["mmcs", "hungarian_mcc"]
                                  if self.rows and "mmcs" in self.rows[0] else [])
        lines = ["  ".join(f"{c:>14}" for c in cols)]
        for row in self.rows:
            lines.append("  ".join(_fmt(row[c]) for c in cols))
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The rows as a Markdown table."""
        cols = list(self.rows[0]) if self.rows else []
        head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
        body = "".join("| " + " | ".join(_fmt(r[c]).strip() for c in cols) + " |\n"
                       for r in self.rows)
        return head + body


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:>14.4g}"
    return f"{v!s:>14}"


def _preprocess(X: np.ndarray, test_size: float, center: bool, random_state: int):
    """Split, then centre (optional) and scale so that E||x||^2 = n_features."""
    from sklearn.model_selection import train_test_split

    X_tr, X_te = train_test_split(np.asarray(X, dtype=np.float32),
                                  test_size=test_size, random_state=random_state)
    mean = X_tr.mean(0) if center else np.zeros(X_tr.shape[1], np.float32)
    scale = np.sqrt((((X_tr - mean) ** 2).sum(1)).mean() / X_tr.shape[1])
    return (X_tr - mean) / scale, (X_te - mean) / scale


def evaluate(family: Family, est, X_test, true_features) -> dict:
    """Held-out L0, FVU, dead and dense fractions (and MMCS, Hungarian MCC
    against ``true_features`` when given) of a fitted ``est`` of ``family``.

    Parameters
    ----------
    family : Family
    est : fitted estimator
    X_test : ndarray of shape (n_samples, n_features)
    true_features : ndarray of shape (n_true, n_features) or None

    Returns
    -------
    dict
        ``l0``, ``fvu``, ``dead_fraction``, ``dense_fraction`` (and ``mmcs``,
        ``hungarian_mcc``).

    Examples
    --------
    PCA on all the dimensions reconstructs exactly and finds the axes:

    >>> import numpy as np
    >>> from sparsecode.comparison import evaluate, get_family
    >>> X = np.random.default_rng(0).standard_normal((50, 3)) * [3.0, 2.0, 1.0]
    >>> pca = get_family("pca")
    >>> row = evaluate(pca, pca.make(3, 12, 0, "cpu").fit(X), X, np.eye(3))
    >>> row["l0"], round(row["fvu"], 6), round(row["hungarian_mcc"], 1)
    (3.0, 0.0, 1.0)
    """
    codes, X_hat = family.encode(est, X_test)
    row = {"l0": metrics.l0(codes), "fvu": metrics.fvu(X_test, X_hat),
           "dead_fraction": metrics.dead_fraction(codes),
           "dense_fraction": metrics.dense_fraction(codes)}
    if true_features is not None:
        atoms = family.atoms(est)
        row["mmcs"] = metrics.mmcs(true_features, atoms)
        row["hungarian_mcc"] = metrics.hungarian_mcc(true_features, atoms)
    return row


def compare(
    X: Any,
    estimators: Sequence[str] = DEFAULT_FAMILIES,
    sparsities: dict[str, Sequence] | None = None,
    *,
    n_components: int | None = None,
    true_features: np.ndarray | None = None,
    test_size: float = 0.2,
    center: bool = True,
    random_state: int = 0,
    device: str = "auto",
    out_dir: str | Path | None = None,
    verbose: bool = True,
) -> CompareResult:
    """Fit each family at several sparsity levels; evaluate all on one held-out split.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    estimators : sequence of str
        Keys of `FAMILIES`: ``dl_lasso``, ``dl_omp``, ``sae_topk``,
        ``sae_batchtopk``, ``sae_relu``, ``sae_jumprelu``, ``sae_gated``,
        ``sae_matryoshka``, ``pca``, ``ica``.
    sparsities : dict, optional
        Per family, the levels to fit (``alpha`` for lasso, ``k`` for OMP and
        TopK, multiples of the default ``alpha`` for relu/jumprelu SAEs,
        ``n_components`` for PCA/ICA); defaults to each family's levels.
    n_components : int, optional
        Dictionary size of DL and SAEs (default ``4 * n_features``).
    true_features : ndarray of shape (n_true, n_features), optional
        Ground-truth directions: adds MMCS and Hungarian MCC columns.
    test_size : float
    center : bool
        Centre the data on the training mean (leave False for data generated
        as non-negative combinations of true features).
    random_state : int
    device : str
    out_dir : str or Path, optional
        Write ``report.md``, ``frontier.png`` and ``density.png`` there.
    verbose : bool
        Print each row as it is computed and the final table.

    Returns
    -------
    CompareResult

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode import compare
    >>> X = np.random.default_rng(0).standard_normal((100, 6))
    >>> res = compare(X, ["pca"], {"pca": [2, 6]}, device="cpu", verbose=False)
    >>> [(r["family"], r["level"], r["l0"], round(r["fvu"], 2)) for r in res.rows]
    [('pca', 2, 2.0, 0.77), ('pca', 6, 6.0, 0.0)]
    """
    X_tr, X_te = _preprocess(X, test_size, center, random_state)
    n = n_components or 4 * X_tr.shape[1]
    result = CompareResult([], X_tr, X_te)
    families = {name: get_family(name) for name in estimators}  # (before fitting)
    for name, family in families.items():
        for level in (sparsities or {}).get(name, family.levels):
            est = family.make(level, n, random_state, device)
            t0 = time.perf_counter()
            est.fit(X_tr)
            row = {"family": name, "level": level, "level_name": family.level_name,
                   **evaluate(family, est, X_te, true_features),
                   "fit_seconds": time.perf_counter() - t0}
            result.rows.append(row)
            result.fitted[(name, level)] = est
            if verbose:
                print(f"{name:>14} {family.level_name}={level}: L0 {row['l0']:.2f} "
                      f"FVU {row['fvu']:.4f} ({row['fit_seconds']:.1f} s)", flush=True)
    if verbose:
        print(result.table())
    if out_dir is not None:
        _write_report(result, families, Path(out_dir), n)
    return result


def _write_report(result: CompareResult, families: dict[str, Family], out: Path,
                  n: int) -> None:
    """``report.md``, ``frontier.png`` and ``density.png`` (held-out densities
    of each family at its middle level) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    plot_frontier(result.rows, out / "frontier.png")
    by_family: dict[str, list] = {}
    for (name, level), est in result.fitted.items():
        by_family.setdefault(name, []).append((level, est))
    densities = {}
    for name, items in by_family.items():
        level, est = items[len(items) // 2]
        codes, _ = families[name].encode(est, result.X_test)
        densities[f"{name} ({level})"] = metrics.feature_density(codes)
    plot_density_histograms(densities, out / "density.png")
    text = ("# sparsecode compare\n\n"
            f"train {result.X_train.shape}, held-out {result.X_test.shape}, "
            f"dictionary size {n}\n\n" + result.to_markdown()
            + "\n![FVU vs L0](frontier.png)\n\n![feature density](density.png)\n")
    atomic_write(out / "report.md",
                 lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
