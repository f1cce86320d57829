"""Guards against hostile inputs, shared by every estimator (see `sparsecode.base`).

Devices (`DeviceOption`, `resolve_device`: the CPU and CUDA only), tensors
without real dense values (`check_tensor`), complex array-likes, bools given
as numbers, overflow-free norms (`safe_rms`) and the memory a fit may take
(`available_memory`, `check_memory`). `sparsecode.base` re-exports the public
names.
"""

from __future__ import annotations

import math
import os
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import (
    InvalidParameterError,
    StrOptions,
    make_constraint,
)

__all__ = [
    "ComplexDataError",
    "DeviceOption",
    "DivergenceError",
    "as_real_tensor",
    "available_memory",
    "check_bools",
    "reject_bools",
    "check_memory",
    "check_tensor",
    "finite",
    "from_numpy",
    "reject_complex",
    "resolve_device",
    "safe_rms",
]

_SUPPORTED = "'auto', 'cpu', 'cuda' or 'cuda:N'"
_CHUNK = 1 << 22  # entries per float64 chunk in `safe_rms`


class ComplexDataError(TypeError, ValueError):
    """Complex input: a ``TypeError`` naming the dtype, and the ``ValueError``
    ("Complex data not supported") scikit-learn's estimator checks expect."""


class DivergenceError(FloatingPointError, ValueError):
    """Training went to NaN or infinity: a ``FloatingPointError`` (as the SAE
    loop raises) and a ``ValueError`` (a parameter value is the cause); the
    message names the parameter to change."""


def _supported_device(val: Any) -> bool:
    if isinstance(val, str) and val == "auto":
        return True
    if not isinstance(val, (str, torch.device)):
        return False
    try:
        return torch.device(val).type in ("cpu", "cuda")
    except (RuntimeError, TypeError, ValueError):
        return False


class DeviceOption(StrOptions):
    """Parameter constraint for ``device``: "auto", "cpu", "cuda" or "cuda:N".

    A str or `torch.device` of type cpu or cuda; other backends ("mps",
    "xpu", "meta", ...) fail the parameter validation. The device is
    resolved (and its availability checked) in ``fit``.
    """

    def __init__(self) -> None:
        super().__init__({"auto", "cpu", "cuda"})

    def is_satisfied_by(self, val: Any) -> bool:
        return _supported_device(val)

    def __str__(self) -> str:
        return (f"{_SUPPORTED} (a str or torch.device; other backends such as "
                "'mps', 'xpu' or 'meta' are not supported)")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn a ``device`` parameter into a `torch.device`, checking availability.

    Parameters
    ----------
    device : str, torch.device or None
        ``"auto"`` (or None) picks CUDA when available, else the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        For a device that is neither the CPU nor CUDA, or an unavailable one.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not _supported_device(device):
        raise ValueError(f"device={device!r} is not supported: use {DeviceOption()}.")
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


def check_tensor(t: torch.Tensor, name: str = "X") -> torch.Tensor:
    """``t`` detached from autograd, once tensors without real dense values
    are refused.

    Raises
    ------
    TypeError
        For nested, sparse, complex or quantized tensors.
    ValueError
        For tensors on the ``meta`` device, which hold no values.
    """
    if t.is_nested:
        raise TypeError(f"{name} is a nested tensor; pass a dense 2-D tensor "
                        f"(e.g. {name}.to_padded_tensor(0.0)).")
    if t.layout != torch.strided:
        raise TypeError(f"{name} is a torch sparse tensor (layout {t.layout}); pass "
                        f"a dense tensor ({name}.to_dense()).")
    if t.is_complex():
        raise ComplexDataError(
            f"Complex data not supported: {name} has the complex dtype {t.dtype}; "
            f"pass {name}.real, {name}.abs() or the real and imaginary parts as "
            "separate features.")
    if t.is_quantized:
        raise TypeError(f"{name} is a quantized tensor ({t.dtype}); pass "
                        f"{name}.dequantize().")
    if t.device.type == "meta":
        raise ValueError(f"{name} is on the 'meta' device, which holds shapes but no "
                         "values; pass a tensor with data (on the CPU or a CUDA "
                         "device).")
    return t.detach()


def safe_rms(X: torch.Tensor) -> float:
    """Root mean square of the entries of ``X``, free of overflow and underflow.

    The entries are divided by a power of two near their largest magnitude
    (exactly) and squared in float64, by chunks of rows (no full float64
    copy), so any finite X gives its RMS to float64 accuracy.

    Returns
    -------
    float
        0 for an empty or all-zero X; NaN or inf when X holds them.
    """
    if X.numel() == 0:
        return 0.0
    amax = float(torch.linalg.vector_norm(X, ord=math.inf))
    if amax == 0.0 or not math.isfinite(amax):
        return amax
    p = math.ldexp(1.0, math.frexp(amax)[1] - 1)  # amax / p in [1, 2)
    rows = X.reshape(X.shape[0], -1) if X.ndim else X.reshape(1, 1)
    step = max(1, _CHUNK // max(1, rows.shape[1]))
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    for lo in range(0, rows.shape[0], step):
        total += (rows[lo:lo + step].to(torch.float64) / p).square().sum()
    return p * math.sqrt(float(total) / X.numel())


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes that can still be allocated on ``device``; None where unknown.

    CUDA: `torch.cuda.mem_get_info`. CPU: ``MemAvailable + SwapFree`` of
    /proc/meminfo (else ``os.sysconf``'s available pages), capped by a cgroup
    v2 ``memory.max``.
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(dev)[0])
        except (AssertionError, RuntimeError, ValueError):
            return None
    if dev.type != "cpu":
        return None
    free = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            info = dict(line.split(":", 1) for line in f if ":" in line)
        if "MemAvailable" in info:
            free = sum(int(info[k].split()[0]) * 1024
                       for k in ("MemAvailable", "SwapFree") if k in info)
    except (OSError, ValueError):
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, OSError, ValueError):
            return None
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            limit = f.read().strip()
        free = free if limit == "max" else min(free, int(limit))
    except (OSError, ValueError):
        pass
    return free


