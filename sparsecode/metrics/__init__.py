"""Metrics for sparse codes, dictionaries and word vectors (DESIGN.md section 6).

* `reconstruction` -- pooled `fvu`, `explained_variance`,
  `fvu_per_sample_mean` (the per-token "legacy" ratio), `l0`,
  `feature_density`, `dead_fraction`, `dense_fraction`;
* `recovery` -- `mmcs` and `hungarian_mcc` against known true features;
* `unmixing` -- `spectral_angle`, `match_endmembers`, `abundance_rmse`;
* `detection` -- `match_detections`, `detection_scores`, `find_peaks`,
  `threshold_sweep` (detected centres against known ones);
* `words` -- `word_similarity`, `analogy_accuracy`, `word_intrusion`,
  `sparsity`, `text_classification_accuracy`.

All accept numpy arrays, array-likes and torch tensors (any device and float
dtype), compute in float64 and return Python floats or numpy arrays.

Examples
--------
>>> import numpy as np
>>> from sparsecode.metrics import fvu, l0
>>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
>>> fvu(X, X), l0(np.array([[1.0, 0.0], [2.0, 3.0]]))
(0.0, 1.5)
"""

from .detection import detection_scores, find_peaks, match_detections, threshold_sweep
from .reconstruction import (
    dead_fraction,
    dense_fraction,
    explained_variance,
    feature_density,
    fvu,
    fvu_per_sample_mean,
    l0,
)
from .recovery import hungarian_mcc, mmcs
from .unmixing import abundance_rmse, match_endmembers, spectral_angle
from .words import (
    analogy_accuracy,
    sparsity,
    text_classification_accuracy,
    word_intrusion,
    word_similarity,
)

__all__ = [
    "abundance_rmse",
    "analogy_accuracy",
    "dead_fraction",
    "dense_fraction",
    "detection_scores",
    "explained_variance",
    "feature_density",
    "find_peaks",
    "fvu",
    "fvu_per_sample_mean",
    "hungarian_mcc",
    "l0",
    "match_detections",
    "match_endmembers",
    "mmcs",
    "sparsity",
    "spectral_angle",
    "text_classification_accuracy",
    "threshold_sweep",
    "word_intrusion",
    "word_similarity",
]
