"""Data-dependent initial values of the SAE biases: geometric median, mean."""

from __future__ import annotations

import torch

__all__ = ["centre_of", "geometric_median"]


def geometric_median(
    X: torch.Tensor, n_iter: int = 100, eps: float = 1e-8, tol: float = 1e-7
) -> torch.Tensor:
    """Geometric median of the rows of ``X`` by Weiszfeld's iterations.

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, n_features)
    n_iter : int, default=100
        Maximum number of iterations.
    eps : float, default=1e-8
        Floor on distances (avoids division by zero at a data point).
    tol : float, default=1e-7
        Stop when an iteration moves the estimate by less than ``tol`` times
        the data's RMS distance to it (checked every 10 iterations).

    Returns
    -------
    torch.Tensor of shape (n_features,)
        Float64, unlike the mean not pulled towards outliers.

    Examples
    --------
    >>> X = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [10.0, 10.0]])
    >>> [round(v, 3) for v in geometric_median(X).tolist()], X.mean(0).tolist()
    ([0.5, 0.5], [2.75, 2.75])
    """
    X = X.double()
    y = X.mean(0)
    for it in range(n_iter):
        dist = torch.linalg.vector_norm(X - y, dim=1)
        w = 1.0 / dist.clamp_min(eps)
        y_new = (w @ X) / w.sum()
        if it % 10 == 9:
            scale = float(dist.pow(2).mean().sqrt())
            if float(torch.linalg.vector_norm(y_new - y)) <= tol * max(scale, eps):
                return y_new
        y = y_new
    return y


def centre_of(X: torch.Tensor, how: str) -> torch.Tensor:
    """The geometric median, the mean or zeros of the rows of ``X`` (float64).

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, n_features)
    how : {"geometric_median", "mean", "zeros"}

    Returns
    -------
    torch.Tensor of shape (n_features,), float64

    Examples
    --------
    >>> X = torch.tensor([[0.0, 2.0], [4.0, 6.0]])
    >>> centre_of(X, "mean").tolist(), centre_of(X, "zeros").dtype
    ([2.0, 4.0], torch.float64)
    """
    if how == "geometric_median":
        return geometric_median(X)
    if how == "mean":
        return X.double().mean(0)
    if how == "zeros":
        return X.new_zeros(X.shape[1], dtype=torch.float64)
    raise ValueError(f"Unknown b_pre_init {how!r}.")
