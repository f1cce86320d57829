"""Helpers written once and used across the package: atomic files, JSON, RNG state.

Every file sparsecode writes goes through `atomic_write` (a temporary file in
the same folder, then `os.replace`) or `atomic_dir` (a whole folder swapped
into place), so an interrupted write never leaves a half-written file where a
complete one was; the result gets the permissions a plain ``open(path, "w")``
or ``os.mkdir`` would give it under the user's umask (not the private 0600 /
0700 of the temporary names). Tensors are written as safetensors and nothing
is pickled.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = [
    "GeneratorState",
    "atomic_dir",
    "atomic_write",
    "fused_optimizer",
    "json_field",
    "make_generator",
    "one_thread",
    "check_weights",
    "open_tensors",
    "read_json",
    "read_json_object",
    "read_tensors",
    "umask",
    "write_json",
    "write_tensors",
]


_UMASK_LOCK = threading.Lock()


def umask() -> int:
    """The process's umask, read without changing it where the OS allows.

    On Linux it is read from ``/proc/self/status``; elsewhere it is set and
    restored at once (``os.umask`` twice) under a lock.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, then move the temporary file onto ``path``.

    The file ends up with mode ``0o666 & ~umask``, as ``open(path, "w")``
    would create it.

    Parameters
    ----------
    path : str or path-like
        The file to create or replace; its folder must exist.
    write : callable
        Writes the complete file to the temporary path it is given.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_dir(path: str | os.PathLike, write: Callable[[Path], None],
               *, marker: str | None = None) -> None:
    """Write a folder under a temporary name, then swap it into place.

    The folder ends up with mode ``0o777 & ~umask``, as ``os.mkdir`` would
    create it.

    Parameters
    ----------
    path : str or path-like
        The folder to create or replace.
    write : callable
        Fills the temporary folder it is given.
    marker : str, default=None
        A file that an existing, non-empty ``path`` must contain to be
        replaced (so that a folder of something else is never deleted).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if (marker is not None and path.exists() and not (path / marker).is_file()
            and any(path.iterdir())):
        raise FileExistsError(f"{path} exists and is not a saved sparsecode model.")
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp"))
    try:
        write(tmp)
        os.chmod(tmp, 0o777 & ~umask())
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old"))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (flushed to disk)."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file (a UTF-8 byte-order mark is skipped).

    Raises ``ValueError`` naming the file when it is empty, truncated or not
    UTF-8 JSON.
    """
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{path} is not a valid JSON file: {err}") from None


def read_json_object(path: str | os.PathLike) -> dict:
    """`read_json` of a file that must hold a JSON object (a dict)."""
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{path} must hold a JSON object, not a JSON "
                         f"{_json_kind(obj)}.")
    return obj


def _json_kind(obj: Any) -> str:
    kinds = ((bool, "boolean"), (int, "number"), (float, "number"), (str, "string"),
             (list, "array"), (dict, "object"), (type(None), "null"))
    return next((name for kind, name in kinds if isinstance(obj, kind)),
                type(obj).__name__)


def json_field(obj: dict, key: str, kind: type | tuple[type, ...],
               path: str | os.PathLike) -> Any:
    """``obj[key]``, checked to be of ``kind``; ``ValueError`` naming ``path``.

    ``bool`` is not accepted where ``int`` or ``float`` is asked for.
    """
    if key not in obj:
        raise ValueError(f"{path} lacks the key {key!r}.")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(_JSON_NAMES.get(k, k.__name__) for k in kinds)
        raise ValueError(f"{path}: {key!r} must be a JSON {names}, not a JSON "
                         f"{_json_kind(value)}.")
    return value


_JSON_NAMES = {dict: "object", list: "array", str: "string", int: "integer",
               float: "number", bool: "boolean", type(None): "null"}


def read_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, on the CPU.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming
    the file when it is truncated or not safetensors.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found.")
    try:
        return load_file(os.fspath(path), device="cpu")
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors file "
                         f"(truncated or another format): {err}") from None


