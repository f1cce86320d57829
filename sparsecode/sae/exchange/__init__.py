"""Exchanging SAEs with SAELens, EleutherAI's sparsify and dictionary_learning.

One module per library; each reads that library's files into a fitted
`SparseAutoencoder` (and writes them back where the library has a format).
Nothing is unpickled.
"""

from .saelens import load_saelens
from .sparsify import load_sparsify

__all__ = ["load_saelens", "load_sparsify"]
