"""Sparse word vectors: `SparseOvercompleteVectors` and `SPINE`.

* `overcomplete` -- `SparseOvercompleteVectors` (Faruqui et al. 2015);
* `rda` -- its optimiser (AdaGrad on the dictionary, AdaGrad-RDA codes) and
  the exact lasso codes of its ``transform``;
* `spine` -- `SPINE` (Subramanian et al. 2018) and its loss terms.

Both are scikit-learn transformers from dense word vectors ``X`` (one row per
word) to sparse codes; see `sparsecode.data.words` for the vectors and
`sparsecode.metrics` for the word evaluations.
"""

from .overcomplete import SparseOvercompleteVectors
from .rda import rda_codes
from .spine import SPINE

__all__ = ["SPINE", "SparseOvercompleteVectors", "rda_codes"]
