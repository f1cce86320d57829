"""Reproductions of historic applications, one module each.

Every module has ``run(quick=False, device="auto", out_dir=None,
random_state=0)`` returning a `Report` (our numbers beside the paper's);
with ``out_dir`` the report (Markdown and JSON) and its figures are written
there. `PAPERS` names them with one line each (``sparsecode reproduce
--list``).
"""

from . import (
    chen2017,
    cunningham2023,
    denoising,
    endnet,
    faruqui2015,
    mri,
    nucleus,
    sharkey2022,
    spine2018,
    trifonov2018,
    yun2021,
)
from ._report import Report

#: module name -> one line on what it reproduces
PAPERS = {
    "sharkey2022": "Sharkey et al. 2022: SAEs recover features from toy superposition",
    "cunningham2023": "Cunningham et al. 2023: SAE FVU vs L0 against PCA/ICA/neurons "
                      "on MiniLM",
    "yun2021": "Yun et al. 2021: one dictionary of transformer factors over MiniLM "
               "layers",
    "faruqui2015": "Faruqui et al. 2015: sparse overcomplete word vectors (GloVe, "
                   "MiniLM)",
    "spine2018": "Subramanian et al. 2018: SPINE sparse interpretable word vectors",
    "trifonov2018": "Trifonov et al. 2018: post-hoc sparse sentence embeddings, "
                    "coherence",
    "denoising": "Elad & Aharon 2006 recipe: patch-dictionary denoising vs "
                 "scikit-learn (camera, astronaut)",
    "chen2017": "Chen et al. 2017: denoising SAE patch features vs pixels/PCA "
                "(digits, lfw)",
    "endnet": "Ozkan et al. 2017 (EndNet): hyperspectral unmixing of real "
              "reflectance spectra",
    "mri": "2017 AD-MRI line: SAE patch features vs atrophy size, synthetic "
           "cohort on MNI152",
    "nucleus": "Hou et al. 2017: nucleus detection with a convolutional sparse "
               "autoencoder",
}

__all__ = [
    "PAPERS",
    "Report",
    "chen2017",
    "cunningham2023",
    "denoising",
    "endnet",
    "faruqui2015",
    "mri",
    "nucleus",
    "sharkey2022",
    "spine2018",
    "trifonov2018",
    "yun2021",
]
