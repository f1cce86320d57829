"""Sparse autoencoders: the `SparseAutoencoder` estimator and its training loop.

* `estimator` -- `SparseAutoencoder`, the scikit-learn estimator;
* `transcoder` -- `Transcoder`: codes of X trained to reconstruct Y;
* `conv` -- `ConvSparseAutoencoder`: convolutional code maps of images;
* `unmixing` -- `UnmixingAutoencoder`: endmembers and sum-to-one abundances;
* `config`, `state`, `training` -- `TrainConfig`, `TrainState` and the one
  training loop `fit_loop` (Adam, schedules, AuxK, clipping, checkpoints);
* `sources` -- batches from arrays, tensors, memmaps and iterables;
* `distributed` -- data-parallel training under ``torchrun``;
* `exchange` -- SAELens, sparsify and dictionary_learning files.

The variants themselves (activations, loss terms) live in `sparsecode.nn`.

Examples
--------
>>> import numpy as np
>>> from sparsecode import SparseAutoencoder
>>> X = np.random.default_rng(0).normal(size=(512, 16)).astype(np.float32)
>>> sae = SparseAutoencoder(64, k=4, max_iter=2, device="cpu", random_state=0).fit(X)
>>> int((sae.transform(X[:3]) != 0).sum(1).max())
4
"""

from .config import TrainConfig
from .conv import ConvSparseAutoencoder
from .estimator import SparseAutoencoder
from .exchange import load_saelens, load_sparsify
from .sources import IterableBatches, MemmapBatches, TensorBatches, make_source
from .state import TrainState
from .training import clip_gradients, fit_loop, lr_factor, sparsity_factor
from .transcoder import Transcoder
from .unmixing import UnmixingAutoencoder, extreme_pixels

__all__ = [
    "ConvSparseAutoencoder",
    "IterableBatches",
    "MemmapBatches",
    "SparseAutoencoder",
    "TensorBatches",
    "TrainConfig",
    "TrainState",
    "Transcoder",
    "UnmixingAutoencoder",
    "clip_gradients",
    "extreme_pixels",
    "fit_loop",
    "load_saelens",
    "load_sparsify",
    "lr_factor",
    "make_source",
    "sparsity_factor",
]
