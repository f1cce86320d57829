"""A real brain MRI template (MNI152, bundled in nilearn's wheel), NIfTI files,
and a synthetic cohort of "subjects" and "patients" made from the template.

Nothing downloads: the template is the ICBM152 2009a T1 and its grey/white
matter maps that nilearn ships in ``nilearn/datasets/data`` (read with nibabel,
nilearn itself is not imported). The cohort is synthetic: random smooth
deformations, bias fields and noise make subjects; patients also get a
controlled atrophy (enlarged ventricles, thinned cortex).
"""

from __future__ import annotations

from functools import lru_cache
from numbers import Integral, Real
from os import PathLike
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage as ndi

from ._packages import install_hint, package_dir, require

__all__ = ["MNI152_KINDS", "brain_mask", "load_mni152", "make_cohort", "mni152_path",
           "read_volume", "volume_patches"]

#: Maps `load_mni152` offers: T1 intensity, grey and white matter probability.
MNI152_KINDS = ("t1", "gm", "wm")
_FILE = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"


def _nibabel():
    return require("nibabel", "mri")


def read_volume(path: str | PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A 3-D volume from a NIfTI (or any nibabel-readable) file.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    volume : ndarray of shape (d, h, w), float32
        The stored values (scaled by the file's slope/intercept).
    affine : ndarray of shape (4, 4)
        Voxel to world (mm) transform.

    Examples
    --------
    >>> from sparsecode.data.mri import mni152_path, read_volume
    >>> vol, affine = read_volume(mni152_path("t1"))
    >>> vol.shape, float(affine[0, 0])
    ((197, 233, 189), 1.0)
    """
    nib = _nibabel()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No volume file at {path}.")
    try:
        img = nib.load(str(path))
        vol = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as err:  # nibabel raises many kinds on a bad file
        raise ValueError(f"Cannot read {path} as a NIfTI volume: {err}") from err
    if vol.ndim == 4 and vol.shape[3] == 1:
        vol = vol[..., 0]
    if vol.ndim != 3:
        raise ValueError(f"{path} holds an array of shape {vol.shape}, not a 3-D "
                         "volume.")
    if not np.isfinite(vol).all():
        raise ValueError(f"{path} holds NaN or infinite voxels.")
    return vol, np.asarray(img.affine, dtype=np.float64)


def mni152_path(kind: str = "t1") -> Path:
    """Path of the MNI152 (ICBM 2009a) file of ``kind`` in nilearn's wheel.

    Examples
    --------
    >>> from sparsecode.data.mri import mni152_path
    >>> mni152_path("gm").name
    'mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz'
    """
    if kind not in MNI152_KINDS:
        raise ValueError(f"kind must be one of {MNI152_KINDS}, got {kind!r}.")
    path = package_dir("nilearn", "mri") / "datasets" / "data" / _FILE.format(kind)
    if not path.is_file():
        raise FileNotFoundError(f"nilearn's bundled template {path} is missing; "
                                f"reinstall nilearn ({install_hint('mri')}).")
    return path


def _check_resolution(resolution) -> int:
    if (isinstance(resolution, bool) or not isinstance(resolution, Integral)
            or not 1 <= resolution <= 16):
        raise ValueError("resolution must be an int number of mm in [1, 16], got "
                         f"{resolution!r}.")
    return int(resolution)


def _block_mean(vol: np.ndarray, r: int) -> np.ndarray:
    """Average ``r``-voxel cubes (the edge padded with zeros = background)."""
    pad = [(0, -s % r) for s in vol.shape]
    vol = np.pad(vol, pad)
    d, h, w = (s // r for s in vol.shape)
    return vol.reshape(d, r, h, r, w, r).mean(axis=(1, 3, 5))


@lru_cache(maxsize=12)
def _load(kind: str, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    vol, affine = read_volume(mni152_path(kind))
    out = _block_mean(vol / 255.0, resolution).astype(np.float32)
    out.setflags(write=False)
    block = np.diag([float(resolution)] * 3 + [1.0])
    block[:3, 3] = (resolution - 1) / 2  # centre of each averaged cube
    return out, affine @ block


def _template(kind: str, resolution: int) -> np.ndarray:
    return _load(kind, resolution)[0]


def load_mni152(resolution: int = 4, kind: str = "t1"
                ) -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 (ICBM 2009a symmetric) template bundled with nilearn.

    Parameters
    ----------
    resolution : int, default=4
        Voxel size in mm; the 1 mm file is averaged over cubes of
        ``resolution`` voxels (exact partial-volume downsampling).
    kind : {"t1", "gm", "wm"}
        T1-weighted intensity, grey or white matter probability.

    Returns
    -------
    volume : ndarray of shape (d, h, w), float32 in [0, 1]
    affine : ndarray of shape (4, 4)
        Voxel to MNI mm coordinates (of the downsampled grid).

    Examples
    --------
    >>> from sparsecode.data.mri import load_mni152
    >>> vol, affine = load_mni152(6, "gm")
    >>> vol.shape, float(affine[0, 0])
    ((33, 39, 32), 6.0)
    """
    r = _check_resolution(resolution)
    if kind not in MNI152_KINDS:
        raise ValueError(f"kind must be one of {MNI152_KINDS}, got {kind!r}.")
    vol, affine = _load(kind, r)
    return vol.copy(), affine.copy()


def _anatomy(resolution: int) -> dict[str, np.ndarray]:
    """Template maps plus the ventricle and brain masks and distances (mm).

    Ventricle rule: voxels inside the hole-filled brain mask
    (``fill_holes(gm + wm > 0.5)``) whose tissue ``gm + wm`` is below 0.5, in
    the central half of the brain's bounding box on every axis.
    """
    t1, gm, wm = (_template(k, resolution) for k in MNI152_KINDS)
    tissue = gm + wm
    brain = ndi.binary_fill_holes(tissue > 0.5)
    idx = np.nonzero(brain)
    central = np.zeros_like(brain)
    box = tuple(slice(int(lo + (hi - lo) / 4), int(hi - (hi - lo) / 4) + 1)
                for lo, hi in ((i.min(), i.max()) for i in idx))
    central[box] = True
    vent = brain & (tissue < 0.5) & central
    if not vent.any():
        raise ValueError(f"resolution {resolution} mm is too coarse to find the "
                         "ventricles; use a smaller one.")
    r = float(resolution)
    return {"t1": t1, "gm": gm, "wm": wm, "brain": brain, "vent": vent,
            "csf": np.float32(np.percentile(t1[vent], 10)),
            "d_vent": ndi.distance_transform_edt(~vent, sampling=r),
            "d_out": ndi.distance_transform_edt(brain, sampling=r)}


def _atrophied(anat: dict, ventricles_mm: float, cortex_mm: float,
               resolution: int) -> dict[str, np.ndarray]:
    """The template with ventricles grown by ``ventricles_mm`` and the outer
    ``cortex_mm`` of grey matter turned to CSF (partial-volume weights)."""
    r = float(resolution)
    w_v = np.clip((ventricles_mm + r - anat["d_vent"]) / r, 0, 1)
    w_v = np.where(anat["vent"] | ~anat["brain"], 0.0, w_v)
    w_c = np.clip((cortex_mm - (anat["d_out"] - r)) / r, 0, 1) * anat["brain"]
    keep_gm = (1 - w_v) * (1 - w_c)
    gm, wm = anat["gm"] * keep_gm, anat["wm"] * (1 - w_v)
    to_csf = 1 - (1 - w_v) * (1 - w_c * anat["gm"])
    t1 = anat["t1"] + (anat["csf"] - anat["t1"]) * to_csf
    return {"t1": t1, "gm": gm, "wm": wm}


def _smooth_field(rng, shape, sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise with unit RMS, shape ``shape``."""
    field = ndi.gaussian_filter(rng.standard_normal(shape), sigma,
                                axes=tuple(range(len(shape)))[-3:])
    return field / np.sqrt(np.mean(field ** 2))


def _check_cohort(n_subjects, atrophy, patient_fraction, kind) -> None:
    if isinstance(n_subjects, bool) or not isinstance(n_subjects, Integral) \
            or n_subjects < 2:
        raise ValueError(f"n_subjects must be an int >= 2, got {n_subjects!r}.")
    if not isinstance(atrophy, Real) or not 0 <= atrophy < 50:
        raise ValueError(f"atrophy must be a number of mm in [0, 50), got "
                         f"{atrophy!r}.")
    if not isinstance(patient_fraction, Real) or not 0 < patient_fraction < 1:
        raise ValueError("patient_fraction must be in (0, 1), got "
                         f"{patient_fraction!r}.")
    if kind not in MNI152_KINDS:
        raise ValueError(f"kind must be one of {MNI152_KINDS}, got {kind!r}.")


def make_cohort(n_subjects: int, *, atrophy: float = 2.0, resolution: int = 4,
                kind: str = "t1", patient_fraction: float = 0.5,
                cortex_fraction: float = 0.5, variability: float = 2.0,
                deformation: float = 3.0, smoothness: float = 12.0,
                bias: float = 0.1, noise: float = 0.03, random_state=None
                ) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic cohort on the real MNI152 template: controls and patients.

    Each subject is the template with ventricles grown by a random
    ``U(0, variability)`` mm (natural variation), warped by a random smooth
    displacement field (white noise smoothed by a Gaussian of ``smoothness``
    mm, scaled to an RMS of ``deformation`` mm, `scipy.ndimage.map_coordinates`),
    times a smooth bias field ``exp(bias * field)``, plus Gaussian noise of
    std ``noise``. Patients' ventricles grow by ``atrophy`` mm more and their
    cortex loses its outer ``cortex_fraction * atrophy`` mm of grey matter,
    before the warp (partial-volume weights, so sub-voxel sizes count).

    Parameters
    ----------
    n_subjects : int
    atrophy : float, default=2.0
        Atrophy size in mm (0: patients are drawn like controls).
    resolution : int, default=4
        Voxel size in mm (see `load_mni152`).
    kind : {"t1", "gm", "wm"}
        What the volumes hold: the T1 image (with bias and noise), or the
        subject's warped grey/white matter map (no bias or noise). The same
        ``random_state`` gives the same subjects for every kind.
    patient_fraction : float, default=0.5
    cortex_fraction, variability, deformation, smoothness, bias, noise : float
        See above (mm where a size).
    random_state : int, Generator or None

    Returns
    -------
    volumes : ndarray of shape (n_subjects, d, h, w), float32
    labels : ndarray of shape (n_subjects,), int
        1 for patients, 0 for controls (exactly ``round(patient_fraction *
        n_subjects)`` patients, in random order).

    Examples
    --------
    >>> from sparsecode.data.mri import make_cohort
    >>> X, y = make_cohort(4, atrophy=2.0, resolution=8, random_state=0)
    >>> X.shape, int(y.sum())
    ((4, 25, 30, 24), 2)
    """
    _check_cohort(n_subjects, atrophy, patient_fraction, kind)
    rng = np.random.default_rng(random_state)
    anat = _anatomy(_check_resolution(resolution))
    n_pat = int(round(patient_fraction * n_subjects))
    y = rng.permutation(np.r_[np.ones(n_pat, int), np.zeros(n_subjects - n_pat, int)])
    sizes = rng.uniform(0, variability, n_subjects) + atrophy * y
    shape, r = anat["t1"].shape, float(resolution)
    grid = np.indices(shape, dtype=np.float32)
    out = np.empty((n_subjects, *shape), np.float32)
    for i in range(n_subjects):
        maps = _atrophied(anat, sizes[i], cortex_fraction * atrophy * y[i],
                          resolution)
        disp = _smooth_field(rng, (3, *shape), smoothness / r) * (deformation / r)
        vol = ndi.map_coordinates(maps[kind], grid + disp, order=1, mode="nearest")
        gain = np.exp(bias * _smooth_field(rng, shape, 2 * smoothness / r))
        eps = noise * rng.standard_normal(shape)
        if kind == "t1":
            vol = np.clip(vol * gain + eps, 0, 1)
        out[i] = vol
    return out, y


def brain_mask(resolution: int, *, dilate: int = 1) -> np.ndarray:
    """Boolean brain mask of the MNI152 template at ``resolution`` mm:
    ``fill_holes(gm + wm > 0.5)`` grown by ``dilate`` voxels (to keep the
    cortical border, where thinning shows)."""
    gm, _ = load_mni152(resolution, "gm")
    wm, _ = load_mni152(resolution, "wm")
    mask = ndi.binary_fill_holes(gm + wm > 0.5)
    return ndi.binary_dilation(mask, iterations=dilate) if dilate else mask


def volume_patches(volumes: np.ndarray, patch_size: int, mask: np.ndarray
                   ) -> np.ndarray:
    """The ``patch_size``-cube around every ``mask`` voxel of each volume.

    Parameters
    ----------
    volumes : ndarray of shape (n, d, h, w)
    patch_size : int
        Odd edge of the cubic patch (voxels).
    mask : ndarray of bool, shape (d, h, w)
        Patch centres.

    Returns
    -------
    ndarray of shape (n, mask.sum(), patch_size ** 3)
        A strided ``sliding_window_view`` of the edge-padded volumes, gathered
        at the mask (no Python loop over patches).

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode.data.mri import volume_patches
    >>> vols = np.arange(2 * 4 * 4 * 4, dtype=float).reshape(2, 4, 4, 4)
    >>> mask = np.zeros((4, 4, 4), bool); mask[1, 2, 3] = True
    >>> P = volume_patches(vols, 3, mask)
    >>> P.shape, bool(P[0, 0, 13] == vols[0, 1, 2, 3])
    ((2, 1, 27), True)
    """
    vols = np.asarray(volumes)
    if vols.ndim != 4 or vols.dtype.kind not in "biuf":
        raise ValueError("volumes must be a numeric array of shape (n, d, h, w), "
                         f"got shape {vols.shape} and dtype {vols.dtype}.")
    if isinstance(patch_size, bool) or not isinstance(patch_size, Integral) \
            or patch_size < 1 or patch_size % 2 == 0:
        raise ValueError(f"patch_size must be an odd positive int, got {patch_size!r}.")
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != vols.shape[1:]:
        raise ValueError(f"mask must be a boolean array of shape {vols.shape[1:]}, "
                         f"got {mask.dtype} {mask.shape}.")
    patch_size = int(patch_size)
    r = patch_size // 2
    padded = np.pad(vols, [(0, 0)] + [(r, r)] * 3, mode="edge")
    view = sliding_window_view(padded, (patch_size,) * 3, axis=(1, 2, 3))
    return view[:, mask].reshape(len(vols), int(mask.sum()), patch_size ** 3)
