"""Helpers written once and used across the package: atomic files, JSON, RNG state.

Every file sparsecode writes goes through `atomic_write` (a temporary file in
the same folder, then `os.replace`) or `atomic_dir` (a whole folder swapped
into place), so an interrupted write never leaves a half-written file where a
complete one was. Tensors are written as safetensors and nothing is pickled.
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
    "make_generator",
    "one_thread",
    "check_weights",
    "read_json",
    "read_json_object",
    "read_tensors",
    "write_json",
    "write_tensors",
]


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, then move the temporary file onto ``path``.

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
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_dir(path: str | os.PathLike, write: Callable[[Path], None],
               *, marker: str | None = None) -> None:
    """Write a folder under a temporary name, then swap it into place.

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
    """Read a JSON file, naming the file in the error when it is not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a valid JSON file: {err}") from None


def read_json_object(path: str | os.PathLike) -> dict:
    """`read_json` of a file that must hold a JSON object (a dict)."""
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{path} must hold a JSON object, not a JSON "
                         f"{type(obj).__name__}.")
    return obj


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
