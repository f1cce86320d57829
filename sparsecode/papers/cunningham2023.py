"""Cunningham, Ewart, Riggs, Huben & Sharkey (2023), "Sparse autoencoders find
highly interpretable features in language models" (and Bricken et al. 2023,
"Towards monosemanticity") — the reconstruction side, on MiniLM-L6 layer 3.

Sites: the residual stream after block 3 (``encoder.layer.3``, 384 dims) and
the MLP activations of block 3 (``encoder.layer.3.intermediate``, 1536 dims,
after the GELU). On each site we trace FVU against L0 for

* sparse autoencoders: TopK at several ``k`` and ReLU + L1 at two penalties,
  each at several widths (numbers of latents);
* PCA and ICA keeping ``k`` components (their codes are dense, so L0 = k);
* the neuron basis: keep the ``k`` largest-magnitude coordinates of each
  (centred, scaled) token and zero the rest;

and report the dead and dense fractions of every SAE. Data preparation, the
families and the metrics are those of `sparsecode.comparison.compare` (one
train/held-out split, centred and scaled to ``E||x||^2 = d``; pooled FVU);
PCA and ICA are fitted by `compare` itself, the SAEs with the same family
definitions but a training budget set here (quick mode trains for a few
hundred steps at a fixed learning rate instead of the estimator's ~2000
steps).

The papers (Pythia-70M residual stream and MLPs, dictionary ratios 0.5-8)
show SAE features to be more interpretable than PCA, ICA and neuron
directions, and trade reconstruction against sparsity along the L1
coefficient and dictionary size. The FVU-vs-L0 comparison with the dense
bases at equal L0 is the expected shape rather than a figure of the paper;
the notes say what we measured.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._report import Report, figure_path, finish

__all__ = ["PAPER", "SITES", "neuron_basis", "run"]

SITES = {"residual": "encoder.layer.3", "mlp": "encoder.layer.3.intermediate"}

PAPER = [
    {"comparison": "SAE features vs PCA / ICA / neurons / random directions",
     "paper": "SAE features more interpretable (automatic interpretability "
              "scores; not measured here)"},
    {"comparison": "FVU at equal L0 vs PCA / ICA / neurons",
     "paper": "expected: SAE frontier well below the dense bases"},
    {"comparison": "dictionary ratio 0.5 -> 8",
     "paper": "expected: larger dictionaries lower FVU at equal L0, more "
              "dead latents"},
    {"comparison": "MLP vs residual stream",
     "paper": "both decomposed; no ordering of difficulty claimed"},
]


@dataclass(frozen=True)
class Config:
    """Sizes of a run (see `run`); `latents` and `ica_ks` are per site."""

    n_docs: int
    n_tokens: int
    latents: dict[str, tuple[int, ...]]
    ks: tuple[int, ...]
    relu_alphas: tuple[float, ...]
    baseline_ks: tuple[int, ...]
    ica_ks: dict[str, tuple[int, ...]]
    passes: int | None
    learning_rate: float | None


QUICK = Config(n_docs=70, n_tokens=8000,
               latents={"residual": (768, 3072), "mlp": (768,)}, ks=(8, 16, 32),
               relu_alphas=(3.0, 10.0), baseline_ks=(8, 16, 32, 64),
               ica_ks={"residual": (8, 16, 32), "mlp": (16,)}, passes=4,
               learning_rate=2e-3)
FULL = Config(n_docs=606, n_tokens=80_000,
              latents={"residual": (768, 1536, 3072), "mlp": (768, 1536, 3072)},
              ks=(8, 16, 32, 64), relu_alphas=(1.0, 3.0),
              baseline_ks=(8, 16, 32, 64, 128),
              ica_ks={"residual": (8, 16, 32, 64), "mlp": (8, 16, 32, 64)},
              passes=None, learning_rate=None)


def neuron_basis(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep the `k` largest-magnitude coordinates of each row (the neuron basis).

    Parameters
    ----------
    X : numpy.ndarray of shape (n_samples, n_features)
        Data in the basis of the model's neurons (centred, as `compare`
        leaves it, so that the mean is not charged to the budget).
    k : int
        Coordinates kept per row.

    Returns
    -------
    codes : numpy.ndarray of shape (n_samples, n_features)
        `X` with all but the `k` largest-|.| entries of each row zeroed.
    X_hat : numpy.ndarray
        The reconstruction, equal to `codes` (the basis is the identity).
    """
    X = np.asarray(X)
    k = int(min(max(k, 0), X.shape[1]))
    codes = np.zeros_like(X)
    if k:
        idx = np.argpartition(-np.abs(X), k - 1, axis=1)[:, :k]
        np.put_along_axis(codes, idx, np.take_along_axis(X, idx, axis=1), axis=1)
    return codes, codes


