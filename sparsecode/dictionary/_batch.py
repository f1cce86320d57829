"""`DictionaryLearning`: batch alternating minimisation, as scikit-learn does it.

Numerics: the cost and ``X^T U`` sum squares over all of X in X's dtype, so
X is refused (``ValueError`` with the range) when ``max |x|`` exceeds
``sqrt(finfo.max / (16 * X.size))``; subnormal inputs give finite results.
"""

from __future__ import annotations

import math
import time
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from .._utils import make_generator as generator_from
from .._utils import one_thread
from ._sparse_coder import (
    _FIT_ALGORITHMS,
    _TRANSFORM_CONSTRAINTS,
    _BaseSparseCoding,
    check_fit_algorithm,
)
from .coding import encode_chunks
from .update import svd_init, update_dict

__all__ = ["DictionaryLearning", "max_abs_for_sums"]


def max_abs_for_sums(X: torch.Tensor) -> float:
    """The largest ``|x|`` whose squares, summed over all of X, fit X's dtype
    with a margin of 16 (the cost; ``X^T U`` of the dictionary update)."""
    return math.sqrt(torch.finfo(X.dtype).max / (16 * X.numel()))


def _cost(X, codes, V, alpha) -> float:
    return float(0.5 * ((X - codes @ V) ** 2).sum() + alpha * codes.abs().sum())


