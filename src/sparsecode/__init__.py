"""sparsecode: sparse dictionary learning, sparse autoencoders and sparse word
vectors with the scikit-learn estimator API, on a torch core (CPU or GPU)."""

# OpenMP's wait policy is left to the user: torch's default (threads spin
# briefly between kernels, then sleep) is 1.3-1.6x faster for the solvers'
# small kernels on an idle machine than OMP_WAIT_POLICY=PASSIVE, which only
# pays off when the cores are oversubscribed (README, "Performance").

from .autoencoder import SparseAutoencoder
from .comparison import compare
from .dictionary import (
    DictionaryLearning,
    MiniBatchDictionaryLearning,
    SparseCoder,
    sparse_encode,
)
from .io import load, save
from .words import SPINE, SparseOvercompleteVectors

__version__ = "0.1.0"

__all__ = [
    "DictionaryLearning",
    "MiniBatchDictionaryLearning",
    "SPINE",
    "SparseAutoencoder",
    "SparseCoder",
    "SparseOvercompleteVectors",
    "__version__",
    "compare",
    "load",
    "save",
    "sparse_encode",
]
