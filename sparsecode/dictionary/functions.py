"""`dict_learning` and `dict_learning_online`: scikit-learn 1.9's functions."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ._batch import DictionaryLearning
from ._online import MiniBatchDictionaryLearning

__all__ = ["dict_learning", "dict_learning_online"]

Array = np.ndarray | torch.Tensor


@validate_params(
    {
        "X": ["array-like"],
        "method": [StrOptions({"lars", "cd"})],
        "return_n_iter": ["boolean"],
        "method_max_iter": [Interval(Integral, 0, None, closed="left")],
    },
    prefer_skip_nested_validation=False,
)
def dict_learning(
    X: Any,
    n_components: int,
    *,
    alpha: float,
    max_iter: int = 100,
    tol: float = 1e-8,
    method: str = "lars",
    n_jobs: int | None = None,
    dict_init: np.ndarray | None = None,
    code_init: np.ndarray | None = None,
    callback: Any = None,
    verbose: bool = False,
    random_state: Any = None,
    return_n_iter: bool = False,
    positive_dict: bool = False,
    positive_code: bool = False,
    method_max_iter: int = 1000,
    device: str = "auto",
) -> tuple:
    """Batch dictionary learning: `DictionaryLearning` as a function.

    Solves ``min_{U, V} 0.5 ||X - U V||_F^2 + alpha ||U||_{1,1}`` with unit-norm
    atoms, as `sklearn.decomposition.dict_learning` does (same parameters,
    defaults and return values, plus ``device``).

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
    n_components : int
        Number of atoms.
    alpha : float
        Sparsity penalty.
    max_iter : int, default=100
        Maximum number of alternations.
    tol : float, default=1e-8
        Relative cost decrease that stops the alternations.
    method : {"lars", "cd"}, default="lars"
        Lasso solver (both give the exact solution here: batched homotopy).
    n_jobs, dict_init, code_init, callback, verbose, random_state, \
positive_dict, positive_code
        See `DictionaryLearning`.
    return_n_iter : bool, default=False
        Also return the number of iterations.
    method_max_iter : int, default=1000
        Iteration bound of the lasso solver.
    device : str, default="auto"
        Torch device.

    Returns
    -------
    code : ndarray of shape (n_samples, n_components)
    dictionary : ndarray of shape (n_components, n_features)
    errors : list of float
        Cost after each iteration.
    n_iter : int
        Only when ``return_n_iter`` is True.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode.dictionary import dict_learning
    >>> X = np.random.RandomState(0).randn(30, 8)
    >>> U, V, errors = dict_learning(X, 5, alpha=0.5, random_state=0)
    >>> U.shape, V.shape, bool(errors[-1] <= errors[0])
    ((30, 5), (5, 8), True)
    """
    est = DictionaryLearning(
        n_components=n_components, alpha=alpha, max_iter=max_iter, tol=tol,
        fit_algorithm=method, n_jobs=n_jobs, dict_init=dict_init,
        code_init=code_init, callback=callback, verbose=verbose,
        random_state=random_state, positive_code=positive_code,
        positive_dict=positive_dict, transform_max_iter=method_max_iter,
        device=device,
    ).set_output(transform="default")
    code = est.fit_transform(X)
    if return_n_iter:
        return code, est.components_, est.error_, est.n_iter_
    return code, est.components_, est.error_


@validate_params(
    {
        "X": ["array-like"],
        "return_code": ["boolean"],
        "method": [StrOptions({"cd", "lars"})],
        "method_max_iter": [Interval(Integral, 0, None, closed="left")],
    },
    prefer_skip_nested_validation=False,
)
def dict_learning_online(
    X: Any,
    n_components: int | None = 2,
    *,
    alpha: float = 1,
    max_iter: int = 100,
    return_code: bool = True,
    dict_init: np.ndarray | None = None,
    callback: Any = None,
    batch_size: int = 256,
    verbose: bool = False,
    shuffle: bool = True,
    n_jobs: int | None = None,
    method: str = "lars",
    random_state: Any = None,
    positive_dict: bool = False,
    positive_code: bool = False,
    method_max_iter: int = 1000,
    tol: float = 1e-3,
    max_no_improvement: int | None = 10,
    device: str = "auto",
) -> Array | tuple[Array, Array]:
    """Online dictionary learning: `MiniBatchDictionaryLearning` as a function.

    Same parameters, defaults and return values as
    `sklearn.decomposition.dict_learning_online`, plus ``device``; the codes
    (``return_code``) are the lasso codes of ``X`` on the learned dictionary
    with the same ``alpha`` and ``method``.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
    n_components : int or None, default=2
        Number of atoms; ``n_features`` when None.
    alpha : float, default=1
        Sparsity penalty.
    max_iter : int, default=100
        Maximum number of passes over the data.
    return_code : bool, default=True
        Also return the codes of ``X``.
    dict_init, callback, batch_size, verbose, shuffle, n_jobs, random_state, \
positive_dict, positive_code, tol, max_no_improvement
        See `MiniBatchDictionaryLearning`.
    method : {"lars", "cd"}, default="lars"
        Lasso solver (both exact here).
    method_max_iter : int, default=1000
        Iteration bound of the lasso solver.
    device : str, default="auto"
        Torch device.

    Returns
    -------
    code : ndarray of shape (n_samples, n_components)
        Only when ``return_code`` is True.
    dictionary : ndarray of shape (n_components, n_features)

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode.dictionary import dict_learning_online
    >>> X = np.random.RandomState(0).randn(300, 8)
    >>> U, V = dict_learning_online(X, 5, alpha=0.5, max_iter=3, random_state=0)
    >>> U.shape, V.shape
    ((300, 5), (5, 8))
    """
    est = MiniBatchDictionaryLearning(
        n_components=n_components, alpha=alpha, max_iter=max_iter, n_jobs=n_jobs,
        fit_algorithm=method, batch_size=batch_size, shuffle=shuffle,
        dict_init=dict_init, random_state=random_state,
        transform_algorithm="lasso_" + method, transform_alpha=alpha,
        positive_code=positive_code, positive_dict=positive_dict,
        transform_max_iter=method_max_iter, verbose=verbose, callback=callback,
        tol=tol, max_no_improvement=max_no_improvement, device=device,
    ).fit(X)
    if not return_code:
        return est.components_
    return est.transform(X), est.components_