@contextlib.contextmanager
def open_tensors(path: str | os.PathLike, framework: str = "pt") -> Iterator[Any]:
    """`safetensors.safe_open` of ``path`` (memory-mapped, lazy slices).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming
    the file when it is truncated, not safetensors, or lacks a tensor asked
    for inside the block.
    """
    from safetensors import SafetensorError, safe_open

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found.")
    try:
        handle = safe_open(os.fspath(path), framework=framework)
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors file "
                         f"(truncated or another format): {err}") from None
    try:
        with handle as fh:
            yield fh
    except SafetensorError as err:
        raise ValueError(f"{path}: {err}") from None


def check_weights(tensors: dict[str, torch.Tensor], path: str | os.PathLike,
                  names: Any = None) -> None:
    """Raise ``ValueError`` naming ``path`` if a weight is not floating or finite.

    ``names`` limits the check to those keys (all when None).
    """
    for name in tensors if names is None else names:
        t = tensors[name]
        if not (t.is_floating_point()):
            raise ValueError(f"{path}: weight {name!r} has dtype "
                             f"{str(t.dtype).replace('torch.', '')}, expected a "
                             "floating-point dtype.")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{path}: weight {name!r} holds NaN or infinite "
                             "values.")


def write_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                  metadata: dict[str, str] | None = None) -> None:
    """Atomically write CPU, contiguous copies of ``tensors`` as safetensors."""
    from safetensors.torch import save_file

    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(flat, tmp, metadata=metadata))


def fused_optimizer(cls: type[torch.optim.Optimizer], params: Any, **kw: Any
                    ) -> torch.optim.Optimizer:
    """``cls(params, fused=True, **kw)`` where torch has the fused kernel for
    these parameters (one kernel for all of them), else ``cls(params, **kw)``.

    ``params`` is a list of tensors or of parameter-group dicts (each attempt
    gets its own copies of the dicts, which the optimizer fills in).
    """
    params = list(params)

    def fresh() -> list:
        return [dict(g) if isinstance(g, dict) else g for g in params]

    try:
        return cls(fresh(), fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):
        return cls(fresh(), **kw)


_THREADS_LOCK = threading.Lock()
_THREADS = {"depth": 0, "saved": 1}


@contextlib.contextmanager
def one_thread(device: torch.device | str = "cpu") -> Iterator[None]:
    """Run torch's CPU operations on one intra-op thread inside the block.

    For the many small operations of classic dictionary learning (the lasso
    homotopy, the dictionary update) and of SPINE's steps: every
    multi-threaded operation ends at a barrier that waits for all of its
    threads, so when another process holds a core each small operation waits
    for a time slice (measurements: docs/design.md, section 3). Nesting and
    concurrent use from several threads (joblib's ``n_jobs``) are safe: the
    setting is restored when the last block exits. No effect on other devices.
    """
    if torch.device(device).type != "cpu":
        yield
        return
    with _THREADS_LOCK:
        if _THREADS["depth"] == 0:
            _THREADS["saved"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _THREADS["depth"] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS["depth"] -= 1
            if _THREADS["depth"] == 0:
                torch.set_num_threads(_THREADS["saved"])


def make_generator(random_state: Any, device: torch.device | str = "cpu"
                   ) -> torch.Generator:
    """A torch generator on ``device`` seeded from an sklearn ``random_state``."""
    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


class GeneratorState:
    """A picklable snapshot of a `torch.Generator`, restored on any device.

    Parameters
    ----------
    device : str
        The generator's device.
    state : torch.Tensor
        ``generator.get_state()``.
    """

    def __init__(self, device: str, state: torch.Tensor) -> None:
        self.device = device
        self.state = state

    def restore(self, device: torch.device) -> torch.Generator:
        """The generator on ``device`` (reseeded from the state on another type)."""
        gen = torch.Generator(device=device)
        if torch.device(self.device).type == torch.device(device).type:
            gen.set_state(self.state)
        else:  # e.g. a CUDA generator restored on a CPU-only machine
            gen.manual_seed(int(self.state[:8].view(torch.int64)[0]) & 0x7FFFFFFF)
        return gen
