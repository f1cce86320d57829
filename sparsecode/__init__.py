"""sparsecode: sparse dictionary learning, sparse autoencoders and sparse word
vectors with the scikit-learn estimator API, on a torch core (CPU or GPU).

The subpackages, one per family: `solvers` (batched sparse-coding solvers),
`dictionary` (the scikit-learn drop-ins), `nn` and `sae` (sparse
autoencoders), `words` (sparse word vectors), `metrics`, `inspection`,
`data` (offline loaders and generators), `papers` (reproductions) and `cli`;
`compare`, `PatchFeatures` (any encoder on image patches, pooled), `save`
and `load` sit on top of them.
"""

from .comparison import compare
from .dictionary import (
    DictionaryLearning,
    MiniBatchDictionaryLearning,
    SparseCoder,
    dict_learning,
    dict_learning_online,
    sparse_encode,
)
from .features import PatchFeatures, VolumePatchFeatures
from .io import load, save
from .sae import (
    ConvSparseAutoencoder,
    SparseAutoencoder,
    Transcoder,
    UnmixingAutoencoder,
)
from .words import SPINE, SparseOvercompleteVectors

__version__ = "0.1.0"

__all__ = [
    "ConvSparseAutoencoder",
    "DictionaryLearning",
    "MiniBatchDictionaryLearning",
    "PatchFeatures",
    "SPINE",
    "SparseAutoencoder",
    "Transcoder",
    "UnmixingAutoencoder",
    "VolumePatchFeatures",
    "SparseCoder",
    "SparseOvercompleteVectors",
    "__version__",
    "compare",
    "dict_learning",
    "dict_learning_online",
    "load",
    "save",
    "sparse_encode",
]
