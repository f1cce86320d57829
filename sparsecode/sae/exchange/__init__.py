"""Exchanging SAEs with SAELens, EleutherAI's sparsify and dictionary_learning.

One module per library; each reads that library's files into a fitted
`SparseAutoencoder` or `Transcoder` (and writes them back where the library
has a format).
Nothing is unpickled.
"""

from .dictionary_learning import load_dictionary_learning
from .saelens import load_saelens
from .saelens_write import save_saelens
from .sparsify import load_sparsify, save_sparsify

__all__ = ["load_dictionary_learning", "load_saelens", "load_sparsify",
           "save_saelens", "save_sparsify"]
