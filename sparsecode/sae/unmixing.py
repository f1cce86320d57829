"""`UnmixingAutoencoder`: linear spectral unmixing by an autoencoder (EndNet-style).

A `SparseAutoencoder` with the ``simplex`` activation (`sparsecode.nn.simplex`):
abundances are non-negative and sum to one, decoder rows (endmembers) are
clamped non-negative after every step and carry the data's scale (no unit
norm, no input normalisation, no decoder bias: ``x_hat = a E``), and the loss
adds the mean spectral angle (the ``sad`` term of `sparsecode.nn.losses`,
weighted by ``sad_weight``) to the squared error. It trains on the shared loop
(`sparsecode.sae.fit_loop`). Endmembers start at extreme pixels found by the
automatic target generation process (ATGP: each next pixel is the one
farthest from the span of those already chosen), the encoder at their
pseudo-inverse, so training starts from a geometric unmixing.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ..base import DeviceOption
from .estimator import SparseAutoencoder

__all__ = ["UnmixingAutoencoder", "extreme_pixels"]


def extreme_pixels(X: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of ``n`` extreme rows of ``X`` (ATGP, Ren & Chang 2003).

    The first is the row of largest norm; each next one has the largest
    residual norm after projection onto the span of those already chosen. A
    classical endmember initialisation for linearly mixed pixels.

    Parameters
    ----------
    X : torch.Tensor of shape (n_pixels, n_bands)
    n : int
        Number of rows to pick (rows may repeat when ``X`` has rank < n).

    Returns
    -------
    torch.Tensor of shape (n,), dtype long

    Examples
    --------
    >>> import torch
    >>> from sparsecode.sae.unmixing import extreme_pixels
    >>> E = torch.eye(3, dtype=torch.float64)
    >>> A = torch.tensor([[.2, .3, .5], [0, 1, 0], [.4, .4, .2], [1, 0, 0],
    ...                   [0, 0, 1]], dtype=torch.float64)
    >>> sorted(extreme_pixels(A @ E, 3).tolist())
    [1, 3, 4]
    """
    X = X.double()
    idx = [int(torch.linalg.vector_norm(X, dim=1).argmax())]
    for _ in range(n - 1):
        U = X[idx]
        resid = X - (X @ torch.linalg.pinv(U)) @ U
        idx.append(int(torch.linalg.vector_norm(resid, dim=1).argmax()))
    return torch.tensor(idx, dtype=torch.long, device=X.device)


class UnmixingAutoencoder(SparseAutoencoder):
    """Autoencoder for linear spectral unmixing (after EndNet, Ozkan et al. 2018).

    ``abundances = simplex(W_enc x + b_enc)`` (``ReLU`` then rows rescaled to
    sum to one) and ``x_hat = abundances @ endmembers_``, with non-negative
    endmembers; trained on ``||x - x_hat||^2 + sad_weight * SAD(x, x_hat)``.

    Parameters
    ----------
    n_components : int, default=3
        Number of endmembers.
    sad_weight : float, default=1.0
        Weight of the mean spectral angle (radians) in the loss.
    max_iter : int, default=None
        Passes over X; None: about 2000 optimiser steps.
    batch_size : int, default=256
    learning_rate : float, default=5e-3
        Adam learning rate (decayed linearly to 0 over the last
        ``lr_decay`` of the steps).
    lr_decay : float, default=0.5
    max_grad_norm : float, default=None
        Gradient-norm clipping (None disables).
    random_state : int, RandomState instance or None, default=None
    device : str, default="auto"
    dtype : {"float32", "float64"}, default=None
    log_every : int, default=50
    callback : callable, default=None
    verbose : bool or int, default=False

    Attributes
    ----------
    endmembers_ : ndarray of shape (n_components, n_features)
        The decoder rows (non-negative spectra); same as ``components_``.
    n_iter_, n_steps_, history_, n_features_in_
        As in `SparseAutoencoder`.

    See Also
    --------
    sparsecode.metrics.unmixing.match_endmembers : score against the truth.
    sklearn.decomposition.NMF : unconstrained non-negative factorisation.

    References
    ----------
    S. Ozkan, B. Kaya and G. B. Akar, "EndNet: Sparse AutoEncoder Network for
    Endmember Extraction and Hyperspectral Unmixing", IEEE TGRS 57(1), 2019
    (arXiv:1708.01894, 2017).

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode.data.spectra import make_unmixing
    >>> from sparsecode.sae.unmixing import UnmixingAutoencoder
    >>> X, E, A = make_unmixing(600, 3, snr_db=40, random_state=0)
    >>> model = UnmixingAutoencoder(3, max_iter=20, random_state=0, device="cpu")
    >>> abundances = model.fit(X).abundances(X)
    >>> abundances.shape, bool(np.allclose(abundances.sum(1), 1))
    ((600, 3), True)
    >>> bool((model.endmembers_ >= 0).all())
    True
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "sad_weight": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "lr_decay": [Interval(Real, 0, 1, closed="both")],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "random_state": ["random_state"],
        "device": [DeviceOption()],
        "dtype": [StrOptions({"float32", "float64"}), type, None],
        "log_every": [Interval(Integral, 1, None, closed="left")],
        "callback": [callable, None],
        "verbose": ["verbose"],
    }

    # the SparseAutoencoder settings an unmixing autoencoder fixes
    activation = "simplex"
    activation_params = {"nonnegative_decoder": True, "learn_total": False}
    k = k_aux = dead_window = autocast = None
    aux_coef = input_noise = lr_warmup = sparsity_warmup = 0.0
    normalize_input = False
    b_pre_init = "zeros"
    checkpoint_dir = checkpoint_every = None
    resume = "auto"
    distributed = False
    distributed_timeout = 300.0

    def __init__(
        self, n_components=3, *, sad_weight=1.0, max_iter=None,
        batch_size=256, learning_rate=5e-3, lr_decay=0.5, max_grad_norm=None,
        random_state=None, device="auto", dtype=None, log_every=50, callback=None,
        verbose=False,
    ):
        self.n_components = n_components
        self.sad_weight = sad_weight
        self.max_iter = max_iter
        self.batch_size, self.learning_rate = batch_size, learning_rate
        self.lr_decay, self.max_grad_norm = lr_decay, max_grad_norm
        self.random_state = random_state
        self.device, self.dtype = device, dtype
        self.log_every, self.callback, self.verbose = log_every, callback, verbose

    @property
    def alpha(self) -> float:
        """The coefficient of the ``sad`` loss term: ``sad_weight``."""
        return self.sad_weight

    @property
    def endmembers_(self) -> np.ndarray:
        """The endmembers, ``components_`` (non-negative decoder rows)."""
        return self.components_

    def _build(self, source, comm):
        state, scale = super()._build(source, comm)
        model = state.model
        X = source.sample().to(device=model.W_dec.device, dtype=torch.float64)
        E = X[extreme_pixels(X, self.n_components)].clamp_min(0)
        with torch.no_grad():
            model.W_dec.copy_(E)
            model.W_enc.copy_(torch.linalg.pinv(E).T)
            model.b_enc.zero_()
            model.b_pre.zero_()
        model.b_pre.requires_grad_(False)  # x_hat = a E: no decoder bias
        return state, scale

    def abundances(self, X: Any) -> np.ndarray:
        """Abundances of the pixels X (rows summing to one): `transform`.

        Parameters
        ----------
        X : array-like of shape (n_pixels, n_features)

        Returns
        -------
        ndarray of shape (n_pixels, n_components)
        """
        return self.transform(X)
