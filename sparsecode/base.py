"""Shared machinery of every sparsecode estimator.

`BaseSparseEstimator` gives each estimator the same boundary between the
scikit-learn world (numpy arrays, parameters, feature names, pickling) and the
torch world (tensors on a device). Subclasses implement the algorithm on
tensors and never convert in their hot loops.

The boundary is also where hostile inputs stop. Complex data (numpy, pandas or torch)
raises `ComplexDataError` (a ``TypeError`` and the ``ValueError`` scikit-learn's checks
expect) naming the dtype; torch sparse, quantized and nested tensors raise ``TypeError``
and meta tensors ``ValueError``, saying what to pass instead (`check_tensor`); tensors
that require grad are detached; read-only arrays are copied. Bools are refused where a
number is expected, and devices other than the CPU and CUDA when the parameters are
validated. Values whose squares would overflow the compute dtype raise ``ValueError``
with the accepted range, unless the estimator rescales its input itself
(`BaseSparseEstimator._max_abs_input`); a fit that needs more memory than the device has
left raises ``ValueError`` before allocating (`check_memory`); and a ``transform`` or
``inverse_transform`` whose result overflowed raises ``ValueError`` instead of returning
NaN or infinity.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._guards import (
    ComplexDataError,
    DeviceOption,
    DivergenceError,
    as_real_tensor,
    available_memory,
    check_bools,
    check_memory,
    check_tensor,
    finite,
    from_numpy,
    reject_complex,
    resolve_device,
    safe_rms,
)
from ._utils import GeneratorState

__all__ = [
    "BaseSparseEstimator",
    "ComplexDataError",
    "DeviceOption",
    "DivergenceError",
    "as_real_tensor",
    "available_memory",
    "check_memory",
    "check_tensor",
    "finite",
    "resolve_device",
    "safe_rms",
    "torch_dtype",
]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_NP_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def torch_dtype(dtype: Any) -> torch.dtype:
    """Map a numpy/torch/str float dtype to the torch float dtype.

    Parameters
    ----------
    dtype : numpy dtype, torch.dtype or str; float32 or float64 (else TypeError)

    Returns
    -------
    torch.dtype

    Examples
    --------
    >>> from sparsecode.base import torch_dtype
    >>> torch_dtype("float32"), torch_dtype("float64")
    (torch.float32, torch.float64)
    """
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

    Examples
    --------
    >>> import torch
    >>> from sparsecode import SPINE
    >>> X = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    >>> est = SPINE(3, max_iter=1, random_state=0, device="cpu").fit(X)
    >>> type(est.transform(X)).__name__, list(est.get_feature_names_out())
    ('Tensor', ['spine0', 'spine1', 'spine2'])
    """

    _parameter_constraints: dict = {}

    def _validate_params(self) -> None:
        check_bools(self)
        super()._validate_params()

    # ------------------------------------------------------------------ input
    def _validate_input(
        self, X: Any, *, reset: bool, dtype: Any = None
    ) -> tuple[torch.Tensor, bool]:
        """Validate ``X`` and return it as a 2-D float tensor on the fit device.

        Returns the tensor and whether the caller passed a torch tensor (in
        which case outputs are returned as tensors on the caller's device).
        A fit (``reset``) also checks its memory needs (`_memory_needed`).
        """
        if isinstance(X, torch.Tensor):
            t, as_tensor = self._validate_tensor(X, reset=reset, dtype=dtype), True
        else:
            t, as_tensor = self._validate_array(X, reset=reset, dtype=dtype), False
        need = self._memory_needed(*t.shape) if reset else None
        if need is not None:
            size = torch.empty((), dtype=self._compute_dtype(t)).element_size()
            check_memory(need[0] * size, param=need[1],
                         value=getattr(self, need[1], None), device=t.device)
        return t, as_tensor

    def _validate_array(self, X: Any, *, reset: bool, dtype: Any) -> torch.Tensor:
        if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
            raise TypeError(
                f"{type(self).__name__} does not accept scipy sparse input; "
                "pass a dense array (X.toarray()) instead."
            )
        reject_complex(X, type(self).__name__)
        X = validate_data(
            self,
            X,
            reset=reset,
            dtype=[np.float64, np.float32] if dtype is None else dtype,
            order="C",
        )
        t = from_numpy(X)
        self._check_values(t)
        return t.to(self._fit_device())

    def _validate_tensor(
        self, X: torch.Tensor, *, reset: bool, dtype: Any = None
    ) -> torch.Tensor:
        name = type(self).__name__
        X = check_tensor(X)
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
        if X.dtype not in _NP_DTYPES:  # ints, bools, float16, bfloat16
            X = X.to(torch.float32)
        if dtype is not None:
            X = X.to(torch_dtype(dtype))
        self._check_values(X)
        expected = getattr(self, "n_features_in_", None)
        if reset:
            self.n_features_in_ = X.shape[1]
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif expected is not None and X.shape[1] != expected:
            raise ValueError(
                f"X has {X.shape[1]} features, but {name} is expecting "
                f"{expected} features as input."
            )
        return X.to(self._device if hasattr(self, "_device") else X.device)

    def _check_values(self, X: torch.Tensor) -> None:
        """NaN/inf, then the range `_max_abs_input` accepts (one pass over X)."""
        amax = float(torch.linalg.vector_norm(X, ord=math.inf)) if X.numel() else 0.0
        if not math.isfinite(amax):
            raise ValueError("Input X contains NaN or infinity.")
        limit = self._max_abs_input(X)
        if limit is not None and amax > limit:
            dt = str(self._compute_dtype(X)).replace("torch.", "")
            raise ValueError(
                f"Input X has values up to {amax:.3g} in magnitude, but "
                f"{type(self).__name__} accepts at most {limit:.3g} for X of shape "
                f"{tuple(X.shape)} in {dt}: its sums of squares would overflow. "
                "Rescale X (e.g. divide it by its largest absolute value)"
                + (" or pass float64 data." if dt != "float64" else "."))

    def _max_abs_input(self, X: torch.Tensor) -> float | None:
        """Largest ``|x|`` accepted in ``X``; None accepts any finite value.

        By default each row's squared norm must fit the compute dtype with a
        margin of 16, ``sqrt(finfo.max / (16 * n_features))``; an estimator
        with ``normalize_input=True`` rescales X itself (any finite X).
        """
        if bool(getattr(self, "normalize_input", False)):
            return None
        return math.sqrt(torch.finfo(self._compute_dtype(X)).max / (16 * X.shape[1]))

    def _memory_needed(self, n_samples: int, n_features: int
                       ) -> tuple[float, str] | None:
        """A lower bound on the numbers a fit holds at once, and the parameter
        that sets it (None: no estimate).

        By default two ``(n_components, n_features)`` arrays: the components
        and one working copy.
        """
        m = getattr(self, "n_components", None)
        if not isinstance(m, Integral) or isinstance(m, bool):
            return None
        return 2.0 * m * n_features, "n_components"

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

    def _check_output(self, out: torch.Tensor, method: str) -> torch.Tensor:
        """``out``, or ``ValueError`` if it holds NaN or infinity (an overflow)."""
        if out.is_floating_point() and not finite(out):
            raise ValueError(
                f"{type(self).__name__}.{method} produced NaN or infinite values: "
                f"the result overflows {str(out.dtype).replace('torch.', '')} for "
                "inputs of this magnitude. Rescale the input (or pass float64 data).")
        return out

    @staticmethod
    def _tensor(a: Any, device: torch.device, dtype: torch.dtype,
                name: str = "an array") -> torch.Tensor:
        """Numpy/tensor attribute or parameter -> finite tensor on ``device``
        with ``dtype`` (``TypeError`` if not real, ``ValueError`` if not finite)."""
        t = as_real_tensor(a, name).to(device=device, dtype=dtype)
        if not finite(t):
            raise ValueError(f"{name} contains NaN or infinity (or values beyond "
                             f"the range of {str(dtype).replace('torch.', '')}).")
        return t

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
        codes = self._check_output(self._transform_tensor(Xt), "transform")
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
        out = self._check_output(self._inverse_transform_tensor(codes),
                                 "inverse_transform")
        return self._to_output(out, as_tensor, X if as_tensor else None)

    def _transform_tensor(self, X: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _inverse_transform_tensor(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check_codes(self, X: Any, width: int) -> torch.Tensor:
        """Codes given to `inverse_transform`: a finite 2-D float tensor of
        ``width`` columns, on the fit device."""
        if isinstance(X, torch.Tensor):
            t = check_tensor(X, "codes")
            t = t if t.dtype in _NP_DTYPES else t.float()
        else:
            reject_complex(X, type(self).__name__, "codes")
            t = from_numpy(check_array(X, dtype=[np.float64, np.float32],
                                        input_name="codes"))
        if not finite(t):
            raise ValueError("codes contain NaN or infinity.")
        if t.ndim != 2:
            raise ValueError(f"codes must be 2D (n_samples, {width}), got shape "
                             f"{tuple(t.shape)}.")
        if t.shape[1] != width:  # (scikit-learn's wording)
            raise ValueError(
                "The number of components in the code is different from the "
                "number of components in the dictionary. "
                f"Expected {width}, got {t.shape[1]}."
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
