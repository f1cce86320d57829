"""sparsecode: sparse dictionary learning, sparse autoencoders and sparse word
vectors with the scikit-learn estimator API, on a torch core (CPU or GPU)."""

from .dictionary import (
    DictionaryLearning,
    MiniBatchDictionaryLearning,
    SparseCoder,
    sparse_encode,
)

__version__ = "0.1.0"

__all__ = [
    "DictionaryLearning",
    "MiniBatchDictionaryLearning",
    "SparseCoder",
    "__version__",
    "sparse_encode",
]
