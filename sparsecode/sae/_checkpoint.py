"""Training checkpoints: safetensors for the tensors, JSON for the rest.

A checkpoint folder holds the newest two checkpoints, ``step_<n>.safetensors``
each, and ``checkpoint.json``, which describes them (the newest at the top
level, the one before under ``"previous"``) and the run that wrote them: its
fingerprint, the parameters and data description that a fit compares with its
own before resuming. The JSON file is written last and names the weights
files, so it is the commit point: an interrupted write leaves the previous
checkpoints intact. Every file is written to a temporary name in the same
folder (``.step_<n>.safetensors.*.tmp``, ``.checkpoint.json.*.tmp``), flushed
to disk and moved into place with `os.replace`; the temporary files a killed
process leaves behind are removed by the next fit on the folder.

Each tensor's dtype, shape and SHA-256 are recorded, so a truncated, edited or
otherwise damaged file is recognised before it is used: the newest good
checkpoint is resumed, with a warning naming what was wrong with each newer
one. Nothing is ever unpickled.
"""

from __future__ import annotations

import copy
import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .._utils import atomic_write, read_json_object, read_tensors, write_json

if TYPE_CHECKING:
    from .config import TrainConfig
    from .state import TrainState

__all__ = ["CheckpointFolder", "check_checkpoint_dir", "directory_problem",
           "resume_from"]

CHECKPOINT_JSON = "checkpoint.json"
FORMAT = 2
KEEP = 2  # checkpoints kept: the newest and the one before it
_TEMP_GLOBS = (".step_*.tmp", f".{CHECKPOINT_JSON}.*.tmp")  # (`atomic_write`'s)
_INDEX_ONLY = ("format", "fingerprint", "previous")
_MISSING = object()

Check = Callable[[dict[str, torch.Tensor], dict], None]


def directory_problem(directory: str | os.PathLike) -> str | None:
    """Why checkpoints cannot be written in ``directory``; None when they can.

    Creates the folder (and its parents) when missing and probes it with a
    temporary file of the checkpoints' own pattern, removed at once.
    """
    path = Path(directory)
    if path.exists() and not path.is_dir():
        return f"checkpoint_dir {path} is a file, not a folder."
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=f".{CHECKPOINT_JSON}.",
                                     suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        return f"checkpoint_dir {path} cannot be created or written to: {err}"
    return None


def check_checkpoint_dir(directory: str | os.PathLike | None, comm: Any = None
                         ) -> None:
    """Raise ``ValueError`` (on every process) unless ``directory`` is writable.

    Creates the folder when missing, so that a bad ``checkpoint_dir`` fails
    before training rather than at the first checkpoint.

    Parameters
    ----------
    directory : str, path-like or None
        None (no checkpoints) passes.
    comm : Local or DataParallel, default=None
        The process group's communicator (`sparsecode.sae.distributed`): all
        processes raise together. None: this process alone.
    """
    if directory is None:
        return
    problem = directory_problem(directory)
    if comm.any(problem is not None) if comm is not None else problem is not None:
        raise ValueError(problem or f"checkpoint_dir {directory} cannot be written "
                         "to by another process.")


def _digest(t: torch.Tensor) -> str:
    """SHA-256 of a CPU tensor's bytes (hex, 32 characters)."""
    raw = t.detach().contiguous().reshape(-1).view(torch.uint8).numpy()
    return hashlib.sha256(raw.data).hexdigest()[:32]


def _save_synced(flat: dict[str, torch.Tensor], tmp: str) -> None:
    from safetensors.torch import save_file

    save_file(flat, tmp)
    with open(tmp, "r+b") as f:
        os.fsync(f.fileno())


def _show(value: Any) -> str:
    return "(not recorded)" if value is _MISSING else repr(value)


def fingerprint_differences(recorded: Any, current: dict) -> list[str]:
    """``"name: old in the checkpoint, new in this fit"`` for each difference.

    ``recorded`` and ``current`` map groups (``"params"``, ``"data"``) to
    dicts of JSON values.
    """
    if not isinstance(recorded, dict):
        return ["the checkpoint records no parameters (it was written by an "
                "older sparsecode or another program)"]
    out = []
    for group in sorted(set(recorded) | set(current)):
        old, new = recorded.get(group, {}), current.get(group, {})
        if not (isinstance(old, dict) and isinstance(new, dict)):
            old, new = {group: old}, {group: new}
        prefix = "" if group == "params" else f"{group} "
        for key in sorted(set(old) | set(new)):
            a, b = old.get(key, _MISSING), new.get(key, _MISSING)
            if a != b:
                out.append(f"{prefix}{key}: {_show(a)} in the checkpoint, "
                           f"{_show(b)} in this fit")
    return out


def _entries(index: dict) -> list[dict]:
    """The checkpoints an index describes, newest first."""
    newest = {k: v for k, v in index.items() if k not in _INDEX_ONLY}
    previous = index.get("previous")
    return [newest] + [e for e in (previous if isinstance(previous, list) else [])
                       if isinstance(e, dict)]


def _label(entry: dict) -> str:
    return f"of step {entry.get('step')} ({entry.get('weights')})"


