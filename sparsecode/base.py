"""Shared machinery of every sparsecode estimator.

`BaseSparseEstimator` gives each estimator the same boundary between the
scikit-learn world (numpy arrays, parameters, feature names, pickling) and the
torch world (tensors on a device). Subclasses implement the algorithm on
tensors and never convert in their hot loops.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._utils import GeneratorState

__all__ = [
    "BaseSparseEstimator",
    "DeviceOption",
    "resolve_device",
    "torch_dtype",
]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_NP_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


class DeviceOption(StrOptions):
    """Parameter constraint for ``device``: "auto", "cpu", "cuda", "cuda:N", ...

    Devices are checked for syntax at validation time and resolved (and their
    availability checked) in ``fit``.
    """

    def __init__(self) -> None:
        super().__init__({"auto", "cpu", "cuda", "mps"})

    def is_satisfied_by(self, val: Any) -> bool:
        if isinstance(val, torch.device):
            return True
        if not isinstance(val, str):
            return False
        try:
            torch.device(val)
        except RuntimeError:
            return val == "auto"
        return True

    def __str__(self) -> str:
        return "a torch device string such as 'auto', 'cpu', 'cuda' or 'cuda:1'"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn a ``device`` parameter into a `torch.device`, checking availability.

    Parameters
    ----------
    device : str, torch.device or None
        ``"auto"`` (or None) picks CUDA when available, else the CPU.

    Returns
    -------
    torch.device
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this "
            "machine; use device='cpu' or device='auto'."
        )
    if dev.type == "cuda" and dev.index is not None:
        if dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} but only {torch.cuda.device_count()} CUDA "
                "device(s) are visible."
            )
    return dev


def torch_dtype(dtype: Any) -> torch.dtype:
    """Map a numpy/torch/str float dtype to the torch float dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype in _NP_DTYPES:
            return dtype
        raise TypeError(f"dtype must be float32 or float64, got {dtype}.")
    name = np.dtype(dtype).name
    if name not in _DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {name}.")
    return _DTYPES[name]


