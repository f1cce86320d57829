"""`SparseCoder` and the transform machinery shared with the learners."""

from __future__ import annotations

import mmap
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn import get_config
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
)

from ..base import BaseSparseEstimator, DeviceOption, check_tensor
from .coding import ALGORITHMS, check_algorithm, encode_chunks

__all__ = ["SparseCoder", "check_fit_algorithm"]

_FIT_ALGORITHMS = {"lars": "lasso_lars", "cd": "lasso_cd", "fista": "fista",
                   "ista": "ista"}



def check_fit_algorithm(fit_algorithm: str, positive_code: bool) -> str:
    """The solver behind a ``fit_algorithm`` name, refusing positive codes with
    "lars" as scikit-learn does (its check goes by the name)."""
    if positive_code and fit_algorithm == "lars":
        raise ValueError("Positive constraint not supported for 'lars' coding "
                         "method; use fit_algorithm='cd' (the same exact lasso "
                         "solver here).")
    return check_algorithm(_FIT_ALGORITHMS[fit_algorithm], positive_code)


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


def _copy_on_write(X: Any) -> Any:
    """A read-only C-contiguous `numpy.memmap` mapped again copy-on-write.

    The same file pages (no private memory until written), as a writable
    array that torch wraps without copying; writes would go to private
    pages, never to the file. Anything else is returned as it is.
    """
    if not isinstance(X, np.memmap) or X.flags.writeable or not X.flags.c_contiguous:
        return X
    buf = X.base
    while buf is not None and not isinstance(buf, mmap.mmap):
        buf = getattr(buf, "base", None)
    if buf is None or not isinstance(getattr(X, "filename", None), str):
        return X
    start = X.ctypes.data - np.frombuffer(buf, np.uint8).ctypes.data
    aligned = X.offset - X.offset % mmap.ALLOCATIONGRANULARITY
    return np.memmap(X.filename, dtype=X.dtype, mode="c", offset=aligned + start,
                     shape=X.shape)


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

    def transform(self, X: Any) -> np.ndarray | torch.Tensor:
        """Sparse codes of ``X`` (see the class docstring for how they are made).

        Rows are coded in chunks of bounded memory (`sparsecode.sparse_encode`);
        a `numpy.memmap`, also a read-only one, is read where it lies.

        Parameters
        ----------
        X : array-like, numpy.memmap or torch.Tensor of shape \
(n_samples, n_features)

        Returns
        -------
        codes : ndarray of shape (n_samples, n_features_out)
            A tensor on X's device when X is a tensor.
        """
        return super().transform(_copy_on_write(X))

    def _check_transform_params(self) -> None:
        """Validate the transform parameters (they may be set after ``fit``),
        as scikit-learn's `sparse_encode` does at every ``transform``."""
        if get_config()["skip_parameter_validation"]:
            return
        params = self.get_params(deep=False)
        constraints = {k: v for k, v in self._parameter_constraints.items()
                       if k in _TRANSFORM_CONSTRAINTS}
        validate_parameter_constraints(
            constraints, {k: params[k] for k in constraints},
            caller_name=type(self).__name__)

    def _transform_tensor(self, X: torch.Tensor) -> torch.Tensor:
        self._check_transform_params()
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
        Joblib workers over chunks of samples: threads, or the backend of
        `joblib.parallel_config` (loky, Dask, Ray); the codes do not depend
        on it (see `sparsecode.sparse_encode`).
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
            return check_tensor(d, "dictionary").cpu().numpy()
        return np.asarray(d)

    def _check_fitted(self) -> None:
        self._validate_params()  # (at every transform: no fit is needed)
        if not hasattr(self, "_device"):
            self._setup_device()

    def _checked_dictionary(self, n_features: int) -> np.ndarray:
        """The dictionary, checked as scikit-learn's `sparse_encode` checks it."""
        D = self._dictionary()
        if D.ndim != 2:
            raise ValueError(f"dictionary must be 2D, got shape {D.shape}.")
        if not np.isfinite(D).all():
            raise ValueError("Input dictionary contains NaN or infinity.")
        if n_features != D.shape[1]:
            raise ValueError(
                "Dictionary and X have different numbers of features: "
                f"dictionary.shape: {D.shape} X.shape: (n_samples, {n_features})"
            )
        return D

    def _transform_tensor(self, X: torch.Tensor) -> torch.Tensor:
        self._checked_dictionary(X.shape[1])
        return super()._transform_tensor(X)

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
        self.n_components_ = self._checked_dictionary(Xt.shape[1]).shape[0]
        return self

    def transform(self, X: Any, y: Any = None) -> np.ndarray | torch.Tensor:
        """Encode ``X`` (see `_BaseSparseCoding.transform`)."""
        return super().transform(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


