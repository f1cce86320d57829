"""`Transcoder`: sparse codes of one activation that reconstruct another.

The SAE module and training loop with a different target: the codes of an
MLP's input are trained to reconstruct the MLP's output (optionally with a
linear skip term), as SAELens and sparsify train transcoders.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.utils import check_array

from ..base import check_tensor, torch_dtype
from ..metrics import fvu
from .estimator import SparseAutoencoder
from .sources import TensorBatches, widen

__all__ = ["Transcoder"]


class Transcoder(SparseAutoencoder):
    """Sparse transcoder: codes ``act(W_enc x + b_enc)`` reconstruct ``y``.

    ``y_hat = codes @ components_ + b`` (``+ x @ W_skip.T`` with a skip term).

    Trained like `SparseAutoencoder` (the same module, activations, loss
    terms and loop) with ``Y`` as the reconstruction target; with
    ``skip_connection=True`` the prediction adds a learned linear map of X,
    ``x @ W_skip.T``, and the codes explain what it leaves. The input scale
    (``normalize_input``) is set from Y and applied to X and Y alike.

    Parameters
    ----------
    n_components : int, default=None
        Number of latents; ``8 * n_features_in_`` when None.
    skip_connection : bool, default=False
        Add a linear skip term from X to Y (zero-initialised, trained).
    activation, k, alpha, max_iter, batch_size, learning_rate, lr_warmup, \
