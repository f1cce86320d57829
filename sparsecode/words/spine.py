"""`SPINE`: sparse interpretable word embeddings (Subramanian et al. 2018).

A denoising autoencoder with a capped ReLU,
``h = clamp(W1 (x + noise) + b1, 0, 1)``, ``x_hat = W2 h + b2``, trained on
``MSE + ASL + PSL`` (all weights 1, as in the public code):

* ``MSE = mean over the batch and features of (x_hat - x)**2``;
* ``ASL = sum_j max(0, mean_batch(h_j) - rho*)**2 / H`` with
  ``rho* = 1 - sparsity``: the average activation of each hidden unit over
  the batch, as in the paper (the public code averages over the units of each
  example instead);
* ``PSL = sum h (1 - h) / (B H)``, pushing activations to 0 or 1.

The gradients are written out (`spine_gradients`, checked against autograd) and stepped
by torch's Adam (default) or the paper's SGD. ``transform`` encodes clean inputs. Inputs
are scaled to an rms entry of 0.7, so ``noise`` is relative to the data;
``components_``, ``inverse_transform`` and ``encoder_`` are in the units of X. Design
notes, and why SPINE keeps its own loop: docs/design.md, sections 1 and 6.

Numerics: the scale is computed without overflow (`sparsecode.base.safe_rms`). Float32
data whose scale is beyond ``2**±60`` (subnormal or near-overflow values), where float32
could not hold ``encoder_`` (units of 1/X) and ``components_`` (units of X), or with
values beyond ``sqrt(finfo.max / (16 * n_features))``, is fitted in float64 and its
attributes are float64 (`transform` then computes in float64 and returns X's dtype);
float64 data beyond ``2**±960``, or that range, raises ``ValueError``. Training that
diverges to NaN or infinity raises ``ValueError`` naming ``noise`` or ``learning_rate``.
"""

from __future__ import annotations

import math
import time
from numbers import Integral, Real
from typing import Any

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from .._utils import fused_optimizer, make_generator, one_thread
from ..base import (
    BaseSparseEstimator,
    DeviceOption,
    DivergenceError,
    finite,
    safe_rms,
    torch_dtype,
)

__all__ = ["SPINE", "spine_gradients", "spine_loss_terms", "spine_sgd_step"]

_TARGET_RMS = 0.7
_DEFAULT_LR = {"adam": 1e-3, "sgd": 0.1}
_MAX_LOG2_SCALE = {torch.float32: 60, torch.float64: 960}


def spine_loss_terms(h: torch.Tensor, x_hat: torch.Tensor, x: torch.Tensor,
                     rho_star: float) -> dict[str, torch.Tensor]:
    """SPINE's loss terms for one batch (differentiable).

    Parameters
    ----------
    h : torch.Tensor of shape (batch, n_components)
        Capped-ReLU activations.
    x_hat, x : torch.Tensor of shape (batch, n_features)
        Reconstruction and clean input.
    rho_star : float
        Target average activation, ``1 - sparsity``.

    Returns
    -------
    dict
        ``mse``, ``asl`` (per hidden unit, mean over the batch) and ``psl``.

    Examples
    --------
    >>> import torch
    >>> from sparsecode.words.spine import spine_loss_terms
    >>> h = torch.tensor([[0.0, 1.0], [1.0, 1.0]])  # unit means 0.5 and 1
    >>> terms = spine_loss_terms(h, torch.ones(2, 3), torch.zeros(2, 3), 0.5)
    >>> {k: v.item() for k, v in terms.items()}
    {'mse': 1.0, 'asl': 0.125, 'psl': 0.0}
    """
    excess = (h.mean(0) - rho_star).clamp_min(0)
    return {"mse": ((x_hat - x) ** 2).mean(),
            "asl": (excess * excess).sum() / h.shape[1],
            "psl": (h * (1 - h)).sum() / h.numel()}


