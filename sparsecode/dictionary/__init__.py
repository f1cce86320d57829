"""Classic dictionary learning: drop-ins for scikit-learn's estimators, on torch.

`DictionaryLearning`, `MiniBatchDictionaryLearning`, `SparseCoder`,
`sparse_encode`, `dict_learning` and `dict_learning_online` accept every
parameter of scikit-learn 1.9's classes and functions of the same name, with
the same meaning and objective scaling

    0.5 * ||X - U V||_F^2 + alpha * ||U||_{1,1},   ||V_k||_2 <= 1,

plus ``device``. Sparse codes come from the batched solvers in
`sparsecode.solvers` (see `sparsecode.sparse_encode` for the mapping of the
algorithm names).
"""

from ._batch import DictionaryLearning
from ._online import MiniBatchDictionaryLearning
from ._sparse_coder import SparseCoder
from .coding import sparse_encode
from .functions import dict_learning, dict_learning_online

__all__ = [
    "DictionaryLearning",
    "MiniBatchDictionaryLearning",
    "SparseCoder",
    "dict_learning",
    "dict_learning_online",
    "sparse_encode",
]