def check_memory(n_bytes: float, *, param: str, value: Any,
                 device: torch.device | str = "cpu") -> None:
    """Raise ``ValueError`` when ``n_bytes`` exceed what ``device`` has left.

    Called before allocating; a no-op where the free memory is unknown
    (`available_memory`).

    Parameters
    ----------
    n_bytes : float
        Bytes the computation needs at least.
    param, value : str, Any
        The parameter that sets the size, and its value (for the message).
    device : torch.device or str, default="cpu"
    """
    free = available_memory(device)
    if free is not None and n_bytes > free:
        raise ValueError(
            f"{param}={value!r} needs at least {n_bytes:,.0f} bytes "
            f"({n_bytes / 2**30:.3g} GiB) of memory on {torch.device(device)}, but "
            f"only {free:,} bytes ({free / 2**30:.3g} GiB) are available; reduce "
            f"{param}.")


def as_real_tensor(a: Any, name: str = "X") -> torch.Tensor:
    """A tensor of real numbers from a tensor (`check_tensor`) or an array-like.

    Raises ``TypeError`` for sparse matrices and non-numeric or complex arrays.
    """
    if torch.is_tensor(a):
        return check_tensor(a, name)
    if hasattr(a, "toarray"):
        raise TypeError(f"{name} is a sparse matrix; pass a dense array "
                        "(.toarray()).")
    arr = np.asarray(a)
    if arr.dtype.kind == "c":
        raise ComplexDataError(f"Complex data not supported: {name} has the complex "
                               f"dtype {arr.dtype}; pass its real part or modulus.")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}.")
    return from_numpy(arr)


def from_numpy(a: np.ndarray) -> torch.Tensor:
    """A CPU tensor of ``a`` (a read-only array is copied: torch would write)."""
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return torch.as_tensor(a if a.flags.writeable else a.copy())


def reject_complex(X: Any, owner: str, name: str = "X") -> None:
    """``TypeError`` for complex array-likes (numpy, pandas, lists)."""
    dtype = getattr(X, "dtype", None)
    if isinstance(dtype, np.dtype):
        kinds = [dtype.kind]
    elif hasattr(X, "dtypes"):  # a DataFrame
        kinds = [getattr(d, "kind", "") for d in X.dtypes]
    else:
        try:
            kinds = ["c"] if isinstance(X, (list, tuple)) and np.iscomplexobj(X) else []
        except (TypeError, ValueError):
            kinds = []
    if "c" in kinds:
        shown = dtype if isinstance(dtype, np.dtype) else "complex"
        raise ComplexDataError(
            f"Complex data not supported: {owner} got {name} with the complex dtype "
            f"{shown}; pass np.real({name}), np.abs({name}) or the real and "
            "imaginary parts as separate features.")


def _numeric(c: Any) -> bool:
    return getattr(c, "type", None) in (Integral, Real, int, float)


def check_bools(est: BaseEstimator) -> None:
    """sklearn's ``InvalidParameterError`` for a bool given where a number is
    expected (sklearn's constraints accept ``True`` as the integer 1)."""
    reject_bools(est.get_params(deep=False), est._parameter_constraints,
                 type(est).__name__)


def reject_bools(params: dict, parameter_constraints: dict, owner: str) -> None:
    """`check_bools` for ``params`` checked against ``parameter_constraints``
    (an estimator's or a function's, as ``validate_params`` takes them)."""
    for name, constraints in parameter_constraints.items():
        val = params.get(name)
        if not isinstance(val, (bool, np.bool_)) or constraints == "no_validation":
            continue
        made = [make_constraint(c) for c in constraints]
        if not any(map(_numeric, made)) or any(
                c.is_satisfied_by(val) for c in made if not _numeric(c)):
            continue  # no number expected, or a boolean option ("verbose", ...)
        shown = [str(c) for c in made if not getattr(c, "hidden", False)]
        expected = (shown[0] if len(shown) == 1
                    else f"{', '.join(shown[:-1])} or {shown[-1]}")
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be {expected}. "
            f"Got {val!r} instead (a bool is not accepted as a number).")


def finite(t: torch.Tensor) -> bool:
    """Whether every entry is finite (one reduction, no temporary)."""
    return t.numel() == 0 or math.isfinite(
        float(torch.linalg.vector_norm(t, ord=math.inf)))
