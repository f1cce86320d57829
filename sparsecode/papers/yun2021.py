"""Yun, Chen, Olshausen & LeCun (2021), "Transformer visualization via
dictionary learning: contextualized embedding as a linear superposition of
transformer factors" — on MiniLM-L6 instead of BERT-base.

Method (as in the paper and its public code, zeyuyun1/TransformerVis): the
hidden states of every layer (the embedding output and the output of each of
the 6 encoder blocks, ``hidden_states[0..6]``) of every real token (no
``[CLS]``/``[SEP]``) are pooled, and ONE dictionary ``Phi`` is learned for all
of them with non-negative sparse coding, ``x = Phi a + eps, a >= 0``; codes
are inferred by FISTA (step ``1/L``). Importance score of factor ``c`` at
layer ``l``: its mean coefficient over the tokens at that layer (our reading
of the paper; it may average only each layer's largest coefficients --
unverified); each factor's curve is normalised to sum to 1 over layers.
Factors whose curve peaks in the first third of the layers (0-2) are
"low-level", in the middle (3-4) "mid-level", in the last third (5-6)
"high-level".

Differences. The public code trains with its own Hessian-diagonal gradient
step on BERT-base's layers 0, 2, ..., 10 (2000 atoms, lambda 0.3, FISTA 500
iterations); we use `MiniBatchDictionaryLearning` (Mairal's online
statistics) with FISTA codes. That code neither whitens nor centres the
hidden states; MiniLM's layers, however, differ in scale (the last layer's
vectors are about half as long as layer 3's), so each layer is scaled to mean
squared norm ``n_features`` -- otherwise importance would mostly track each
layer's scale. Not centred: codes are non-negative, as in the paper. The
public code divides each token's residual by ``sqrt(frequency)`` of its word
in the dictionary update; we get the same expected weighting by sampling
training vectors with probability proportional to ``1 / sqrt(frequency)``.

The paper's claim is qualitative (figures of importance curves and
top-activating contexts): word-level factors (polysemy disambiguation) peak
in early layers, sentence-level patterns in the middle, long-range
dependencies late. Our measurable proxy: *token purity* of a factor (the share
of its total activation carried by the one token type that carries most); the
paper's direction predicts that early-peaking factors are purer.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._report import Report, finish

__all__ = ["LAYERS", "PAPER", "corpus_sample", "importance_scores", "run",
           "token_purity"]

#: Hooked modules, in order: ``hidden_states[0]`` .. ``hidden_states[6]``.
LAYERS = ("embeddings", *(f"encoder.layer.{i}" for i in range(6)))
LEVELS = ("low", "mid", "high")

PAPER = [
    {"level": "low", "factors": "word-level (polysemy disambiguation)",
     "paper": "importance peaks in early layers, then decays"},
    {"level": "mid", "factors": "sentence-level patterns",
     "paper": "importance peaks in middle layers"},
    {"level": "high", "factors": "long-range dependencies",
     "paper": "importance peaks in the last layers"},
    {"level": "setup", "factors": "BERT-base, 2000 atoms, lambda 0.3",
     "paper": "FISTA 500 iterations, a >= 0, one dictionary for all layers"},
]


@dataclass(frozen=True)
class Config:
    """Sizes of a run (see `run`)."""

    n_docs: int
    max_length: int
    n_components: int
    alpha: float
    n_train: int
    passes: int
    fit_iter: int
    encode_iter: int
    n_per_level: int
    n_contexts: int


QUICK = Config(n_docs=48, max_length=64, n_components=256, alpha=1.0,
               n_train=10_000, passes=2, fit_iter=100, encode_iter=100,
               n_per_level=4, n_contexts=5)
FULL = Config(n_docs=300, max_length=128, n_components=1024, alpha=1.0,
              n_train=60_000, passes=2, fit_iter=200, encode_iter=300,
              n_per_level=8, n_contexts=8)


# ------------------------------------------------------------------ data
def corpus_sample(n_docs: int) -> list[str]:
    """`n_docs` documents spread evenly over the bundled corpus.

    Parameters
    ----------
    n_docs : int
        Number of documents (at most the corpus size, about 600).

    Returns
    -------
    list of str
        Evenly spaced documents of `sparsecode.data.text.load_default_corpus`
        (Wikipedia articles, Lee news paragraphs and newsgroup posts).
    """
    from ..data.text import load_default_corpus

    corpus = load_default_corpus()
    idx = np.unique(np.linspace(0, len(corpus) - 1, min(n_docs, len(corpus))
                                ).astype(int))
    return [corpus[i] for i in idx]


def _layer_matrices(store: Any) -> list[np.ndarray]:
    """Each layer's hidden states, scaled to mean squared norm ``n_features``."""
    out = []
    for name in LAYERS:
        X = np.asarray(store.load(name), dtype=np.float32)
        out.append(X * np.sqrt(X.shape[1] / np.mean(np.sum(X * X, axis=1))))
    return out