class DictionaryLearning(_BaseSparseCoding):
    """Dictionary learning: scikit-learn's `DictionaryLearning` on torch.

    Solves ``min_{U, V} 0.5 ||X - U V||_F^2 + alpha ||U||_{1,1}`` with
    ``||V_k||_2 <= 1`` by alternating a batched lasso over all samples (warm
    started) and one block-coordinate-descent pass over the atoms, stopping
    when the cost decrease falls below ``tol * cost``.

    Parameters
    ----------
    n_components : int, default=None
        Number of atoms; ``n_features`` when None.
    alpha : float, default=1.0
        Sparsity penalty.
    max_iter : int, default=1000
        Maximum number of alternations.
    tol : float, default=1e-8
        Relative cost decrease that stops the alternations.
    fit_algorithm : {"lars", "cd", "fista", "ista"}, default="lars"
        Lasso solver used in fit: "lars" and "cd" both give the exact lasso
        solution (batched homotopy); "fista"/"ista" are warm-started
        first-order solvers.
    transform_algorithm : str, default="omp"
        See `SparseCoder`.
    transform_n_nonzero_coefs, transform_alpha, split_sign, n_jobs, \
positive_code, transform_max_iter
        See `SparseCoder`.
    code_init : ndarray of shape (n_samples, n_components), default=None
    dict_init : ndarray of shape (n_components, n_features), default=None
    callback : callable, default=None
        Called every 5 iterations with a dict of the loop's local state.
    verbose : bool or int, default=False
    random_state : int, RandomState instance or None, default=None
        Seeds the resampling of unused atoms.
    positive_dict : bool, default=False
        Non-negative atoms.
    device : str, default="auto"
        Torch device, resolved in ``fit``.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
    error_ : list of float
        Cost after each iteration.
    n_iter_ : int
    n_features_in_ : int
    history_ : list of dict
        Per-iteration cost, L0 and time.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "fit_algorithm": [StrOptions(set(_FIT_ALGORITHMS))],
        "code_init": [np.ndarray, None],
        "dict_init": [np.ndarray, None],
        "callback": [callable, None],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "positive_dict": ["boolean"],
        **_TRANSFORM_CONSTRAINTS,
    }

    def __init__(
        self,
        n_components=None,
        *,
        alpha=1,
        max_iter=1000,
        tol=1e-8,
        fit_algorithm="lars",
        transform_algorithm="omp",
        transform_n_nonzero_coefs=None,
        transform_alpha=None,
        n_jobs=None,
        code_init=None,
        dict_init=None,
        callback=None,
        verbose=False,
        split_sign=False,
        random_state=None,
        positive_code=False,
        positive_dict=False,
        transform_max_iter=1000,
        device="auto",
    ):
        self.n_components = n_components
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.fit_algorithm = fit_algorithm
        self.transform_algorithm = transform_algorithm
        self.transform_n_nonzero_coefs = transform_n_nonzero_coefs
        self.transform_alpha = transform_alpha
        self.n_jobs = n_jobs
        self.code_init = code_init
        self.dict_init = dict_init
        self.callback = callback
        self.verbose = verbose
        self.split_sign = split_sign
        self.random_state = random_state
        self.positive_code = positive_code
        self.positive_dict = positive_dict
        self.transform_max_iter = transform_max_iter
        self.device = device

    def _dictionary(self):
        return self.components_

    def _max_abs_input(self, X: torch.Tensor) -> float:
        return max_abs_for_sums(X)

    def _memory_needed(self, n_samples: int, n_features: int) -> tuple[float, str]:
        m = self.n_components or n_features  # codes (twice), X V^T, Gram, V
        return 3.0 * n_samples * m + m * m + 2.0 * m * n_features, "n_components"

    def fit(self, X: Any, y: Any = None) -> DictionaryLearning:
        """Learn the dictionary from ``X`` (array or tensor (n_samples, n_features)).

        Returns
        -------
        self
        """
        self.fit_transform(X)
        return self

    def partial_fit(self, X: Any, y: Any = None) -> DictionaryLearning:
        """Run one more alternation on ``X`` from the current dictionary.

        The first call initialises like ``fit`` (SVD or ``dict_init``); later
        calls warm-start from ``components_``. ``max_iter`` calls of
        ``partial_fit`` on the same X reproduce ``fit`` without early stopping.
        """
        first = not hasattr(self, "components_")
        Xt, _ = self._begin(X, reset=first)
        if first:
            codes, V = self._init(Xt)
            self._gen = generator_from(self.random_state, self._device)
            self.n_iter_, self.error_, self.history_ = 0, [], []
        else:
            V = self._tensor(self.components_, Xt.device, Xt.dtype)
            codes = None
        with one_thread(self._device):
            self._iterate(Xt, V, codes, max_iter=1, check_tol=False)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray | torch.Tensor:
        """Fit and return the codes computed during fitting (last iteration)."""
        Xt, as_tensor = self._begin(X, reset=True)
        with one_thread(self._device):
            codes, V = self._init(Xt)
            self._gen = generator_from(self.random_state, self._device)
            self.n_iter_, self.error_, self.history_ = 0, [], []
            codes = self._iterate(Xt, V, codes, max_iter=self.max_iter,
                                  check_tol=True)
        codes = self._check_output(codes, "fit_transform")
        return self._to_output(codes, as_tensor, X if as_tensor else None)

    def _init(self, X: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        n_comp = self.n_components or X.shape[1]
        if self.code_init is not None and self.dict_init is not None:
            codes = self._tensor(self.code_init, X.device, X.dtype, "code_init")
            V = self._tensor(self.dict_init, X.device, X.dtype, "dict_init")
        else:
            codes, V = svd_init(X, n_comp)
        if V.shape != (n_comp, X.shape[1]):
            raise ValueError(
                f"dict_init must have shape {(n_comp, X.shape[1])}, got "
                f"{tuple(V.shape)}."
            )
        if codes.shape != (X.shape[0], n_comp):
            raise ValueError(
                f"code_init must have shape {(X.shape[0], n_comp)}, got "
                f"{tuple(codes.shape)}."
            )
        return codes, V.clone()

    def _iterate(self, X, V, codes, *, max_iter: int, check_tol: bool):
        algorithm = check_fit_algorithm(self.fit_algorithm, self.positive_code)
        t0 = time.perf_counter()
        for ii in range(max_iter):
            init = codes if algorithm in ("fista", "ista") else None
            codes = encode_chunks(
                X, V, init, n_jobs=self.n_jobs, algorithm=algorithm,
                alpha=self.alpha, max_iter=self.transform_max_iter,
                positive=self.positive_code,
            )
            update_dict(V, X, codes, self._gen, positive=self.positive_dict)
            cost = _cost(X, codes, V, self.alpha)
            self.error_.append(cost)
            self.n_iter_ += 1
            self.history_.append({"iter": self.n_iter_, "cost": cost,
                                  "l0": float((codes != 0).sum(1).float().mean()),
                                  "time": time.perf_counter() - t0})
            if self.verbose:
                print(f"[DictionaryLearning] iter {self.n_iter_}: cost {cost:.6g}")
            if check_tol and ii > 0:
                if self.error_[-2] - self.error_[-1] < self.tol * self.error_[-1]:
                    break
            if ii % 5 == 0 and self.callback is not None:
                self.callback({"ii": ii, "cost": cost, "dictionary": V, "code": codes,
                               "estimator": self})
        self.components_ = V.detach().cpu().numpy().copy()
        if codes is None:  # max_iter == 0 after a partial_fit
            codes = X.new_zeros(X.shape[0], V.shape[0])
        return codes
