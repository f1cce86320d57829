"""Nucleus detection with a convolutional sparse autoencoder (after Hou et al.
2017, "Sparse autoencoder for unsupervised nucleus detection and
representation in histopathology images").

A `sparsecode.sae.conv.ConvSparseAutoencoder` (conv2d encoder, spatial top-k
code maps, conv_transpose2d decoder) is trained, without labels, on the
hematoxylin channel (``skimage.color.rgb2hed``) of scikit-image's real
immunohistochemistry image; the peaks of its `detection_map` are the detected
nuclei. It is scored by precision / recall / F1 of the detected centres
(`sparsecode.metrics.detection`) on generated histology-like images with known
nuclei (`sparsecode.data.histology.make_histology`), against
``skimage.feature.blob_log`` and ``peak_local_max`` on the smoothed hematoxylin
channel. Every method gets the same treatment: its threshold (and for ours the
code density at inference) is the best on separate generated validation
images, then applied once to the test images.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..data.histology import make_histology
from ..data.image_files import load_image
from ..metrics.detection import detection_scores, find_peaks, threshold_sweep
from ..sae.conv import ConvSparseAutoencoder
from ._report import Report, finish

__all__ = ["run"]

PAPER = [{"method": "Hou et al. 2017 (sparse conv. autoencoder, CSP-CNN)",
          "f1": "about 0.8-0.9",
          "data": "their H&E / IHC datasets with annotated nuclei, not ours"}]

_FRACTIONS = np.linspace(0.02, 0.9, 30)  # thresholds, times a map's scale


def _settings(quick: bool) -> dict:
    if quick:
        return {"n": 4, "size": 64, "n_nuclei": 8, "n_components": 4,
                "kernel_size": 9, "max_iter": 30, "crop_size": 32,
                "batch_size": 8, "densities": (0.03, 0.3)}
    return {"n": 16, "size": 128, "n_nuclei": 20, "n_components": 8,
            "kernel_size": 13, "max_iter": 400, "crop_size": 48,
            "batch_size": 16, "densities": (0.01, 0.03, 0.1, 0.3)}


def _hematoxylin(images: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2hed

    return np.stack([rgb2hed(img)[..., 0] for img in images])


def _row(method: str, scores: dict, threshold: float, seconds: float) -> dict:
    return {"method": method, "precision": float(scores["precision"]),
            "recall": float(scores["recall"]), "f1": float(scores["f1"]),
            "threshold": float(threshold), "time_s": round(seconds, 2)}


def _peak_method(val_maps, test_maps, data, min_distance):
    """Best validation threshold of `find_peaks` on score maps; test scores."""
    ths = _FRACTIONS * float(np.percentile(val_maps, 99.9))
    best, rows = threshold_sweep(
        lambda t: find_peaks(val_maps, min_distance=min_distance, threshold=t),
        data["val_true"], ths, data["radius"])
    preds = find_peaks(test_maps, min_distance=min_distance, threshold=best)
    val_f1 = max(r["f1"] for r in rows)
    return best, val_f1, detection_scores(preds, data["test_true"], data["radius"])


def _smoothed_peaks(data: dict) -> dict:
    t0 = time.perf_counter()
    sigma = data["radius"] / 2
    maps = [ndimage.gaussian_filter(data[k], (0, sigma, sigma))
            for k in ("val_h", "test_h")]
    best, _, scores = _peak_method(*maps, data, data["min_distance"])
    return _row("peak_local_max (smoothed H)", scores, best,
                time.perf_counter() - t0)


def _blobs(h: np.ndarray, threshold: float, radius: float) -> list[np.ndarray]:
    from skimage.feature import blob_log

    sigma = radius / np.sqrt(2)  # a LoG blob of radius r has sigma r / sqrt(2)
    return [blob_log(img, min_sigma=0.6 * sigma, max_sigma=1.5 * sigma,
                     num_sigma=6, threshold=threshold)[:, :2] for img in h]


def _blob_log(data: dict) -> tuple[dict, float]:
    t0 = time.perf_counter()
    scale = float(data["val_h"].max())
    val, test = data["val_h"] / scale, data["test_h"] / scale
    best, _ = threshold_sweep(lambda t: _blobs(val, t, data["radius"]),
                              data["val_true"], np.geomspace(0.002, 0.3, 20),
                              data["radius"])
    scores = detection_scores(_blobs(test, best, data["radius"]),
                              data["test_true"], data["radius"])
    return _row("blob_log (H)", scores, best, time.perf_counter() - t0), scale


def _fit_sae(cfg: dict, device: str, random_state: int) -> ConvSparseAutoencoder:
    real_h = _hematoxylin(load_image("immunohistochemistry")[None])
    return ConvSparseAutoencoder(
        cfg["n_components"], kernel_size=cfg["kernel_size"], density=0.004,
        crop_size=cfg["crop_size"], max_iter=cfg["max_iter"],
        batch_size=cfg["batch_size"], learning_rate=3e-3,
        random_state=random_state, device=device).fit(real_h)


def _sae_method(data: dict, cfg: dict, device: str, random_state: int):
    """Train on the real image; pick (density, threshold) on validation."""
    t0 = time.perf_counter()
    sae = _fit_sae(cfg, device, random_state)
    best = None
    for density in cfg["densities"]:
        sae.set_params(density=density)
        maps = [np.asarray(sae.detection_map(data[k])) for k in ("val_h", "test_h")]
        th, val_f1, scores = _peak_method(*maps, data, data["min_distance"])
        if best is None or val_f1 > best[0]:
            best = (val_f1, density, th, scores)
    _, density, th, scores = best
    sae.set_params(density=density)
    row = _row("conv. sparse autoencoder (H)", scores, th, time.perf_counter() - t0)
    row["density"] = float(density)
    return row, sae


def _data(cfg: dict, radius: float, random_state: int) -> dict:
    kw = {"size": cfg["size"], "n_nuclei": cfg["n_nuclei"], "radius": radius}
    val, val_true = make_histology(cfg["n"], random_state=random_state + 1, **kw)
    test, test_true = make_histology(cfg["n"], random_state=random_state + 2, **kw)
    return {"val_h": _hematoxylin(val), "test_h": _hematoxylin(test),
            "val_true": val_true, "test_true": test_true, "test_rgb": test,
            "radius": radius, "min_distance": max(1, int(round(radius)) - 1)}


def _figures(out_dir, sae, rows, data, blob_scale) -> list[str]:
    from ..viz.detections import plot_detections

    out = Path(out_dir)
    ours = rows[0]
    real = load_image("immunohistochemistry")
    real_h = _hematoxylin(real[None])
    det = np.asarray(sae.detection_map(real_h))
    found = find_peaks(det, min_distance=data["min_distance"],
                       threshold=ours["threshold"])[0]
    blobs = _blobs(real_h / blob_scale, rows[1]["threshold"], data["radius"])[0]
    test_det = np.asarray(sae.detection_map(data["test_h"][:1]))
    test_found = find_peaks(test_det, min_distance=data["min_distance"],
                            threshold=ours["threshold"])[0]
    return [str(p) for p in (
        plot_detections(real, found, out / "nucleus_real_sae.png",
                        title="conv. SAE detections, real IHC image"),
        plot_detections(real, blobs, out / "nucleus_real_blob_log.png",
                        title="blob_log detections, real IHC image"),
        plot_detections(data["test_rgb"][0], test_found,
                        out / "nucleus_generated_sae.png",
                        true_centres=data["test_true"][0],
                        title="conv. SAE on a generated image (circles: truth)"))]


def _notes(rows: list[dict], cfg: dict, radius: float) -> list[str]:
    ours, blob = rows[0], rows[1]
    notes = [
        f"test/validation data: {cfg['n']} + {cfg['n']} generated "
        f"{cfg['size']}x{cfg['size']} H-DAB images with {cfg['n_nuclei']} nuclei "
        f"each (radius {radius:g} px, touching/overlapping, stain levels measured "
        "on the real image with rgb2hed); a detection matches a true centre "
        f"within {radius:g} px (Hungarian, one-to-one).",
        f"the SAE ({cfg['n_components']} maps, {cfg['kernel_size']}px kernels, "
        f"{cfg['max_iter']} Adam steps) is trained on the hematoxylin channel of "
        "the real immunohistochemistry image only (no labels); it, like the "
        "baselines, sees the rgb2hed hematoxylin channel. On RGB input its "
        "atoms draw the brown DAB membranes and detection F1 fell below 0.1 in "
        "development runs.",
        "every method's threshold (and the SAE's inference code density, "
        f"chosen {ours['density']:g} from {list(cfg['densities'])}) is the best "
        "on the validation images, applied once to the test images; blob_log "
        "is given the true nucleus size range.",
        "the detector is the plain detection map of a top-k conv. SAE, not "
        "Hou et al.'s crosswise-sparse network with a separate detection "
        "branch, and the data are synthetic: the paper's F1 is not comparable.",
    ]
    if ours["f1"] > blob["f1"]:
        notes.append(f"our F1 {ours['f1']:.3f} beats blob_log's {blob['f1']:.3f}.")
    else:
        notes.append(
            f"our F1 {ours['f1']:.3f} is below blob_log's {blob['f1']:.3f}: the "
            "generated nuclei are, by construction, bright blobs of about the "
            "known size on the hematoxylin channel, which is exactly blob_log's "
            "model (and it is given that size). Spatial top-k spends its codes "
            "on the strongest responses first (several per bright nucleus, some "
            "on background texture), so sparse codes miss faint nuclei (recall "
            "is the weak part) and validation favours the densest codes tried, "
            "where the map is little more than a learned smoothing filter.")
    return notes


def run(quick: bool = False, device: str = "auto",
        out_dir: str | os.PathLike | None = None, random_state: int = 0) -> Report:
    """Detect nuclei with a conv. SAE and two scikit-image baselines.

    Parameters
    ----------
    quick : bool, default=False
        Few small images and a short training (well under a minute).
    device : str, default="auto"
        Device of the SAE.
    out_dir : str or PathLike, optional
        Where ``report.md``, ``report.json`` and the detection figures are
        written (nothing when None).
    random_state : int, default=0
        Seeds the SAE and the generated images.

    Returns
    -------
    Report
        One row per method: ``precision``, ``recall``, ``f1`` on the test
        images, the selected ``threshold`` and the ``time_s`` it took.
    """
    cfg, radius = _settings(quick), 6.0
    data = _data(cfg, radius, random_state)
    ours, sae = _sae_method(data, cfg, device, random_state)
    blob, blob_scale = _blob_log(data)
    rows = [ours, blob, _smoothed_peaks(data)]
    figures = ([] if out_dir is None
               else _figures(out_dir, sae, rows, data, blob_scale))
    return finish(Report(
        title="Hou et al. 2017: nucleus detection with a conv. sparse autoencoder",
        table=rows, paper=PAPER, notes=_notes(rows, cfg, radius), figures=figures),
        out_dir)