def _load_sites(cfg: Config, texts: list[str] | None,
                device: str) -> tuple[dict[str, np.ndarray], int]:
    """MiniLM activations of both sites (first window of each document)."""
    from ..data.activations import extract_activations, load_minilm
    from .yun2021 import corpus_sample

    model, tokenizer = load_minilm(device)
    docs = corpus_sample(cfg.n_docs) if texts is None else list(texts)
    with tempfile.TemporaryDirectory(prefix="sparsecode-cunningham-") as tmp:
        store = extract_activations(
            model, tokenizer, docs, list(SITES.values()), tmp, max_length=128,
            split_long=False, drop_special_tokens=True, max_tokens=cfg.n_tokens,
            resume=False)
        return {site: np.asarray(store.load(m), dtype=np.float32)
                for site, m in SITES.items()}, len(docs)


def _sae_rows(site: str, X_train: np.ndarray, X_test: np.ndarray,
              cfg: Config, seed: int, device: str) -> list[dict]:
    """Fit and evaluate the SAEs of `compare`'s families at every width."""
    from ..comparison import FAMILIES, evaluate

    budget = {k: v for k, v in (("max_iter", cfg.passes),
                                ("learning_rate", cfg.learning_rate)) if v}
    rows = []
    for n_latents in cfg.latents[site]:
        for name, levels in (("sae_topk", cfg.ks), ("sae_relu", cfg.relu_alphas)):
            family = FAMILIES[name]
            for level in levels:
                est = family.make(level, n_latents, seed, device).set_params(**budget)
                t0 = time.perf_counter()
                est.fit(X_train)
                row = {"family": name, "level": level, "latents": n_latents,
                       **evaluate(family, est, X_test, None),
                       "fit_seconds": time.perf_counter() - t0}
                rows.append(row)
    return rows


def _site_rows(site: str, X: np.ndarray, cfg: Config, seed: int,
               device: str) -> list[dict]:
    from threadpoolctl import threadpool_limits

    from ..comparison import compare
    from ..metrics import fvu, l0

    levels = {"pca": cfg.baseline_ks, "ica": cfg.ica_ks[site]}
    # One BLAS thread: with torch's OpenMP runtime loaded, multi-threaded
    # OpenBLAS in PCA/FastICA is up to 10x slower on a small busy machine.
    with threadpool_limits(1, user_api="blas"), warnings.catch_warnings():
        # FastICA may stop at max_iter: its FVU is PCA's whatever the rotation
        warnings.filterwarnings("ignore", message="FastICA did not converge")
        base = compare(X, [f for f, lv in levels.items() if lv], levels,
                       random_state=seed, device=device, verbose=False)
    rows = [{**r, "latents": r["level"]} for r in base.rows]
    for k in cfg.baseline_ks:
        codes, X_hat = neuron_basis(base.X_test, k)
        rows.append({"family": "neurons", "level": k, "latents": X.shape[1],
                     "l0": l0(codes), "fvu": fvu(base.X_test, X_hat)})
    rows += _sae_rows(site, base.X_train, base.X_test, cfg, seed, device)
    keys = ("family", "level", "latents", "l0", "fvu", "dead_fraction",
            "dense_fraction", "fit_seconds")
    nan = float("nan")
    return [{"site": site, **{k: r.get(k, nan) for k in keys},
             "ratio": r["latents"] / X.shape[1] if r["family"].startswith("sae")
             else nan} for r in rows]