def _train_rows(token_ids: np.ndarray, n_layers: int, n_train: int,
                rng: np.random.Generator) -> np.ndarray:
    """Rows of the stacked layers, drawn with probability ~ 1/sqrt(frequency)."""
    _, inverse, counts = np.unique(token_ids, return_inverse=True,
                                   return_counts=True)
    p = np.tile(1.0 / np.sqrt(counts[inverse]), n_layers)
    size = min(n_train, int(np.count_nonzero(p)))
    return np.sort(rng.choice(p.size, size=size, replace=False, p=p / p.sum()))


# ----------------------------------------------------------- coding
def _fit_dictionary(X: np.ndarray, cfg: Config, seed: int, device: str):
    from ..dictionary import MiniBatchDictionaryLearning

    dl = MiniBatchDictionaryLearning(
        cfg.n_components, alpha=cfg.alpha, fit_algorithm="fista",
        transform_algorithm="fista", transform_alpha=cfg.alpha,
        transform_max_iter=cfg.fit_iter, positive_code=True, batch_size=256,
        max_iter=cfg.passes, tol=0.0, max_no_improvement=None,
        random_state=seed, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FISTA at fit_iter: inexact inner steps
        return dl.fit(X)


def _encode(X: np.ndarray, atoms: np.ndarray, cfg: Config, device: str):
    """Non-negative FISTA codes of `X`, as a scipy CSR matrix."""
    import scipy.sparse as sp

    from ..dictionary import sparse_encode

    blocks = []
    for start in range(0, len(X), 8192):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            codes = sparse_encode(X[start:start + 8192], atoms, algorithm="fista",
                                  alpha=cfg.alpha, positive=True,
                                  max_iter=cfg.encode_iter, device=device)
        blocks.append(sp.csr_array(codes))
    return sp.vstack(blocks, format="csr")


def importance_scores(codes_by_layer: list[Any]) -> np.ndarray:
    """The paper's importance score: mean coefficient of each atom per layer.

    Parameters
    ----------
    codes_by_layer : list of array-like or scipy sparse, each (n_tokens, n_atoms)
        Non-negative codes of the same tokens at each layer.

    Returns
    -------
    numpy.ndarray of shape (n_atoms, n_layers)
        ``I[c, l]`` = mean over tokens of atom ``c``'s code at layer ``l``
        (not normalised).
    """
    return np.stack([np.asarray(c.mean(axis=0)).ravel() for c in codes_by_layer],
                    axis=1)


def token_purity(codes_by_layer: list[Any], token_ids: np.ndarray) -> np.ndarray:
    """Share of each atom's activation mass carried by its top token type.

    Parameters
    ----------
    codes_by_layer : list of scipy sparse, each (n_tokens, n_atoms)
    token_ids : numpy.ndarray of shape (n_tokens,)

    Returns
    -------
    numpy.ndarray of shape (n_atoms,)
        In ``(0, 1]``; NaN for atoms never active.
    """
    import scipy.sparse as sp

    _, types = np.unique(token_ids, return_inverse=True)
    onehot = sp.csr_array((np.ones(len(types)), (types, np.arange(len(types)))))
    mass = sum(onehot @ c for c in codes_by_layer)  # (n_types, n_atoms)
    mass = mass.toarray() if sp.issparse(mass) else np.asarray(mass)
    total = mass.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, mass.max(axis=0) / total, np.nan)


