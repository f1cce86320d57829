"""`SparseOvercompleteVectors`: sparse overcomplete word vectors (Faruqui et al. 2015).

Minimises the method-A objective

    sum_i ||x_i - D a_i||^2 + lambda ||a_i||_1 + tau ||D||_F^2

with the paper's optimiser (AdaGrad on ``D``, AdaGrad regularised dual
averaging on each word's code), batched over words; the numerics are in
`sparsecode.words.rda`. ``nonnegative`` codes and method B's binarised
vectors follow the public code; ``positive_dict`` adds ``D >= 0``. Why the
batching, scale and initialisation are as they are: docs/design.md, section 5.

Numerics: the scale is computed without overflow (`sparsecode.base.safe_rms`).
Float32 data whose squares float32 cannot hold (values beyond
``sqrt(finfo.max / (16 * n_features))`` or a root-mean-square entry below
``2**-59``) is fitted in float64, with float64 attributes; ``transform``
computes in float64 whenever the attributes are float64 or X's squares would
overflow, and returns X's dtype. Float64 data beyond that range raises
``ValueError``, and so does training that diverges (``learning_rate``).
"""

from __future__ import annotations

import math
import time
from numbers import Integral, Real
from typing import Any

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from .._utils import make_generator
from ..base import (
    BaseSparseEstimator,
    DeviceOption,
    DivergenceError,
    finite,
    safe_rms,
    torch_dtype,
)
from ..dictionary.coding import encode_chunks, warn_not_converged
from .rda import init_atoms, lasso_codes, rda_codes, rda_epoch

__all__ = ["SparseOvercompleteVectors"]

_AUTO_ALPHA = 0.2  # default lambda = this * mean ||x||^2 * sqrt(50 / n_features)


def _target_rms(n_features: int) -> float:
    """The rms entry of X inside the optimiser: ``sqrt(max(d, 50)) / 50``."""
    return math.sqrt(max(n_features, 50)) / 50.0


def _squares_fit(X: torch.Tensor, rms: float | None = None) -> bool:
    """Whether X's squares (and those of its rms entry) fit X's dtype."""
    limit = math.sqrt(torch.finfo(X.dtype).max / (16 * X.shape[1]))
    if float(torch.linalg.vector_norm(X, ord=math.inf)) > limit:
        return False
    return rms is None or rms == 0 or rms > math.sqrt(torch.finfo(X.dtype).tiny) * 2**4