def spine_gradients(params: list[torch.Tensor], x: torch.Tensor,
                    x_noisy: torch.Tensor, rho_star: float
                    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The three loss terms of one batch and the gradients of their sum.

    ``params`` is ``[W1 (H, d), b1 (H,), W2 (d, H), b2 (d,)]``; the gradients
    are those of `spine_loss_terms` (clamp passes gradient where
    ``0 <= z <= 1``, as autograd does), in the same order.

    Parameters
    ----------
    params : list of torch.Tensor
    x, x_noisy : torch.Tensor of shape (batch, d)
        Clean and noisy inputs.
    rho_star : float
        Target average activation.

    Returns
    -------
    terms : torch.Tensor of shape (3,)
        ``mse``, ``asl`` and ``psl``.
    grads : list of torch.Tensor

    Examples
    --------
    >>> import torch
    >>> from sparsecode.words.spine import spine_gradients, spine_loss_terms
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(8, 5, generator=g, dtype=torch.float64)
    >>> params = [torch.randn(s, generator=g, dtype=torch.float64)
    ...           for s in [(6, 5), (6,), (5, 6), (5,)]]
    >>> terms, grads = spine_gradients(params, x, x, 0.15)
    >>> W1, b1, W2, b2 = ps = [p.clone().requires_grad_() for p in params]
    >>> h = torch.addmm(b1, x, W1.T).clamp(0, 1)
    >>> sum(spine_loss_terms(h, torch.addmm(b2, h, W2.T), x, 0.15).values()).backward()
    >>> all(torch.allclose(a, p.grad) for a, p in zip(grads, ps))  # autograd's
    True
    """
    W1, b1, W2, b2 = params
    B, d = x.shape
    H = W1.shape[0]
    z = torch.addmm(b1, x_noisy, W1.T)
    h = z.clamp(0, 1)
    r = torch.addmm(b2, h, W2.T).sub_(x)
    excess = (h.mean(0) - rho_star).clamp_min_(0)
    terms = torch.stack([(r * r).mean(), (excess * excess).sum() / H,
                         (h * (1 - h)).mean()])
    d_out = r.mul_(2.0 / (B * d))
    dh = torch.addmm(excess.mul_(2.0 / (H * B)), d_out, W2)
    dh.add_(1 - 2 * h, alpha=1.0 / (B * H)).mul_((z >= 0) & (z <= 1))
    return terms, [dh.T @ x_noisy, dh.sum(0), d_out.T @ h, d_out.sum(0)]


def spine_sgd_step(params: list[torch.Tensor], x: torch.Tensor,
                   x_noisy: torch.Tensor, lr: float, rho_star: float) -> torch.Tensor:
    """One SGD step on ``MSE + ASL + PSL`` in place; returns the three terms.

    Parameters as in `spine_gradients`, plus the step size ``lr``; returns the
    ``terms`` of `spine_gradients` (before the step).

    Examples
    --------
    >>> import torch
    >>> from sparsecode.words.spine import spine_sgd_step
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(8, 5, generator=g, dtype=torch.float64)
    >>> params = [torch.randn(s, generator=g, dtype=torch.float64)
    ...           for s in [(6, 5), (6,), (5, 6), (5,)]]
    >>> losses = [spine_sgd_step(params, x, x, 0.1, 0.15).sum() for _ in range(50)]
    >>> bool(losses[-1] < losses[0] / 2)
    True
    """
    terms, grads = spine_gradients(params, x, x_noisy, rho_star)
    torch._foreach_add_(params, grads, alpha=-lr)
    return terms


def _optimizer(params: list[torch.Tensor], name: str, lr: float
               ) -> torch.optim.Optimizer:
    """torch's Adam (default betas and eps) or plain SGD over ``params``."""
    cls = torch.optim.Adam if name == "adam" else torch.optim.SGD
    return fused_optimizer(cls, params, lr=lr)


def _uniform(shape, bound, gen, like):
    u = torch.rand(shape, generator=gen, device=like.device, dtype=like.dtype)
    return u.mul_(2 * bound).sub_(bound)


class SPINE(BaseSparseEstimator):
    """SPINE word embeddings: a sparse denoising autoencoder (Subramanian et al.).

    Parameters
    ----------
    n_components : int, default=1000
        Hidden units (output dimensions).
    sparsity : float, default=0.85
        Target fraction of zeros: ASL caps each unit's average activation at
        ``rho* = 1 - sparsity`` (see the module docstring).
    noise : float, default=0.2
        Std of the Gaussian input noise, relative to an rms entry of 0.7
        (see the module docstring).
    max_iter : int, default=150
        Epochs (the paper runs 4000 of SGD; measured sparsity by epochs:
        docs/design.md, section 6).
    batch_size : int, default=64
    optimizer : {"adam", "sgd"}, default="adam"
        Adam, or the paper's plain SGD (see the module docstring).
    learning_rate : float, default=None
        Step size; None: 1e-3 for Adam, 0.1 (the paper's) for SGD.
    random_state : int, RandomState instance or None, default=None
    device : str, default="auto"
    verbose : bool or int, default=False

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Decoder rows (``x_hat = h @ components_ + decoder_bias_``).
    decoder_bias_ : ndarray of shape (n_features,)
    encoder_ : ndarray of shape (n_components, n_features)
        ``h = clamp(X @ encoder_.T + encoder_bias_, 0, 1)``.
    encoder_bias_ : ndarray of shape (n_components,)
    n_iter_ : int
    history_ : list of dict
        Per epoch: mean ``loss``, ``mse``, ``asl``, ``psl`` over the batches.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode import SPINE
    >>> X = np.random.default_rng(0).standard_normal((60, 10)).astype(np.float32)
    >>> H = SPINE(8, max_iter=5, random_state=0, device="cpu").fit_transform(X)
    >>> H.shape, bool(H.min() >= 0 and H.max() <= 1)
    ((60, 8), True)
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "sparsity": [Interval(Real, 0, 1, closed="both")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "optimizer": [StrOptions({"adam", "sgd"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), None],
        "random_state": ["random_state"],
        "device": [DeviceOption()],
        "verbose": ["verbose"],
    }

    def __init__(self, n_components=1000, *, sparsity=0.85, noise=0.2, max_iter=150,
                 batch_size=64, optimizer="adam", learning_rate=None, random_state=None,
                 device="auto", verbose=False):
        self.n_components = n_components
        self.sparsity = sparsity
        self.noise = noise
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _max_abs_input(self, X: torch.Tensor) -> float | None:
        # float32 data beyond the default range is fitted in float64 (`_start`)
        return None if X.dtype != torch.float64 else super()._max_abs_input(X)

    def _memory_needed(self, n_samples: int, n_features: int) -> tuple[float, str]:
        # both weight matrices with their gradients and Adam moments, and the
        # scaled, shuffled and noisy copies of X
        return 8.0 * self.n_components * n_features + 3.0 * n_samples * n_features, \
            "n_components"

    def _start(self, X: torch.Tensor) -> torch.Tensor:
        """Reset from ``X``; returns X in the fit's dtype (float64 when the
        scale is beyond float32's reach: see the module docstring)."""
        d, H = X.shape[1], self.n_components
        self._scale = safe_rms(X) / _TARGET_RMS or 1.0
        big = math.sqrt(torch.finfo(X.dtype).max / (16 * d))  # (float32 only)
        if (abs(math.log2(self._scale)) > _MAX_LOG2_SCALE[X.dtype]
                or float(torch.linalg.vector_norm(X, ord=math.inf)) > big):
            if X.dtype == torch.float64:
                raise ValueError(
                    f"X has a root-mean-square entry of "
                    f"{self._scale * _TARGET_RMS:.3g}, "
                    "too far from 1 for SPINE's encoder_ (in units of 1/X) and "
                    "components_ (units of X) to be finite in float64: rescale X.")
            X = X.double()
        self._gen = make_generator(self.random_state, X.device)
        a, b = 1 / math.sqrt(d), 1 / math.sqrt(H)  # torch.nn.Linear's init
        self._t_params = [_uniform((H, d), a, self._gen, X),
                          _uniform((H,), a, self._gen, X),
                          _uniform((d, H), b, self._gen, X),
                          _uniform((d,), b, self._gen, X)]
        lr = self.learning_rate or _DEFAULT_LR[self.optimizer]
        self._opt = _optimizer(self._t_params, self.optimizer, lr)
        self.n_iter_, self.history_, self._t0 = 0, [], time.perf_counter()
        return X

    def _check_finite(self, terms: list[float]) -> None:
        """``ValueError`` naming the likely cause when training diverged."""
        if all(map(math.isfinite, terms)) and all(map(finite, self._t_params)):
            return
        cause = (f"noise={self.noise!r} (relative to an rms entry of 0.7; use "
                 "values of order 0.1 to 1)" if self.noise > 100 else
                 f"learning_rate={self.learning_rate or _DEFAULT_LR[self.optimizer]!r}")
        raise DivergenceError(f"SPINE training diverged to NaN or infinity at epoch "
                         f"{self.n_iter_}: reduce {cause}.")

    def _step(self, x: torch.Tensor, x_noisy: torch.Tensor, rho: float) -> torch.Tensor:
        terms, grads = spine_gradients(self._t_params, x, x_noisy, rho)
        for param, grad in zip(self._t_params, grads, strict=True):
            param.grad = grad
        self._opt.step()
        return terms

    def _epoch(self, Xi: torch.Tensor) -> None:
        n, rho = Xi.shape[0], 1.0 - self.sparsity
        perm = torch.randperm(n, generator=self._gen, device=Xi.device)
        Xs = Xi[perm]
        noisy = torch.randn(Xs.shape, generator=self._gen, device=Xs.device,
                            dtype=Xs.dtype).mul_(self.noise).add_(Xs)
        sums, n_batches = Xi.new_zeros(3), 0
        for lo in range(0, n, self.batch_size):
            hi = min(lo + self.batch_size, n)
            sums += self._step(Xs[lo:hi], noisy[lo:hi], rho)
            n_batches += 1
        self.n_iter_ += 1
        mse, asl, psl = (sums / n_batches).tolist()
        self._check_finite([mse, asl, psl])
        self.history_.append({"epoch": self.n_iter_, "loss": mse + asl + psl,
                              "mse": mse, "asl": asl, "psl": psl,
                              "time": time.perf_counter() - self._t0})
        if self.verbose:
            print(f"epoch {self.n_iter_}: loss {mse + asl + psl:.5f} (mse {mse:.5f}, "
                  f"asl {asl:.5f}, psl {psl:.5f})")

    def _finish(self) -> None:
        W1, b1, W2, b2 = self._t_params
        s = self._scale
        self.encoder_ = (W1 / s).cpu().numpy()
        self.encoder_bias_ = b1.cpu().numpy().copy()
        self.components_ = (W2.T * s).cpu().numpy()
        self.decoder_bias_ = (b2 * s).cpu().numpy()

    def fit(self, X: Any, y: Any = None) -> SPINE:
        """Train the autoencoder on the rows of ``X`` for ``max_iter`` epochs.

        Returns
        -------
        self
        """
        Xt, _ = self._begin(X, reset=True)
        Xi = self._start(Xt) / self._scale
        with one_thread(Xi.device):
            for _ in range(self.max_iter):
                self._epoch(Xi)
        self._finish()
        return self

    def partial_fit(self, X: Any, y: Any = None) -> SPINE:
        """One epoch over ``X`` (the first call initialises, with X's scale).

        Returns
        -------
        self
        """
        first = not hasattr(self, "_t_params")
        Xt, _ = self._begin(X, reset=first)
        Xt = self._start(Xt) if first else Xt.to(self._t_params[0].dtype)
        with one_thread(Xt.device):
            self._epoch(Xt / self._scale)
        self._finish()
        return self

    def _encode(self, X: torch.Tensor) -> torch.Tensor:
        # in the wider of X's and the attributes' dtypes, returned in X's
        dt = torch.promote_types(X.dtype, torch_dtype(self.encoder_.dtype))
        W = self._tensor(self.encoder_, X.device, dt)
        b = self._tensor(self.encoder_bias_, X.device, dt)
        return torch.addmm(b, X.to(dt), W.T).clamp_(0, 1).to(X.dtype)

    def _transform_tensor(self, X: torch.Tensor) -> torch.Tensor:
        return self._encode(X)  # clean (un-noised) inputs, in [0, 1]

    def _decode(self, h: torch.Tensor) -> torch.Tensor:
        dt = torch.promote_types(h.dtype, torch_dtype(self.components_.dtype))
        V = self._tensor(self.components_, h.device, dt)
        b = self._tensor(self.decoder_bias_, h.device, dt)
        return torch.addmm(b, h.to(dt), V).to(h.dtype)

    def _inverse_transform_tensor(self, codes: torch.Tensor) -> torch.Tensor:
        return self._decode(codes)  # h @ components_ + decoder_bias_

    def score(self, X: Any, y: Any = None) -> float:
        """Negative training loss ``MSE + ASL + PSL`` on clean inputs.

        ``X`` is one batch (ASL averages each unit over all rows) and the
        MSE is in the internal scale (rms entry 0.7 for the training data).

        Returns
        -------
        float
        """
        self._check_fitted()
        Xt, _ = self._validate_input(X, reset=False)
        Xt = Xt.to(torch.promote_types(Xt.dtype, torch_dtype(self.encoder_.dtype)))
        h = self._encode(Xt)
        s = self._scale
        terms = spine_loss_terms(h, self._decode(h) / s, Xt / s, 1.0 - self.sparsity)
        return -float(sum(terms.values()))