def _level(peak: np.ndarray, n_layers: int) -> np.ndarray:
    """low / mid / high by the third of the layers where importance peaks."""
    return np.asarray(LEVELS)[np.minimum(3 * peak // n_layers, 2)]


def _context_text(ctx: dict, width: int = 4) -> str:
    """``before [token] after`` with at most `width` tokens on each side."""
    before = " ".join(ctx["before"][-width:])
    after = " ".join(ctx["after"][:width])
    return f"{before} [{ctx['token']}] {after}".strip().replace("|", "/")


def _atom_rows(imp: np.ndarray, purity: np.ndarray, picks: np.ndarray,
               levels: np.ndarray, top: dict[int, list[dict]]) -> list[dict]:
    rows = []
    for atom in picks:
        row = {"atom": int(atom), "level": str(levels[atom]),
               "peak_layer": int(imp[atom].argmax())}
        row.update({f"layer_{l}": float(v) for l, v in enumerate(imp[atom])})
        row["purity"] = float(purity[atom])
        row["top_tokens"] = ", ".join(c["token"] for c in top[int(atom)])
        rows.append(row)
    return rows


def _pick(total: np.ndarray, levels: np.ndarray, n: int) -> np.ndarray:
    """The `n` atoms of each level with the largest total importance."""
    picks = []
    for level in LEVELS:
        idx = np.flatnonzero((levels == level) & (total > 0))
        picks += idx[np.argsort(-total[idx], kind="stable")][:n].tolist()
    return np.asarray(picks, dtype=int)


def _summary(imp: np.ndarray, purity: np.ndarray, alive: np.ndarray,
             levels: np.ndarray) -> tuple[dict, float]:
    """Per-level counts and mean purity; Spearman(centre-of-mass layer, purity)."""
    from scipy.stats import spearmanr

    centre = imp[alive] @ np.arange(imp.shape[1])
    rho = float(spearmanr(centre, purity[alive])[0])
    stats = {lv: (int(np.sum(alive & (levels == lv))),
                  float(np.nanmean(purity[alive & (levels == lv)]))
                  if np.any(alive & (levels == lv)) else float("nan"))
             for lv in LEVELS}
    return stats, rho


def run(
    quick: bool = False,
    device: str = "auto",
    out_dir: str | os.PathLike | None = None,
    random_state: int = 0,
    *,
    texts: list[str] | None = None,
    **overrides: Any,
) -> Report:
    """Learn one non-negative dictionary for all MiniLM layers; report importance.

    Parameters
    ----------
    quick : bool, default=False
        Small setting (48 documents, first 62 tokens of each, 256 atoms;
        about a minute on two CPU cores). ``False``: 300 documents, up to
        126 tokens each (about 36,000 tokens x 7 layers), 1024 atoms, more
        FISTA iterations (about an hour on two CPU cores; use
        ``device="cuda"`` where available).
    device : str, default="auto"
    out_dir : str or path-like, optional
        Where to write ``report.md``, ``report.json`` (nothing when None).
    random_state : int, default=0
        Seeds the training-token sample and the dictionary.
    texts : list of str, optional
        Documents to use instead of ``n_docs`` documents spread over the
        bundled corpus (`corpus_sample`).
    **overrides
        Fields of `Config` (e.g. ``n_components=128, n_docs=16``).

    Returns
    -------
    Report
        One row per shown atom: ``atom, level, peak_layer, layer_0 ..
        layer_6`` (importance normalised over layers, sums to 1),
        ``purity`` and ``top_tokens``. ``report.extra`` (an added attribute)
        holds the arrays behind it: ``importance`` (all atoms, normalised),
        ``raw_importance``, ``purity``, ``levels``, ``codes_min``, per-layer
        ``l0`` and ``fvu``, ``spearman``, ``level_stats`` and ``n_tokens``.
    """
    from ..data.activations import extract_activations, load_minilm

    cfg = replace(QUICK if quick else FULL, **overrides)
    model, tokenizer = load_minilm(device)
    docs = corpus_sample(cfg.n_docs) if texts is None else list(texts)
    with tempfile.TemporaryDirectory(prefix="sparsecode-yun2021-") as tmp:
        store = extract_activations(
            model, tokenizer, docs, list(LAYERS), tmp, max_length=cfg.max_length,
            split_long=False, drop_special_tokens=True, resume=False)
        res = _analyse(store, tokenizer, cfg, random_state, device)
    imp, levels, top, picks = res["importance"], res["levels"], res["top"], res["picks"]
    notes = _notes(cfg, res["n_tokens"], len(docs), res)
    notes += [f"atom {a} ({levels[a]}, peak layer {imp[a].argmax()}): "
              + " | ".join(_context_text(c) for c in top[a][:3])
              for a in picks.tolist()]
    report = Report(
        title="Yun et al. 2021: transformer factors across MiniLM-L6 layers",
        table=_atom_rows(imp, res["purity"], picks, levels, top), paper=PAPER,
        notes=notes)
    report.extra = {k: v for k, v in res.items() if k not in ("top", "picks")}
    return finish(report, out_dir)


def _analyse(store: Any, tokenizer: Any, cfg: Config, seed: int,
             device: str) -> dict:
    """Dictionary, codes, importance, purity and top contexts of one store."""
    from ..inspection import top_contexts
    from ..metrics import fvu

    Xs, ids = _layer_matrices(store), store.token_ids()
    rows = _train_rows(ids, len(Xs), cfg.n_train, np.random.default_rng(seed))
    atoms = _fit_dictionary(np.concatenate(Xs)[rows], cfg, seed, device).components_
    codes = [_encode(X, atoms, cfg, device) for X in Xs]
    raw = importance_scores(codes)
    total = raw.sum(axis=1)
    alive = total > 0
    imp = np.divide(raw, total[:, None], out=np.zeros_like(raw),
                    where=alive[:, None])
    levels = _level(imp.argmax(axis=1), len(LAYERS))
    purity = token_purity(codes, ids)
    picks = _pick(total, levels, cfg.n_per_level)
    top = {int(a): top_contexts(codes[int(imp[a].argmax())][:, [a]], store,
                                tokenizer, 0, n=cfg.n_contexts, window=4)
           for a in picks}
    stats, rho = _summary(imp, purity, alive, levels)
    return {"importance": imp, "raw_importance": raw, "purity": purity,
            "levels": levels, "codes_min": min(float(c.min()) for c in codes),
            "l0": [c.nnz / c.shape[0] for c in codes],
            "fvu": [fvu(X, c @ atoms) for X, c in zip(Xs, codes, strict=True)],
            "spearman": rho, "level_stats": stats, "n_tokens": store.n_tokens,
            "top": top, "picks": picks}


def _notes(cfg: Config, n_tokens: int, n_docs: int, res: dict) -> list[str]:
    stats, rho, l0s, fvus = res["level_stats"], res["spearman"], res["l0"], res["fvu"]
    low, high = stats["low"][1], stats["high"][1]
    agrees = low > high and rho < 0
    return [
        f"data: {n_docs} documents, first {cfg.max_length - 2} tokens of each, "
        f"{n_tokens} tokens x {len(LAYERS)} layers (hidden_states[0..6]); "
        "each layer scaled to E||x||^2 = d.",
        f"dictionary: {cfg.n_components} atoms shared by all layers, non-negative "
        f"codes, lambda {cfg.alpha}, FISTA {cfg.fit_iter} (fit) / "
        f"{cfg.encode_iter} (codes) iterations; {cfg.n_train} training vectors "
        "sampled with probability ~ 1/sqrt(token frequency).",
        "per-layer L0: " + ", ".join(f"{v:.1f}" for v in l0s)
        + "; per-layer FVU: " + ", ".join(f"{v:.3f}" for v in fvus) + ".",
        "atoms by the layer where importance peaks (low = layers 0-2, mid = 3-4, "
        "high = 5-6): " + ", ".join(f"{lv} {n} (mean token purity {p:.3f})"
                                    for lv, (n, p) in stats.items()) + ".",
        "paper's direction: word-level factors peak early, sentence-level and "
        "long-range ones later, so early-peaking factors should be more "
        f"token-specific. Spearman(centre-of-mass layer, purity) = {rho:.2f}: "
        + ("we see this direction (low-level atoms are purer than high-level "
           "ones)." if agrees else "we do NOT see this direction here."),
        "importance = mean coefficient per layer, normalised per atom over "
        "layers; shown: the atoms of each level with the largest total "
        "importance, their top tokens at the peak layer (top_contexts).",
    ]