class SparseOvercompleteVectors(BaseSparseEstimator):
    """Sparse overcomplete word vectors (Faruqui et al. 2015, methods A and B).

    Learns a dictionary ``D`` (``components_``) and sparse codes of the
    training words by minimising ``sum_i ||x_i - D a_i||^2 + alpha ||a_i||_1 +
    tau ||D||^2`` with the paper's AdaGrad / AdaGrad-RDA optimiser, batched
    over words on torch (see the module docstring for the details).

    Parameters
    ----------
    n_components : int, default=None
        Number of atoms ``K``; ``10 * n_features`` when None (the paper).
    alpha : float, default=None
        The L1 penalty ``lambda`` (units of ``||x||^2``). None:
        ``0.2 * mean_i ||x_i||^2 * sqrt(50 / n_features)`` (about 90% zeros on
        GloVe-50d; the code gradients are correlations in ``n_features``
        dimensions, hence the square root); the value used is ``alpha_``.
    tau : float, default=1e-5
        Penalty on ``||D||_F^2``.
    nonnegative : bool, default=False
        Non-negative codes: the paper's non-negative variant as its public
        code (which produced the paper's numbers) runs it, constraining the
        codes only (see the module docstring and ``positive_dict``).
    positive_dict : bool, default=False
        Also constrain ``D >= 0`` (the paper's Eq. 3 read literally; Hoyer's
        non-negative sparse coding). Reconstructions are then ``>= 0``, so
        the negative entries of mixed-sign embeddings are lost.
    binarize : bool, default=False
        Method B: ``embedding_`` and ``transform`` return ``1[a > 0]``;
        requires ``nonnegative``.
    max_iter : int, default=20
        Epochs (passes over the words); the paper runs at least 20.
    batch_size : int, default=4096
        Words per batch.
    learning_rate : float, default=0.05
        AdaGrad rate ``eta`` of codes and dictionary (the paper's 0.05).
    tol : float, default=1e-4
        Stop when the epoch objective changes by less than ``tol`` times its
        value (0 disables).
    transform_algorithm : {"fista", "lasso_lars"}, default="fista"
        Solver of ``transform``; both find the exact minimiser (see Notes).
        ``"fista"``: batched FISTA on unit-norm atoms, finished by an exact
        solve on the support it finds, accepted where the optimality
        conditions hold (`sparsecode.words.rda.lasso_codes`; several times faster).
        ``"lasso_lars"``: the batched lasso homotopy.
    transform_max_iter : int, default=1000
        FISTA iterations, or homotopy breakpoints, at most.
    random_state : int, RandomState instance or None, default=None
    device : str, default="auto"
    verbose : bool or int, default=False

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The dictionary ``D^T`` (atoms as rows).
    codes_ : ndarray of shape (n_words, n_components)
        Codes of the training words learned by ``fit`` (the paper's vectors).
    embedding_ : ndarray of shape (n_words, n_components)
        ``codes_``, binarised when ``binarize``.
    alpha_ : float
        The L1 penalty used.
    objective_ : float
        Final objective divided by the number of words.
    n_iter_ : int
        Epochs run.
    history_ : list of dict
        Per epoch: ``objective`` (running objective over the epoch, divided
        by the number of words), ``reconstruction``, ``l1``, ``sparsity``
        (of the codes used) and ``time``.

    Notes
    -----
    ``transform`` encodes new vectors against ``components_`` with each row's
    exact minimiser of the fit's per-word objective ``||x - a D||^2 +
    alpha ||a||_1 = 2 * (0.5 ||x - a D||^2 + (alpha / 2) ||a||_1)``, i.e.
    `sparse_encode` with ``alpha / 2``. ``fit_transform(X)`` is
    ``fit(X).transform(X)``; the codes of the online optimiser (20 RDA
    updates per word, not the exact minimiser for the final ``D``) are
    ``codes_``. The fitted estimator keeps the two
    RDA accumulators (each the size of ``codes_``) so that `partial_fit` can
    continue training.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode import SparseOvercompleteVectors
    >>> X = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    >>> sov = SparseOvercompleteVectors(16, max_iter=5, random_state=0, device="cpu")
    >>> codes = sov.fit(X).transform(X)
    >>> codes.shape, sov.components_.shape, bool((codes == 0).mean() > 0.5)
    ((50, 16), (16, 8), True)
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "alpha": [Interval(Real, 0, None, closed="left"), None],
        "tau": [Interval(Real, 0, None, closed="left")],
        "nonnegative": ["boolean"],
        "positive_dict": ["boolean"],
        "binarize": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "transform_algorithm": [StrOptions({"lasso_lars", "fista"})],
        "transform_max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [DeviceOption()],
        "verbose": ["verbose"],
    }

    def __init__(self, n_components=None, *, alpha=None, tau=1e-5, nonnegative=False,
                 positive_dict=False, binarize=False, max_iter=20, batch_size=4096,
                 learning_rate=0.05, tol=1e-4, transform_algorithm="fista",
                 transform_max_iter=1000, random_state=None, device="auto",
                 verbose=False):
        self.n_components = n_components
        self.alpha = alpha
        self.tau = tau
        self.nonnegative = nonnegative
        self.positive_dict = positive_dict
        self.binarize = binarize
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.tol = tol
        self.transform_algorithm = transform_algorithm
        self.transform_max_iter = transform_max_iter
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ----------------------------------------------------------------- state
    def _max_abs_input(self, X: torch.Tensor) -> float | None:
        # float32 data beyond the default range is fitted in float64 (`_start`)
        return None if X.dtype != torch.float64 else super()._max_abs_input(X)

    def _memory_needed(self, n_samples: int, n_features: int) -> tuple[float, str]:
        K = self.n_components or 10 * n_features  # D and S; G, H, codes (twice)
        return 2.0 * K * n_features + 4.0 * n_samples * K, "n_components"

    def _start(self, X: torch.Tensor) -> torch.Tensor:
        """Reset: scale, penalty, word order, initial atoms, accumulators.

        Returns X in the fit's dtype (see the module docstring)."""
        if self.binarize and not self.nonnegative:
            raise ValueError("binarize=True (method B) requires nonnegative=True.")
        n, d = X.shape
        K = self.n_components or 10 * d
        rms = safe_rms(X)
        if not _squares_fit(X, rms):
            if X.dtype == torch.float64:
                raise ValueError(
                    f"X has a root-mean-square entry of {rms:.3g}, too small for "
                    "its squares to be finite in float64: rescale X.")
            X = X.double()
        mean_sq = d * rms * rms  # mean_i ||x_i||^2
        self._scale = rms / _target_rms(d) or 1.0
        auto = _AUTO_ALPHA * mean_sq * math.sqrt(50.0 / d)
        self.alpha_ = auto if self.alpha is None else float(self.alpha)
        self._lam = self.alpha_ / self._scale / self._scale
        self._gen = make_generator(self.random_state, X.device)
        self._perm = torch.randperm(n, generator=self._gen, device=X.device)
        self._t_V = init_atoms(self._internal(X), K, 0.01 * _target_rms(d),
                               self._gen, self.positive_dict)
        self._t_S = X.new_zeros(K, d)
        self._t_G, self._t_H = X.new_zeros(n, K), X.new_zeros(n, K)
        self._t, self.history_, self._t0 = 0, [], time.perf_counter()
        return X

    def _per_word(self, value: float, n: int) -> float:
        """An internal sum over ``n`` words, per word in the units of X**2."""
        return value / n * self._scale * self._scale  # (no overflow in scale**2)

    def _internal(self, X: torch.Tensor) -> torch.Tensor:
        """Training rows in the fixed visiting order, in the optimiser's scale."""
        return X[self._perm] / self._scale

    def _epoch(self, Xi: torch.Tensor) -> dict:
        """One pass over the words; returns the epoch's history entry."""
        V, n = self._t_V, Xi.shape[0]
        sums = rda_epoch(Xi, V, self._t_S, self._t_G, self._t_H, self._t,
                         lam=self._lam, eta=self.learning_rate, tau=self.tau,
                         batch_size=self.batch_size, nonnegative=self.nonnegative,
                         positive_dict=self.positive_dict, gen=self._gen)
        self._t += 1
        sq, l1, zeros = sums.tolist()
        if not (math.isfinite(sq + l1) and finite(V)):
            raise DivergenceError(
                f"SparseOvercompleteVectors training diverged to NaN or infinity at "
                f"epoch {self._t}: reduce learning_rate={self.learning_rate!r}.")
        obj = self._per_word(sq + self._lam * l1 + self.tau * float((V * V).sum()), n)
        entry = {"epoch": self._t, "objective": obj,
                 "reconstruction": self._per_word(sq, n),
                 "l1": l1 / n, "sparsity": zeros / (V.shape[0] * n),
                 "time": time.perf_counter() - self._t0}
        self.history_.append(entry)
        if self.verbose:
            print(f"epoch {self._t}: objective {obj:.6g}, "
                  f"sparsity {entry['sparsity']:.3f}")
        return entry

    def _converged(self) -> bool:
        if self.tol == 0 or len(self.history_) < 3:
            return False
        prev, cur = self.history_[-2]["objective"], self.history_[-1]["objective"]
        return abs(prev - cur) <= self.tol * abs(cur)

    def _finish(self, Xi: torch.Tensor) -> None:
        """Final codes (training order), fitted attributes, exact objective."""
        A = rda_codes(self._t_G, self._t_H, self._t, self._lam, self.learning_rate,
                      self.nonnegative)
        V, n = self._t_V, Xi.shape[0]
        resid = torch.addmm(Xi, A, V, alpha=-1)
        obj = float((resid * resid).sum()) + self._lam * float(A.abs().sum())
        self.objective_ = self._per_word(obj + self.tau * float((V * V).sum()), n)
        codes = torch.empty_like(A)
        codes[self._perm] = A
        del A, resid
        self.codes_ = codes.cpu().numpy()
        self.embedding_ = ((self.codes_ > 0).astype(self.codes_.dtype)
                           if self.binarize else self.codes_)
        self.components_ = (V * self._scale).cpu().numpy()
        self.n_iter_ = self._t

    # ------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any = None) -> SparseOvercompleteVectors:
        """Learn the dictionary and the codes of the rows of ``X``.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_words, n_features)
        y : ignored

        Returns
        -------
        self
        """
        Xt, _ = self._begin(X, reset=True)
        Xi = self._internal(self._start(Xt))
        for _ in range(self.max_iter):
            self._epoch(Xi)
            if self._converged():
                break
        self._finish(Xi)
        return self

    def partial_fit(self, X: Any, y: Any = None) -> SparseOvercompleteVectors:
        """One more epoch over the same words (the first call initialises).

        The codes are per word, so every call must pass the same rows in the
        same order as the first.

        Returns
        -------
        self
        """
        first = not hasattr(self, "_t_G")
        Xt, _ = self._begin(X, reset=first)
        if first:
            Xt = self._start(Xt)
        elif Xt.shape[0] != self._t_G.shape[0]:
            raise ValueError(
                f"partial_fit continues training on the same {self._t_G.shape[0]} "
                f"words; got {Xt.shape[0]} rows."
            )
        Xi = self._internal(Xt.to(self._t_V.dtype))
        self._epoch(Xi)
        self._finish(Xi)
        return self

    def _encode(self, X: torch.Tensor) -> torch.Tensor:
        # in float64 for float64 attributes or squares X's dtype cannot hold;
        # the codes are returned in X's dtype
        dt = torch.promote_types(X.dtype, torch_dtype(self.components_.dtype))
        dt = dt if _squares_fit(X) else torch.float64
        Xc, V = X.to(dt), self._tensor(self.components_, X.device, dt)
        if self.transform_algorithm == "lasso_lars":
            return encode_chunks(Xc, V, algorithm="lasso_lars", alpha=self.alpha_ / 2,
                                 max_iter=self.transform_max_iter,
                                 positive=self.nonnegative).to(X.dtype)
        res = lasso_codes(Xc, V, self.alpha_, positive=self.nonnegative,
                          max_iter=self.transform_max_iter)
        warn_not_converged(res, "fista")
        return res.codes.to(X.dtype)

    def _transform_tensor(self, X: torch.Tensor) -> torch.Tensor:
        # each row minimises ||x - a D||^2 + alpha_ ||a||_1 (a >= 0 when
        # nonnegative); binarised when binarize
        codes = self._encode(X)
        return (codes > 0).to(codes.dtype) if self.binarize else codes

    def _inverse_transform_tensor(self, codes: torch.Tensor) -> torch.Tensor:
        # codes @ components_ (binary codes are not rescaled: use codes_)
        dt = torch.promote_types(codes.dtype, torch_dtype(self.components_.dtype))
        V = self._tensor(self.components_, codes.device, dt)
        return (codes.to(dt) @ V).to(codes.dtype)

    def score(self, X: Any, y: Any = None) -> float:
        """Negative mean per-word objective of ``transform``'s (real) codes.

        ``-mean_i(||x_i - a_i D||^2 + alpha_ ||a_i||_1)``; the dictionary term
        is constant given ``D`` and left out. Higher is better.

        Returns
        -------
        float
        """
        self._check_fitted()
        Xt, _ = self._validate_input(X, reset=False)
        Xt = Xt.to(torch.promote_types(Xt.dtype, torch_dtype(self.components_.dtype)))
        codes = self._encode(Xt)
        V = self._tensor(self.components_, Xt.device, Xt.dtype)
        resid = torch.addmm(Xt, codes, V, alpha=-1)
        per_word = (resid * resid).sum(1) + self.alpha_ * codes.abs().sum(1)
        return -float(per_word.mean())