class CheckpointFolder:
    """The checkpoints of one run in a folder: resumed, verified and written.

    Parameters
    ----------
    directory : str or path-like
    fingerprint : dict
        The run's parameters and data description (JSON values); only
        checkpoints recording the same are resumed.
    """

    def __init__(self, directory: str | os.PathLike, fingerprint: dict) -> None:
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self.kept: list[dict] = []  # entries of the checkpoints to keep, newest first

    # ---------------------------------------------------------------- reading
    def find(self, check: Check) -> tuple[dict[str, torch.Tensor], dict] | None:
        """Tensors and metadata of the newest good checkpoint; None if none.

        ``check(tensors, meta)`` raises ``ValueError`` saying what does not
        fit the model. A ``UserWarning`` names each newer checkpoint passed
        over and why.

        Raises
        ------
        ValueError
            When the folder holds another run's checkpoints (each differing
            parameter named, nothing deleted) or none of them is usable.
        """
        index_path = self.directory / CHECKPOINT_JSON
        if not index_path.is_file():
            return None
        index = read_json_object(index_path)
        differences = fingerprint_differences(index.get("fingerprint"),
                                              self.fingerprint)
        if differences:
            raise ValueError(
                f"checkpoint_dir {self.directory} holds the checkpoint of another "
                f"run (step {index.get('step')}), made with other parameters or "
                "data:\n  " + "\n  ".join(differences) + "\nNothing was changed "
                "there. Fit with the checkpoint's parameters to resume it, choose "
                "another checkpoint_dir, or pass resume='restart' to train from "
                "scratch and replace it.")
        problems: list[str] = []
        entries = _entries(index)
        for i, entry in enumerate(entries):
            try:
                tensors = self._load(entry, check)
            except (ValueError, TypeError, KeyError, OSError) as err:
                problems.append(f"the checkpoint {_label(entry)} is unusable: {err}")
                continue
            if problems:
                warnings.warn(f"checkpoint_dir {self.directory}: "
                              + "; ".join(problems) + f". Resuming from the "
                              f"checkpoint {_label(entry)} instead.",
                              UserWarning, stacklevel=3)
            self.kept = entries[i:KEEP + i]
            return tensors, entry
        raise ValueError(
            f"checkpoint_dir {self.directory} holds no usable checkpoint: "
            + "; ".join(problems) + ". Pass resume='restart' to train from scratch "
            "and replace them.")

    def _load(self, entry: dict, check: Check) -> dict[str, torch.Tensor]:
        """The tensors of ``entry``, verified (``ValueError`` says what is wrong)."""
        name = entry.get("weights")
        if (not isinstance(name, str) or Path(name).name != name
                or not name.endswith(".safetensors")):
            raise ValueError(f"it names no weights file ({name!r})")
        if not isinstance(entry.get("step"), int):
            raise ValueError("it records no step")
        tensors = read_tensors(self.directory / name)  # names the truncated file
        manifest = entry.get("tensors")
        if not isinstance(manifest, dict):
            raise ValueError("it records no tensor checksums")
        missing = sorted(set(manifest) - set(tensors))
        if missing:
            raise ValueError(f"{name} lacks the tensors {missing}")
        extra = sorted(set(tensors) - set(manifest))
        if extra:
            raise ValueError(f"{name} holds unrecorded tensors {extra}")
        for key, (dtype, shape, _) in manifest.items():
            t = tensors[key]
            if str(t.dtype) != dtype or list(t.shape) != shape:
                raise ValueError(f"{key} is {t.dtype} of shape {list(t.shape)}, "
                                 f"written as {dtype} of shape {shape}")
        check(tensors, entry)
        for key, (_, _, digest) in manifest.items():
            if _digest(tensors[key]) != digest:
                raise ValueError(f"{key} differs from the tensor written (its "
                                 "SHA-256 checksum does not match)")
        return tensors

    # ---------------------------------------------------------------- writing
    def write(self, step: int, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """Write the checkpoint of step ``step``; keep it and the one before."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"step_{step:09d}.safetensors"
        flat = {k: v.detach().to("cpu").contiguous().clone()
                for k, v in tensors.items()}
        manifest = {k: [str(t.dtype), list(t.shape), _digest(t)]
                    for k, t in flat.items()}
        atomic_write(self.directory / name, lambda tmp: _save_synced(flat, tmp))
        entry = {**copy.deepcopy(meta), "weights": name, "step": step,
                 "tensors": manifest}  # (a copy: the live history grows)
        self.kept = [entry] + [e for e in self.kept
                               if e.get("weights") != name][:KEEP - 1]
        write_json(self.directory / CHECKPOINT_JSON,
                   {"format": FORMAT, "fingerprint": self.fingerprint, **entry,
                    "previous": self.kept[1:]})
        keep = {e.get("weights") for e in self.kept}
        for old in self.directory.glob("step_*.safetensors"):
            if old.name not in keep:
                old.unlink(missing_ok=True)

    def remove_temporary_files(self) -> None:
        """Remove the temporary files of interrupted checkpoint writes."""
        for pattern in _TEMP_GLOBS:
            for path in self.directory.glob(pattern):
                if path.is_file():
                    path.unlink(missing_ok=True)


def resume_from(folder: CheckpointFolder, state: TrainState, config: TrainConfig,
                comm: Any) -> None:
    """Load into ``state`` the newest good checkpoint of its run in ``folder``.

    Only with ``config.resume == "auto"``; otherwise ``folder`` starts empty
    and its first write replaces what it holds. Every process raises the
    ``ValueError`` of `CheckpointFolder.find` together.
    """
    found, error = None, None
    if config.resume == "auto":
        try:
            found = folder.find(state.check_checkpoint)
        except ValueError as err:
            error = str(err)
    if comm.any(error is not None):  # every rank raises, none waits
        raise ValueError(error or "checkpoint_dir: another process could not "
                         "resume from it (see its error).")
    comm.check_same([-1 if found is None else found[1]["step"]],
                    "The checkpoint step found in checkpoint_dir (which must be "
                    "on a file system shared by all processes)")
    if found is not None:
        state.load_checkpoint(*found)
        if not comm.is_main:  # rank 0 holds the global metric sums
            state.acc = {k: torch.zeros_like(v) for k, v in state.acc.items()}
