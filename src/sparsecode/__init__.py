"""sparsecode: sparse dictionary learning, sparse autoencoders and sparse word
vectors with the scikit-learn estimator API, on a torch core (CPU or GPU)."""

import os as _os

# The solvers launch many small kernels; OpenMP threads that spin between them
# cost 5-10x on a busy CPU (measured: benchmarks/README). Respect a user's choice;
# this takes effect only when sparsecode is imported before torch.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .autoencoder import SparseAutoencoder  # noqa: E402
from .comparison import compare  # noqa: E402
from .dictionary import (  # noqa: E402
    DictionaryLearning,
    MiniBatchDictionaryLearning,
    SparseCoder,
    sparse_encode,
)
from .io import load, save  # noqa: E402
from .words import SPINE, SparseOvercompleteVectors  # noqa: E402

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
