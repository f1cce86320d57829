"""`MiniBatchDictionaryLearning`: Mairal et al. (2009) online dictionary learning."""

from __future__ import annotations

import math
import time
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from joblib import effective_n_jobs
from sklearn.utils._param_validation import Interval, StrOptions

from .._utils import GeneratorState, one_thread
from .._utils import make_generator as generator_from
from ..base import torch_dtype
from ._batch import max_abs_for_sums
from ._sparse_coder import (
    _FIT_ALGORITHMS,
    _TRANSFORM_CONSTRAINTS,
    _BaseSparseCoding,
    _copy_on_write,
    check_fit_algorithm,
)
from .coding import encode_chunks
from .update import online_beta, svd_init, update_dict

__all__ = ["MiniBatchDictionaryLearning"]

_SVD_MAX_ROWS = 50_000
_MAX_CHUNK = 65536  # rows per coding chunk within a step (at most)


class MiniBatchDictionaryLearning(_BaseSparseCoding):
    """Online dictionary learning, sklearn's `MiniBatchDictionaryLearning` on torch.

    Each step codes a mini-batch (exact batched lasso by default), updates the
    online statistics ``A = beta A + U^T U / batch_size`` and
    ``B = beta B + X^T U / batch_size`` with Mairal et al.'s forgetting factor,
    and makes one block-coordinate-descent pass over the atoms. Early stopping
    follows scikit-learn: after the first ``min(100, n_samples / batch_size)``
    steps, stop when the dictionary change ``||V_t - V_{t-1}||_F /
    n_components`` is ``<= tol`` or when an exponentially weighted average of
    the batch cost has not improved for ``max_no_improvement`` steps.

    Parameters
    ----------
    n_components : int, default=None
        Number of atoms; ``n_features`` when None.
    alpha : float, default=1.0
        Sparsity penalty.
    max_iter : int, default=1000
        Maximum number of passes over the data.
    fit_algorithm : {"lars", "cd", "fista", "ista"}, default="lars"
        Lasso solver used in fit ("lars" and "cd": exact batched homotopy).
    n_jobs : int, default=None
        Joblib workers over chunks of samples when coding: in ``fit``, each
        batch in ``n_jobs`` chunks; in ``transform``, chunks that do not
        depend on it (see `SparseCoder`).
    batch_size : int, default=256
    shuffle : bool, default=True
        Shuffle the samples before forming batches.
    dict_init : ndarray of shape (n_components, n_features), default=None
    transform_algorithm, transform_n_nonzero_coefs, transform_alpha, \
split_sign, positive_code, transform_max_iter
        See `SparseCoder`.
    verbose : bool or int, default=False
    random_state : int, RandomState instance or None, default=None
    positive_dict : bool, default=False
    callback : callable, default=None
        Called after every step with a dict of the loop's state.
    tol : float, default=1e-3
        Dictionary-change tolerance (0 disables).
    max_no_improvement : int, default=10
        Steps without EWA-cost improvement before stopping (None disables).
    device : str, default="auto"

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
    n_iter_ : int
        Passes over the data (``ceil(n_steps_ / steps_per_pass)``).
    n_steps_ : int
        Mini-batch steps run.
    n_features_in_ : int
    history_ : list of dict
        Per-step batch cost, L0 and time.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "fit_algorithm": [StrOptions(set(_FIT_ALGORITHMS))],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "dict_init": [None, np.ndarray],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "positive_dict": ["boolean"],
        "callback": [None, callable],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_no_improvement": [Interval(Integral, 0, None, closed="left"), None],
        **_TRANSFORM_CONSTRAINTS,
    }

    def __init__(
        self,
        n_components=None,
        *,
        alpha=1,
        max_iter=1_000,
        fit_algorithm="lars",
        n_jobs=None,
        batch_size=256,
        shuffle=True,
        dict_init=None,
        transform_algorithm="omp",
        transform_n_nonzero_coefs=None,
        transform_alpha=None,
        verbose=False,
        split_sign=False,
        random_state=None,
        positive_code=False,
        positive_dict=False,
        transform_max_iter=1000,
        callback=None,
        tol=1e-3,
        max_no_improvement=10,
        device="auto",
    ):
        self.n_components = n_components
        self.alpha = alpha
        self.max_iter = max_iter
        self.fit_algorithm = fit_algorithm
        self.n_jobs = n_jobs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.dict_init = dict_init
        self.transform_algorithm = transform_algorithm
        self.transform_n_nonzero_coefs = transform_n_nonzero_coefs
        self.transform_alpha = transform_alpha
        self.verbose = verbose
        self.split_sign = split_sign
        self.random_state = random_state
        self.positive_code = positive_code
        self.positive_dict = positive_dict
        self.transform_max_iter = transform_max_iter
        self.callback = callback
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.device = device

    def _dictionary(self):
        return self.components_

    def _max_abs_input(self, X: torch.Tensor) -> float:
        return max_abs_for_sums(X)  # (as DictionaryLearning's)

    def _memory_needed(self, n_samples: int, n_features: int) -> tuple[float, str]:
        m = self.n_components or n_features  # A, Gram; V, V_old, B; batch codes
        return 2.0 * m * m + 3.0 * m * n_features + 2.0 * min(
            self.batch_size, n_samples) * m, "n_components"

    # ------------------------------------------------------ save / resume
    def _resume_state(self) -> dict[str, Any]:
        """What `partial_fit` needs beyond the fitted attributes (for `save`)."""
        return {
            "A": self._A.cpu(), "B": self._B.cpu(),
            "generator": self._gen.get_state(),
            "generator_device": str(self._gen.device),
            "ewa_cost": self._ewa_cost, "ewa_cost_min": self._ewa_cost_min,
            "no_improvement": self._no_improvement,
        }

    def _restore_resume_state(
        self, state: dict[str, Any], device: torch.device
    ) -> None:
        """Inverse of `_resume_state` (called by `load` after the attributes)."""
        dtype = torch_dtype(self.components_.dtype)
        self._n_components = self.components_.shape[0]
        self._V = torch.as_tensor(self.components_, device=device).to(dtype).clone()
        self._A = torch.as_tensor(state["A"], device=device).to(dtype)
        self._B = torch.as_tensor(state["B"], device=device).to(dtype)
        self._gen = GeneratorState(state["generator_device"], torch.as_tensor(
            state["generator"], dtype=torch.uint8)).restore(device)
        self._ewa_cost, self._ewa_cost_min = state["ewa_cost"], state["ewa_cost_min"]
        self._no_improvement = state["no_improvement"]
        self._t0 = time.perf_counter() - (self.history_[-1]["time"]
                                          if self.history_ else 0.0)

    # ----------------------------------------------------------------- setup
    def _start(self, X: torch.Tensor) -> torch.Tensor:
        """Reset the state from ``X``: generator, dictionary, statistics."""
        check_fit_algorithm(self.fit_algorithm, self.positive_code)
        self._n_components = self.n_components or X.shape[1]
        self._gen = generator_from(self.random_state, self._device)
        if self.dict_init is not None:
            V = self._tensor(self.dict_init, X.device, X.dtype, "dict_init").clone()
            if V.shape != (self._n_components, X.shape[1]):
                raise ValueError(
                    f"dict_init must have shape {(self._n_components, X.shape[1])}, "
                    f"got {tuple(V.shape)}."
                )
        else:
            _, V = svd_init(X, self._n_components, _SVD_MAX_ROWS, self._gen,
                            need_codes=False)
        K, d = self._n_components, X.shape[1]
        self._A = X.new_zeros(K, K)
        self._B = X.new_zeros(d, K)
        self._ewa_cost, self._ewa_cost_min, self._no_improvement = None, None, 0
        self.n_steps_, self.history_ = 0, []
        self._t0 = time.perf_counter()
        return V.contiguous()

    # ------------------------------------------------------------------ step
    def _step(self, X: torch.Tensor, V: torch.Tensor) -> float:
        """One mini-batch step on ``X`` (in place on ``V``); returns the batch cost."""
        bs = X.shape[0]
        codes = encode_chunks(  # (n_jobs chunks per batch: n_jobs threads)
            X, V, n_jobs=self.n_jobs, algorithm=_FIT_ALGORITHMS[self.fit_algorithm],
            chunk_size=min(_MAX_CHUNK, -(-bs // effective_n_jobs(self.n_jobs))),
            alpha=self.alpha, max_iter=self.transform_max_iter,
            positive=self.positive_code,
        )
        resid = X - codes @ V
        cost = float(0.5 * (resid * resid).sum() + self.alpha * codes.abs().sum()) / bs
        beta = online_beta(self.n_steps_, bs)
        self._A.mul_(beta).add_(codes.T @ codes, alpha=1.0 / bs)
        self._B.mul_(beta).add_(X.T @ codes, alpha=1.0 / bs)
        update_dict(V, X, codes, self._gen, A=self._A, B=self._B,
                    positive=self.positive_dict)
        self.n_steps_ += 1
        self.history_.append({"step": self.n_steps_, "batch_cost": cost,
                              "l0": float((codes != 0).sum(1).float().mean()),
                              "time": time.perf_counter() - self._t0})
        return cost

    def _converged(self, cost, V, V_old, n_samples, bs, n_steps) -> bool:
        """scikit-learn's early-stopping rules (see the class docstring)."""
        step = self.n_steps_
        if self.verbose:
            print(f"Minibatch step {step}/{n_steps}: mean batch cost: {cost}")
        if step <= min(100, n_samples / bs):
            return False
        if self._ewa_cost is None:
            self._ewa_cost = cost
        else:
            a = min(bs / (n_samples + 1), 1)
            self._ewa_cost = self._ewa_cost * (1 - a) + cost * a
        diff = float(torch.linalg.vector_norm(V - V_old)) / self._n_components
        if self.tol > 0 and diff <= self.tol:
            return True
        if self._ewa_cost_min is None or self._ewa_cost < self._ewa_cost_min:
            self._no_improvement = 0
            self._ewa_cost_min = self._ewa_cost
        else:
            self._no_improvement += 1
        return (self.max_no_improvement is not None
                and self._no_improvement >= self.max_no_improvement)

    # ------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any = None) -> MiniBatchDictionaryLearning:
        """Learn the dictionary from ``X`` by passes of mini-batch steps.

        ``X`` is never copied as a whole: with ``shuffle`` each batch gathers
        its rows through a permutation of the row indices, so a
        `numpy.memmap` (also a read-only one) is read one batch at a time.
        Private memory: the dictionary statistics, one batch, the SVD
        initialisation on at most 50,000 rows, and 16 bytes per row of index
        permutations (README, "Memory bounds").

        Parameters
        ----------
        X : array-like, numpy.memmap or torch.Tensor of shape \
(n_samples, n_features)
        y : Ignored

        Returns
        -------
        self
        """
        Xt, _ = self._begin(_copy_on_write(X), reset=True)
        with one_thread(self._device):
            return self._fit(Xt)

    def _fit(self, Xt: torch.Tensor) -> MiniBatchDictionaryLearning:
        V = self._start(Xt)
        n = Xt.shape[0]
        bs = min(self.batch_size, n)
        perm = None  # the batches are rows perm[lo:lo + bs] (no shuffled copy of X)
        if self.shuffle:
            perm = torch.randperm(n, generator=self._gen, device=self._gen.device)
            perm = perm.to(Xt.device)
        per_pass = math.ceil(n / bs)
        n_steps = self.max_iter * per_pass
        V_old = V.clone()
        for i in range(n_steps):
            lo = (i % per_pass) * bs
            batch = Xt[lo:lo + bs] if perm is None else Xt.index_select(
                0, perm[lo:lo + bs])
            cost = self._step(batch, V)
            if self._converged(cost, V, V_old, n, batch.shape[0], n_steps):
                break
            if self.callback is not None:
                self.callback({"step": i, "batch_cost": cost, "dictionary": V,
                               "estimator": self})
            V_old.copy_(V)
        self.n_iter_ = int(math.ceil(self.n_steps_ / per_pass))
        self.components_ = V.detach().cpu().numpy().copy()
        self._V = V
        return self

    def partial_fit(self, X: Any, y: Any = None) -> MiniBatchDictionaryLearning:
        """One mini-batch step on ``X`` (the first call initialises from ``X``).

        With the same ``dict_init``, ``fit(X)`` with ``shuffle=False``,
        ``max_iter=1`` and no early stopping equals ``partial_fit`` on the
        consecutive batches of ``X``.

        Returns
        -------
        self
        """
        first = not hasattr(self, "components_")
        Xt, _ = self._begin(X, reset=first)
        with one_thread(self._device):
            V = self._start(Xt) if first else self._V
            self._step(Xt, V)
        self.n_iter_ = self.n_steps_
        self.components_ = V.detach().cpu().numpy().copy()
        self._V = V
        return self