class BaseSparseEstimator(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Base class: validation, device/dtype handling, numpy<->torch, pickling.

    Subclasses store only parameters in ``__init__``. Fitted numpy attributes
    (``components_`` ...) are the public state; torch tensors used internally
    live in attributes whose names start with ``_t_`` and are moved to the CPU
    when pickled, so a model trained on CUDA unpickles on a CPU-only machine.
    """

    _parameter_constraints: dict = {}

    # ------------------------------------------------------------------ input
    def _validate_input(
        self, X: Any, *, reset: bool, dtype: Any = None
    ) -> tuple[torch.Tensor, bool]:
        """Validate ``X`` and return it as a 2-D float tensor on the fit device.

        Returns the tensor and whether the caller passed a torch tensor (in
        which case outputs are returned as tensors on the caller's device).
        """
        if isinstance(X, torch.Tensor):
            return self._validate_tensor(X, reset=reset, dtype=dtype), True
        if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
            raise TypeError(
                f"{type(self).__name__} does not accept scipy sparse input; "
                "pass a dense array (X.toarray()) instead."
            )
        X = validate_data(
            self,
            X,
            reset=reset,
            dtype=[np.float64, np.float32] if dtype is None else dtype,
            order="C",
        )
        device = self._device if hasattr(self, "_device") else torch.device("cpu")
        return torch.as_tensor(X, device=device), False

    def _validate_tensor(
        self, X: torch.Tensor, *, reset: bool, dtype: Any = None
    ) -> torch.Tensor:
        name = type(self).__name__
        if X.ndim != 2:
            raise ValueError(
                f"Expected a 2D tensor of shape (n_samples, n_features), got "
                f"shape {tuple(X.shape)}."
            )
        if X.shape[0] < 1 or X.shape[1] < 1:
            raise ValueError(
                f"Found tensor with shape {tuple(X.shape)} while a minimum of 1 "
                f"sample and 1 feature is required by {name}."
            )
        if not X.is_floating_point():
            X = X.to(torch.float32)
        elif X.dtype not in _NP_DTYPES:
            X = X.to(torch.float32)
        if dtype is not None:
            X = X.to(torch_dtype(dtype))
        if not bool(torch.isfinite(X).all()):
            raise ValueError("Input X contains NaN or infinity.")
        if reset:
            self.n_features_in_ = X.shape[1]
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {name} is expecting "
                f"{self.n_features_in_} features as input."
            )
        device = self._device if hasattr(self, "_device") else X.device
        return X.to(device)

    def _begin(self, X: Any, *, reset: bool) -> tuple[torch.Tensor, bool]:
        """Start of ``fit``/``partial_fit``: when (re)starting, validate the
        parameters and resolve the device; then validate ``X`` (see
        `_validate_input`)."""
        if reset:
            self._validate_params()
            self._setup_device()
        return self._validate_input(X, reset=reset)

    def _setup_device(self) -> torch.device:
        """Resolve ``self.device`` (called at the start of ``fit``)."""
        self._device = resolve_device(getattr(self, "device", "auto"))
        return self._device

    def _compute_dtype(self, X: torch.Tensor) -> torch.dtype:
        """The dtype used for computation: ``self.dtype`` or that of X."""
        dtype = getattr(self, "dtype", None)
        return X.dtype if dtype is None else torch_dtype(dtype)

    # ----------------------------------------------------------------- output
    @staticmethod
    def _to_output(
        t: torch.Tensor, as_tensor: bool, like: torch.Tensor | None = None
    ) -> np.ndarray | torch.Tensor:
        """Return ``t`` as numpy (default) or as a tensor on ``like``'s device."""
        if as_tensor:
            return t if like is None else t.to(like.device)
        return t.detach().cpu().numpy()

    @staticmethod
    def _tensor(a: Any, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Numpy/tensor attribute -> tensor on ``device`` with ``dtype``."""
        return torch.as_tensor(np.asarray(a) if not torch.is_tensor(a) else a).to(
            device=device, dtype=dtype
        )

    # ------------------------------------------------------ transform / back
    def transform(self, X: Any) -> np.ndarray | torch.Tensor:
        """Sparse codes of ``X`` (see the class docstring for how they are made).

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)

        Returns
        -------
        codes : ndarray of shape (n_samples, n_features_out)
            A tensor on X's device when X is a tensor.
        """
        self._check_fitted()
        Xt, as_tensor = self._validate_input(X, reset=False)
        codes = self._transform_tensor(Xt)
        return self._to_output(codes, as_tensor, X if as_tensor else None)

    def inverse_transform(self, X: Any) -> np.ndarray | torch.Tensor:
        """Reconstruct data from codes (the decoder applied to ``X``).

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features_out)
            Codes, as `transform` returns them.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features_in_)
            A tensor on X's device when X is a tensor.
        """
        self._check_fitted()
        as_tensor = isinstance(X, torch.Tensor)
        codes = self._check_codes(X, self._n_features_out)
        out = self._inverse_transform_tensor(codes)
        return self._to_output(out, as_tensor, X if as_tensor else None)

    def _transform_tensor(self, X: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _inverse_transform_tensor(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check_codes(self, X: Any, width: int) -> torch.Tensor:
        """Codes given to `inverse_transform`: a finite 2-D float tensor of
        ``width`` columns, on the fit device."""
        from sklearn.utils import check_array

        if isinstance(X, torch.Tensor):
            t = X if X.dtype in (torch.float32, torch.float64) else X.float()
            if not bool(torch.isfinite(t).all()):
                raise ValueError("codes contain NaN or infinity.")
        else:
            t = torch.as_tensor(check_array(X, dtype=[np.float64, np.float32]))
        if t.ndim != 2 or t.shape[1] != width:
            raise ValueError(
                f"codes must have shape (n_samples, {width}): the number of "
                f"components in the code must match the estimator's, got "
                f"{tuple(t.shape)}."
            )
        return t.to(self._fit_device())

    # ------------------------------------------------------------ properties
    @property
    def _n_features_out(self) -> int:
        return self.components_.shape[0]

    def _fit_device(self) -> torch.device:
        return getattr(self, "_device", torch.device("cpu"))

    def _check_fitted(self) -> None:
        check_is_fitted(self, "components_")

    # -------------------------------------------------------------- pickling
    def __getstate__(self) -> dict:
        state = super().__getstate__()
        out = {}
        for key, val in state.items():
            if isinstance(val, torch.Tensor):
                val = val.detach().cpu()
            elif isinstance(val, torch.nn.Module):
                val = _module_to_cpu_copy(val)
            elif isinstance(val, torch.device):
                val = str(val)
            elif isinstance(val, torch.Generator):
                val = GeneratorState(str(val.device), val.get_state())
            out[key] = val
        return out

    def __setstate__(self, state: dict) -> None:
        if isinstance(state.get("_device"), str):
            dev = torch.device(state["_device"])
            if dev.type == "cuda" and not torch.cuda.is_available():
                dev = torch.device("cpu")
            state["_device"] = dev
        for key, val in state.items():
            if isinstance(val, GeneratorState):
                state[key] = val.restore(state.get("_device", torch.device("cpu")))
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.sparse = False
        return tags


def _module_to_cpu_copy(module: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(module).to("cpu")
