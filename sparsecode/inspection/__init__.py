"""Feature inspection: top-activating token contexts, statistics, an HTML report.

Codes are aligned row by row with the token rows of an
:class:`~sparsecode.data.store.ActivationStore`. They are given either as an
array (numpy, torch or anything ``numpy.asarray`` accepts) of shape
``(n_tokens, n_latents)``, or as an encoder (an object with ``.transform`` such
as a fitted estimator, or a callable ``encode(batch) -> codes``) applied to
``store.iter_batches(module, shuffle=False)``, so that the full code matrix is
never held in memory: one streaming pass keeps a running top-``n`` per latent
(merged with :func:`torch.topk`), the active counts and a histogram of the
activation magnitudes. An encoder must be row-wise (the code of a token depends
only on its activation) since the context rows are re-encoded on their own.

"Top-activating" means the largest positive values; rows where a latent is
``<= 0`` are never listed as its contexts (for signed codes, pass ``-codes`` or
``abs(codes)`` to see the other side). Equal activations at the cut-off are
broken arbitrarily; the listed ones are ordered by activation, then by row.

* `feature_stats` -- density, maximum, top rows and activation histogram of
  every latent in one streaming pass (`FeatureStats`);
* `top_contexts` -- the contexts of one latent's top activations;
* `html_report` -- a self-contained HTML page about the most active features.
"""

from ._stats import FeatureStats, feature_stats
from .report import html_report, top_contexts

__all__ = ["FeatureStats", "feature_stats", "html_report", "top_contexts"]