def _fvu_at(rows: list[dict], site: str, family: str, l0: float) -> float:
    """FVU of a baseline family interpolated (in log L0) at `l0`; NaN outside."""
    pts = sorted((r["l0"], r["fvu"]) for r in rows
                 if r["site"] == site and r["family"] == family)
    if not pts or not pts[0][0] <= l0 <= pts[-1][0]:
        return float("nan")
    x, y = np.log([p[0] for p in pts]), [p[1] for p in pts]
    return float(np.interp(np.log(l0), x, y))


def _baselines(rows: list[dict], site: str, l0: float) -> dict[str, float]:
    """FVU of each baseline family available at `l0` on `site`."""
    vals = {f: _fvu_at(rows, site, f, l0) for f in ("pca", "ica", "neurons")}
    return {f: v for f, v in vals.items() if v == v}


def _fvu(rows: list[dict], site: str, family: str, level: Any, latents: int):
    return next(r["fvu"] for r in rows if (r["site"], r["family"], r["level"],
                                           r["latents"]) == (site, family, level,
                                                             latents))


def _comparisons(rows: list[dict], cfg: Config) -> list[str]:
    """Notes: the best TopK SAE and every ReLU SAE against the baselines."""
    out = []
    for site in SITES:
        for k in cfg.ks:
            fvus = {n: _fvu(rows, site, "sae_topk", k, n) for n in cfg.latents[site]}
            n_best = min(fvus, key=fvus.get)
            out.append(f"{site}, L0 = {k}: best TopK SAE FVU {fvus[n_best]:.3f} "
                       f"({n_best} latents) vs " + ", ".join(
                           f"{f} {v:.3f}"
                           for f, v in _baselines(rows, site, k).items()) + ".")
        for r in rows:
            if r["site"] == site and r["family"] == "sae_relu":
                pca = _fvu_at(rows, site, "pca", r["l0"])
                out.append(f"{site}, ReLU SAE alpha x{r['level']} ({r['latents']} "
                           f"latents): L0 {r['l0']:.1f}, FVU {r['fvu']:.3f}; PCA "
                           f"at that L0 {pca:.3f}.")
    return out


def _verdicts(rows: list[dict], cfg: Config) -> list[str]:
    """Notes: the paper's expected shape, and whether we measured it."""
    below = [_fvu(rows, s, "sae_topk", k, n)
             < min(_baselines(rows, s, k).values(), default=np.inf)
             for s in SITES for k in cfg.ks for n in cfg.latents[s]]
    small, big = min(cfg.latents["residual"]), max(cfg.latents["residual"])
    wider = [_fvu(rows, "residual", "sae_topk", k, big)
             < _fvu(rows, "residual", "sae_topk", k, small)
             for k in cfg.ks if big > small]
    shared = sorted(set(cfg.latents["residual"]) & set(cfg.latents["mlp"]))
    harder = [_fvu(rows, "mlp", "sae_topk", k, n)
              > _fvu(rows, "residual", "sae_topk", k, n)
              for k in cfg.ks for n in shared]
    ica = [abs(r["fvu"] - _fvu_at(rows, r["site"], "pca", r["l0"]))
           for r in rows if r["family"] == "ica"]
    relu = [r["fvu"] < pca for r in rows if r["family"] == "sae_relu"
            for pca in [_fvu_at(rows, r["site"], "pca", r["l0"])] if pca == pca]
    return [
        "expected: TopK SAE frontier below PCA/ICA/neurons at equal L0 -> "
        f"below all baselines in {sum(below)} of {len(below)} (site, k, width); "
        f"ReLU SAEs below PCA at their own L0 in {sum(relu)} of {len(relu)} "
        "rows (where PCA's L0 range covers it).",
        f"expected: wider SAEs lower FVU -> {big} vs {small} latents on the "
        f"residual stream: lower at {sum(wider)} of {len(wider)} values of k.",
        f"MLP vs residual with {shared} latents at equal k: the MLP FVU is "
        f"higher in {sum(harder)} of {len(harder)} cases.",
        "ICA with k components spans the same principal subspace as PCA, so "
        "its reconstruction (hence FVU) is PCA's: largest difference "
        f"{max(ica, default=float('nan')):.1e}.",
    ]


