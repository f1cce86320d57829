"""Chen et al. (2017), denoising sparse-autoencoder features for classification.

After M. Chen et al., "Deep features learning for medical image analysis with
convolutional autoencoder neural network" (IEEE Trans. Big Data, 2017): an
autoencoder trained to reconstruct clean patches from noisy ones gives
features that a simple classifier uses at least as well as raw pixels. Here,
on small bundled data sets (scikit-learn's digits, scikit-image's
``lfw_subset`` face / non-face), each row of the table is a cross-validated
``Pipeline([features, StandardScaler, LogisticRegression])`` with features:

* ``denoising SAE patches``: `sparsecode.features.PatchFeatures` of a TopK
  `sparsecode.SparseAutoencoder` trained with ``input_noise`` on random
  patches, codes max-pooled over 2 x 2 regions;
* ``SAE patches (no noise)``: the same without input noise;
* ``PCA patches``: the same pipeline with a PCA of the patches as encoder
  (25 components: a linear, complete control);
* ``raw pixels``;
* ``PCA (same size)``: PCA of the whole images with as many components as the
  SAE features have columns (capped at the pixels and training images).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .._utils import one_thread
from ..base import resolve_device
from ..data.image_files import load_digits_images, load_lfw_subset
from ..features import PatchFeatures
from ..sae import SparseAutoencoder
from ..viz.atoms import plot_atoms
from ._report import Report, figure_path, finish

__all__ = ["run"]

PAPER = [
    {"finding": "denoising (convolutional) autoencoder features vs raw pixels",
     "paper": "features >= raw pixels (medical images; not these data sets)"},
    {"finding": "denoising vs plain autoencoder",
     "paper": "input noise helps the learned features (direction only)"},
]

_SETTINGS = {  # quick / full
    True: {"n_digits": 600, "n_codes": 32, "k": 4, "n_patches": 2000,
           "steps": 60, "noise": (0.5,)},
    False: {"n_digits": None, "n_codes": 64, "k": 8, "n_patches": 10_000,
            "steps": 1000, "noise": (0.25, 0.5, 1.0)},
}


def _datasets(n_digits: int | None, seed: int) -> dict:
    """name -> (rows, labels, step of the patches at transform)."""
    X, y = load_digits_images()
    if n_digits is not None and n_digits < len(X):
        keep = np.random.RandomState(seed).permutation(len(X))[:n_digits]
        X, y = X[keep], y[keep]
    faces, is_face = load_lfw_subset()
    return {"digits": (X.reshape(len(X), -1), y, 1),
            "lfw_subset": (faces.reshape(len(faces), -1), is_face, 2)}


def _patch_features(cfg: dict, noise: float, step: int, device: str,
                    seed: int) -> PatchFeatures:
    batch = 128
    passes = max(1, round(cfg["steps"] * batch / cfg["n_patches"]))
    sae = SparseAutoencoder(cfg["n_codes"], k=cfg["k"], input_noise=noise,
                            max_iter=passes, batch_size=batch, random_state=seed,
                            device=device)
    return PatchFeatures(sae, patch_size=5, step=step, n_patches=cfg["n_patches"],
                         pooling="max", grid=2, random_state=seed)


def _pipelines(cfg: dict, X: np.ndarray, step: int, device: str, seed: int,
               n_splits: int) -> list[tuple[str, float, object]]:
    """(features label, input noise, features) of every row."""
    rows = [("denoising SAE patches", s,
             _patch_features(cfg, s, step, device, seed)) for s in cfg["noise"]]
    rows.append(("SAE patches (no noise)", 0.0,
                 _patch_features(cfg, 0.0, step, device, seed)))
    rows.append(("PCA patches", 0.0, PatchFeatures(
        PCA(min(cfg["n_codes"], 25), random_state=seed), patch_size=5, step=step,
        n_patches=cfg["n_patches"], grid=2, random_state=seed)))
    rows.append(("raw pixels", 0.0, "passthrough"))
    size = 4 * cfg["n_codes"]  # grid 2 x 2 of n_codes
    n_train = len(X) - -(-len(X) // n_splits)
    rows.append(("PCA (same size)", 0.0,
                 PCA(min(size, X.shape[1], n_train), random_state=seed)))
    return rows


def _evaluate(features, X, y, seed: int, n_splits: int) -> dict:
    pipe = Pipeline([("features", features), ("scale", StandardScaler()),
                     ("clf", LogisticRegression(max_iter=1000))])
    cv = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = cross_validate(pipe, X, y, cv=cv)
    acc = res["test_score"]
    return {"cv_accuracy": float(acc.mean()), "cv_std": float(acc.std()),
            "fit_time_s": float(res["fit_time"].mean())}


def _n_features(features, X: np.ndarray) -> int:
    if features == "passthrough":
        return int(X.shape[1])
    if isinstance(features, PCA):
        return int(features.n_components)
    return 4 * int(features.encoder.n_components)  # grid 2 x 2


def _figure(cfg, name, X, step, device, seed, out_dir) -> str:
    """Atoms of the denoising SAE fitted on every image of ``name``."""
    pf = _patch_features(cfg, cfg["noise"][0], step, device, seed).fit(X)
    path = figure_path(out_dir, f"chen2017_atoms_{name}.png")
    plot_atoms(pf.encoder_.components_, (5, 5), path, n_cols=16,
               title=f"denoising SAE patch atoms ({name}, "
                     f"input_noise={cfg['noise'][0]})")
    return str(path)


def run(quick: bool = False, device: str = "auto",
        out_dir: str | os.PathLike | None = None, random_state: int = 0) -> Report:
    """Cross-validate patch-SAE, raw-pixel and PCA features; return a `Report`.

    Parameters
    ----------
    quick : bool
        600 digits, smaller SAEs trained for about 60 steps, one noise level
        (under a minute on two CPU cores).
    device : str
        Device of the SAEs.
    out_dir : str or path-like, optional
        Where to write the report (Markdown and JSON) and the figures of the
        learned patch atoms; nothing is written when None.
    random_state : int
        Seeds the subsample, the folds, the patches and the SAEs.

    Returns
    -------
    Report
        One row per (dataset, features): ``n_features``, ``cv_accuracy``
        (5-fold stratified), ``cv_std``, ``fit_time_s`` (per fold).
    """
    cfg, n_splits = _SETTINGS[bool(quick)], 5
    dev = str(resolve_device(device))
    rows, figures = [], []
    with one_thread(dev), threadpool_limits(1):  # small ops: no oversubscription
        for name, (X, y, step) in _datasets(cfg["n_digits"], random_state).items():
            for label, noise, feats in _pipelines(cfg, X, step, dev, random_state,
                                                  n_splits):
                row = {"dataset": name, "features": label, "input_noise": noise,
                       "n_features": _n_features(feats, X), "n_images": len(X)}
                row.update(_evaluate(feats, X, y, random_state, n_splits))
                rows.append(row)
            if out_dir is not None:
                figures.append(_figure(cfg, name, X, step, dev, random_state,
                                       out_dir))
    return finish(Report(
        title="Chen et al. 2017: denoising sparse-autoencoder patch features",
        table=rows, paper=PAPER, notes=_notes(rows, cfg, quick), figures=figures),
        out_dir)


def _notes(rows: list[dict], cfg: dict, quick: bool) -> list[str]:
    notes = [
        "data: scikit-learn digits (8 x 8, 10 classes"
        + (f", {cfg['n_digits']} random images" if cfg["n_digits"] else "")
        + ") and scikit-image lfw_subset (25 x 25, 100 faces / 100 non-faces); "
        "the paper's medical images are not used, so only directions compare.",
        f"SAE: TopK, {cfg['n_codes']} latents, k={cfg['k']}, ~{cfg['steps']} Adam "
        f"steps on {cfg['n_patches']} centred 5 x 5 patches; codes max-pooled over "
        "2 x 2 regions (lfw: patches every 2 pixels); not the paper's deep "
        "convolutional network. LogisticRegression(C=1) on standardised features.",
        "PCA (same size) has min(SAE feature columns, pixels, training images) "
        "components (digits: 64, a whitened rotation of the raw pixels); "
        "standardising whitens every component, so with as many components as "
        "training images the noise directions are amplified and PCA scores low.",
    ]
    for name in dict.fromkeys(r["dataset"] for r in rows):
        notes += _dataset_notes(name, [r for r in rows if r["dataset"] == name])
    if quick:
        notes.append("quick mode: fewer images and SAE steps than the full run.")
    return notes


def _dataset_notes(name: str, sub: list[dict]) -> list[str]:
    """Where the rows of one data set follow or miss the paper's direction."""
    acc = {r["features"]: r for r in sub}
    best_dn = max((r for r in sub if r["features"].startswith("denoising")),
                  key=lambda r: r["cv_accuracy"])
    plain, raw = acc["SAE patches (no noise)"], acc["raw pixels"]
    verdict = ">=" if best_dn["cv_accuracy"] >= raw["cv_accuracy"] else "<"
    notes = [f"{name}: best denoising SAE features (input_noise="
             f"{best_dn['input_noise']:g}) {best_dn['cv_accuracy']:.3f} {verdict} "
             f"raw pixels {raw['cv_accuracy']:.3f}."]
    pca = acc["PCA patches"]["cv_accuracy"]
    best_sae = max(best_dn["cv_accuracy"], plain["cv_accuracy"])
    if pca >= best_sae:
        notes.append(f"{name}: PCA patch codes (linear) score {pca:.3f} >= the "
                     f"best SAE codes {best_sae:.3f}: the gain over raw pixels "
                     "comes from the patch-and-pool pipeline, not from the SAE.")
    if (best_dn["cv_accuracy"] - plain["cv_accuracy"]
            <= max(best_dn["cv_std"], plain["cv_std"])):
        notes.append(f"{name}: input noise does not clearly help here (best "
                     f"denoising {best_dn['cv_accuracy']:.3f} vs no noise "
                     f"{plain['cv_accuracy']:.3f}: not more than one fold std "
                     "better), unlike the paper's direction.")
    return notes
