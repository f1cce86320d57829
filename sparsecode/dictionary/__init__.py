"""Classic dictionary learning: drop-ins for scikit-learn's estimators, on torch.

`DictionaryLearning`, `MiniBatchDictionaryLearning` and `SparseCoder` accept
every parameter of scikit-learn 1.9's classes of the same name, with the same
meaning and objective scaling

    0.5 * ||X - U V||_F^2 + alpha * ||U||_{1,1},   ||V_k||_2 <= 1,

plus ``device``. Sparse codes come from the batched solvers in
`sparsecode.solvers` (see `sparsecode.sparse_encode` for the mapping of the
algorithm names).
"""

from ._batch import DictionaryLearning
from ._online import MiniBatchDictionaryLearning
from ._sparse_coder import SparseCoder
from .coding import sparse_encode

__all__ = [
    "DictionaryLearning",
    "MiniBatchDictionaryLearning",
    "SparseCoder",
    "sparse_encode",
]