def run(
    quick: bool = False,
    device: str = "auto",
    out_dir: str | os.PathLike | None = None,
    random_state: int = 0,
    *,
    texts: list[str] | None = None,
    **overrides: Any,
) -> Report:
    """FVU vs L0 of SAEs, PCA, ICA and the neuron basis on MiniLM layer 3.

    Parameters
    ----------
    quick : bool, default=False
        about 8,000 tokens (first window of 70 documents); SAEs of 768 and 3072
        latents (2x and 8x the residual width) on the residual stream and
        768 on the MLP, TopK k in {8, 16, 32} and ReLU at 3x and 10x the
        default penalty, 4 passes at lr 2e-3; ICA at k in {8, 16, 32}
        (residual) and 16 (MLP). ``False``: all 606 documents (about 71,000
        tokens), widths 768/1536/3072 on both sites, k up to 64, the
        estimators' default training (about 2000 steps each; hours on two
        CPU cores, use ``device="cuda"`` where available).
    device : str, default="auto"
    out_dir : str or path-like, optional
        Where to write ``report.md``, ``report.json`` and the FVU-L0
        figures (nothing when None).
    random_state : int, default=0
    texts : list of str, optional
        Documents to use instead of ``n_docs`` documents spread over the
        bundled corpus (`sparsecode.papers.yun2021.corpus_sample`).
    **overrides
        Fields of `Config` (e.g. ``n_tokens=5000, ks=(8, 32)``).

    Returns
    -------
    Report
        One row per (site, family, level, latents): ``site, family, level,
        latents, l0, fvu, dead_fraction, dense_fraction, fit_seconds, ratio``
        (ratio = latents / site dimension, SAEs only; NaN where a column does
        not apply).
    """
    cfg = replace(QUICK if quick else FULL, **overrides)
    data, n_docs = _load_sites(cfg, texts, device)
    rows = []
    for site, X in data.items():
        rows += _site_rows(site, X, cfg, random_state, device)
    notes = [
        f"data: {len(data['residual'])} MiniLM tokens (first window of "
        f"{n_docs} documents, no [CLS]/[SEP], at most {cfg.n_tokens}), "
        "80/20 split by `compare`, centred and scaled to E||x||^2 = d; "
        "metrics on the held-out 20%.",
        "SAE training: " + ("estimator defaults (about 2000 steps)."
                            if cfg.passes is None else
                            f"{cfg.passes} passes over the training split, "
                            f"batch 256, lr {cfg.learning_rate}."),
        "dead = never active on the held-out tokens; dense = active on > 10% "
        "of them. ReLU levels are multiples of the estimator's default L1 "
        "coefficient; L1 shrinks every active code and its penalty is warmed "
        "up, so with a short budget ReLU SAEs lag TopK ones at equal L0.",
        *_comparisons(rows, cfg),
        *_verdicts(rows, cfg),
    ]
    report = Report(
        title="Cunningham et al. 2023: SAEs vs PCA/ICA/neurons on MiniLM layer 3",
        table=rows, paper=PAPER, notes=notes)
    for site in data:
        path = figure_path(out_dir, f"frontier_{site}.png")
        if path is not None:
            from ..viz import plot_frontier

            plot_frontier([r for r in rows if r["site"] == site], path)
            report.figures.append(str(path))
    return finish(report, out_dir)
