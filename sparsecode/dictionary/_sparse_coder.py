"""`SparseCoder` and the transform machinery shared with the learners."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ..base import BaseSparseEstimator, DeviceOption
from .coding import ALGORITHMS, check_algorithm, encode_chunks

__all__ = ["SparseCoder"]

_FIT_ALGORITHMS = {"lars": "lasso_lars", "cd": "lasso_cd", "fista": "fista",
                   "ista": "ista"}

_TRANSFORM_CONSTRAINTS: dict = {
    "transform_algorithm": [StrOptions(set(ALGORITHMS))],
    "transform_n_nonzero_coefs": [Interval(Integral, 1, None, closed="left"), None],
    "transform_alpha": [Interval(Real, 0, None, closed="left"), None],
    "split_sign": ["boolean"],
    "n_jobs": [Integral, None],
    "positive_code": ["boolean"],
    "transform_max_iter": [Interval(Integral, 0, None, closed="left")],
    "device": [DeviceOption()],
}


class _BaseSparseCoding(BaseSparseEstimator):
    """Transform / inverse_transform shared by the three estimators."""

    @property
    def _n_features_out(self) -> int:
        return self._dictionary().shape[0] * (2 if self.split_sign else 1)

    def _dictionary_tensor(self, like: torch.Tensor) -> torch.Tensor:
        return self._tensor(self._dictionary(), like.device, like.dtype)

    def _transform_alpha(self) -> float | None:
        if hasattr(self, "alpha") and self.transform_alpha is None:
            return self.alpha
        return self.transform_alpha

    def _encode(self, X: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        check_algorithm(self.transform_algorithm, self.positive_code,
                        "transform_algorithm")
        codes = encode_chunks(
            X, V, n_jobs=self.n_jobs, algorithm=self.transform_algorithm,
            alpha=self._transform_alpha(),
            n_nonzero_coefs=self.transform_n_nonzero_coefs,
            max_iter=self.transform_max_iter, positive=self.positive_code,
        )
        if self.split_sign:
            codes = torch.cat([codes.clamp_min(0), (-codes).clamp_min(0)], 1)
        return codes

    def _transform_tensor(self, X: torch.Tensor) -> torch.Tensor:
        return self._encode(X, self._dictionary_tensor(X))

    def _inverse_transform_tensor(self, codes: torch.Tensor) -> torch.Tensor:
        if self.split_sign:
            half = codes.shape[1] // 2
            codes = codes[:, :half] - codes[:, half:]
        return codes @ self._dictionary_tensor(codes)


class SparseCoder(_BaseSparseCoding):
    """Sparse coding against a fixed, precomputed dictionary.

    Same parameters and behaviour as `sklearn.decomposition.SparseCoder`,
    plus ``device``. Each row of ``transform(X)`` solves the problem chosen by
    ``transform_algorithm`` (see `sparsecode.sparse_encode`).

    Parameters
    ----------
    dictionary : ndarray or torch.Tensor of shape (n_components, n_features)
        The atoms, ideally normalised to unit norm.
    transform_algorithm : {"lasso_lars", "lasso_cd", "lars", "omp", "threshold", \
"fista", "ista"}, default="omp"
    transform_n_nonzero_coefs : int, default=None
        Nonzeros for ``omp``/``lars`` (default ``n_features / 10``).
    transform_alpha : float, default=None
        L1 penalty of the lasso algorithms, threshold of ``threshold``
        (default 1.0).
    split_sign : bool, default=False
        Return ``[max(code, 0), max(-code, 0)]`` side by side.
    n_jobs : int, default=None
        Joblib threads over chunks of samples.
    positive_code : bool, default=False
        Non-negative codes (not for omp/lars).
    transform_max_iter : int, default=1000
        Iteration bound of the iterative solvers.
    device : str, default="auto"
        Torch device; "auto" picks CUDA when available.

    Attributes
    ----------
    n_components_ : int
    n_features_in_ : int
    """

    _parameter_constraints: dict = {"dictionary": ["array-like"],
                                    **_TRANSFORM_CONSTRAINTS}

    def __init__(
        self,
        dictionary,
        *,
        transform_algorithm="omp",
        transform_n_nonzero_coefs=None,
        transform_alpha=None,
        split_sign=False,
        n_jobs=None,
        positive_code=False,
        transform_max_iter=1000,
        device="auto",
    ):
        self.dictionary = dictionary
        self.transform_algorithm = transform_algorithm
        self.transform_n_nonzero_coefs = transform_n_nonzero_coefs
        self.transform_alpha = transform_alpha
        self.split_sign = split_sign
        self.n_jobs = n_jobs
        self.positive_code = positive_code
        self.transform_max_iter = transform_max_iter
        self.device = device

    def _dictionary(self):
        d = self.dictionary
        if isinstance(d, torch.Tensor):
            return d.detach().cpu().numpy()
        return np.asarray(d)

    def _check_fitted(self) -> None:
        if not hasattr(self, "_device"):
            self._validate_params()
            self._setup_device()

    def fit(self, X: Any, y: Any = None) -> SparseCoder:
        """Validate the parameters and ``X`` against the dictionary; no learning.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        self
        """
        Xt, _ = self._begin(X, reset=True)
        D = self._dictionary()
        if D.ndim != 2 or Xt.shape[1] != D.shape[1]:
            raise ValueError(
                "Dictionary and X have different numbers of features: "
                f"dictionary.shape: {D.shape} X.shape: {tuple(Xt.shape)}"
            )
        self.n_components_ = D.shape[0]
        return self

    def transform(self, X: Any, y: Any = None) -> np.ndarray | torch.Tensor:
        """Encode ``X`` (see `_BaseSparseCoding.transform`)."""
        return super().transform(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