lr_decay, sparsity_warmup, dead_window, k_aux, aux_coef, normalize_input, \
b_pre_init, max_grad_norm, activation_params, random_state, device, dtype, \
autocast, log_every, checkpoint_dir, checkpoint_every, resume, callback, \
verbose, distributed, distributed_timeout, input_noise
        As for `SparseAutoencoder` (``b_pre_init`` sets the output bias from
        Y and the initial encoder offset from X; ``input_noise`` perturbs the
        scaled X seen by the encoder and the skip term, Y stays clean).

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_outputs_)
        Decoder rows: each latent's contribution to Y.
    n_outputs_ : int
        Width of Y.
    n_features_in_ : int
        Width of X.
    n_iter_, n_steps_, history_
        As for `SparseAutoencoder` (``fvu`` in the history is that of Y).

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode import Transcoder
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(512, 8).astype(np.float32)
    >>> Y = np.maximum(X @ rng.randn(8, 6), 0).astype(np.float32)
    >>> tc = Transcoder(32, k=4, max_iter=3, random_state=0).fit(X, Y)
    >>> tc.transform(X).shape, tc.predict(X).shape
    ((512, 32), (512, 6))
    """

    _parameter_constraints: dict = {**SparseAutoencoder._parameter_constraints,
                                    "skip_connection": ["boolean"]}

    def __init__(
        self, n_components=None, *, skip_connection=False, activation="topk",
        k=None, alpha=None, max_iter=None, batch_size=256, learning_rate=None,
        lr_warmup=0.01, lr_decay=0.2, sparsity_warmup=0.05, dead_window=None,
        k_aux=None, aux_coef=1 / 32, normalize_input=True,
        b_pre_init="geometric_median", max_grad_norm=1.0, activation_params=None,
        random_state=None, device="auto", dtype=None, autocast=None, log_every=50,
        checkpoint_dir=None, checkpoint_every=None, resume="auto", callback=None,
        verbose=False, distributed="auto", distributed_timeout=300.0,
        input_noise=0.0,
    ):
        super().__init__(
            n_components, activation=activation, k=k, alpha=alpha,
            max_iter=max_iter, batch_size=batch_size, learning_rate=learning_rate,
            lr_warmup=lr_warmup, lr_decay=lr_decay, sparsity_warmup=sparsity_warmup,
            dead_window=dead_window, k_aux=k_aux, aux_coef=aux_coef,
            normalize_input=normalize_input, b_pre_init=b_pre_init,
            max_grad_norm=max_grad_norm, activation_params=activation_params,
            random_state=random_state, device=device, dtype=dtype,
            autocast=autocast, log_every=log_every, checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every, resume=resume, callback=callback,
            verbose=verbose, distributed=distributed,
            distributed_timeout=distributed_timeout, input_noise=input_noise)
        self.skip_connection = skip_connection

    # ---------------------------------------------------------------- data
    def _targets(self, Y: Any, Xt: torch.Tensor, reset: bool) -> torch.Tensor:
        """``Y`` as a 2-D finite tensor beside ``Xt`` (same rows, dtype, device)."""
        if Y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but "
                             "the target y is None: fit(X, y) with y the outputs "
                             "to reconstruct.")
        if isinstance(Y, torch.Tensor):
            Yt = check_tensor(Y, "Y")
            if not Yt.is_floating_point():
                raise TypeError(f"Y must be a real floating tensor, got {Yt.dtype}.")
        else:
            Yt = torch.as_tensor(check_array(Y, ensure_2d=False, dtype=[
                np.float64, np.float32], input_name="Y"))
        if Yt.ndim not in (1, 2):
            raise ValueError(f"Y must be 1-D or 2-D, got shape {tuple(Yt.shape)}.")
        if not bool(torch.isfinite(Yt).all()):
            raise ValueError("Input Y contains NaN or infinity.")
        if reset:
            self._y_1d = Yt.ndim == 1
        Yt = Yt.reshape(Yt.shape[0], -1)
        if Yt.shape[0] != Xt.shape[0]:
            raise ValueError(f"X has {Xt.shape[0]} samples but Y has "
                             f"{Yt.shape[0]}; they must be paired row by row.")
        if reset:
            self.n_outputs_ = Yt.shape[1]
        elif Yt.shape[1] != self.n_outputs_:
            raise ValueError(f"Y has {Yt.shape[1]} columns, but {type(self).__name__}"
                             f" is expecting {self.n_outputs_}.")
        return Yt.to(device=Xt.device, dtype=Xt.dtype)

    def _source(self, X: Any, Y: Any, *, reset: bool) -> TensorBatches:
        Xt, _ = self._validate_input(X, reset=reset)
        XY = torch.cat([Xt, self._targets(Y, Xt, reset)], 1)
        if self.dtype is not None:
            XY = XY.to(torch_dtype(self.dtype))
        src = TensorBatches(XY, self.batch_size)
        widen(src, allowed=self.dtype is None, first_col=self.n_features_in_)
        if reset and self.normalize_input:
            self._check_scales(XY)
        return src

    def _check_scales(self, XY: torch.Tensor) -> None:
        """Refuse X so much larger than Y that Y's input scale overflows it."""
        d = self.n_features_in_
        rms = [float(torch.linalg.vector_norm(part, dtype=torch.float64)
                     / max(1, part.shape[0]) ** 0.5) for part in (XY[:, :d], XY[:, d:])]
        limit = 1e8 if XY.dtype != torch.float64 else 1e100
        if rms[1] > 0 and rms[0] > limit * rms[1]:
            raise ValueError(
                f"X's rows are {rms[0] / rms[1]:.3g} times larger than y's (RMS norm "
                f"{rms[0]:.3g} vs {rms[1]:.3g}); y sets the input scale, so X would "
                "overflow in training: rescale X (or pass normalize_input=False).")

    def _module_options(self) -> dict:
        return {"n_outputs": self.n_outputs_,
                "skip_connection": bool(self.skip_connection)}

    # ------------------------------------------------------------- training
    def fit(self, X: Any, y: Any = None) -> Transcoder:
        """Train from scratch for ``max_iter`` passes over the pairs (X, Y).

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Inputs (e.g. an MLP's input activations).
        y : array-like or torch.Tensor of shape (n_samples, n_outputs)
            Targets Y, paired with X row by row (e.g. the MLP's output).

        Returns
        -------
        self
        """
        return self._train(X, y, partial=False)

    def partial_fit(self, X: Any, y: Any = None) -> Transcoder:
        """One more pass over (X, Y) (the first call initialises from them).

        Returns
        -------
        self
        """
        return self._train(X, y, partial=True)

    # ------------------------------------------------------------ inference
    def predict(self, X: Any) -> np.ndarray | torch.Tensor:
        """The reconstruction of Y from X: decoded codes plus the skip term.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)

        Returns
        -------
        Y_pred : ndarray of shape (n_samples, n_outputs_)
            A tensor on X's device when X is a tensor; 1-D if Y was.
        """
        self._check_fitted()
        Xt, as_tensor = self._validate_input(X, reset=False)
        out = self._reconstruct(Xt)
        if getattr(self, "_y_1d", False):
            out = out[:, 0]
        return self._to_output(out, as_tensor, X if as_tensor else None)

    def score(self, X: Any, y: Any = None) -> float:
        """Negative fraction of the variance of y unexplained, ``-fvu(y, predict(X))``.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
        y : array-like or torch.Tensor of shape (n_samples, n_outputs)

        Returns
        -------
        float
            Higher is better, 0 is perfect.
        """
        self._check_fitted()
        Xt, _ = self._validate_input(X, reset=False)
        Yt = self._targets(y, Xt, reset=False)
        return -fvu(Yt, torch.as_tensor(self.predict(Xt)).reshape(Yt.shape))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
