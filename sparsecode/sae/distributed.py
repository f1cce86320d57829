"""Data-parallel SAE training with ``torch.distributed`` (launched by torchrun).

The scheme is "one global batch, split over the processes". Every process
(rank) is given the same data and ``random_state``; they draw the same
initialisation and the same batch order, and each global batch of
``batch_size`` rows is cut into ``world_size`` contiguous shares. Rank ``r``
reads and trains on share ``r`` only (a memmap reads only those rows), and
one all-reduce per step sums

* the gradients (each rank's loss is its batch mean times its share of the
  global batch, so the sum is the gradient of the global batch mean),
* which latents fired (so the dead-latent counters, and AuxK, agree), and
* the column sums of the batch (the global batch mean, for the pooled FVU).

Arrays and memmaps are indexed, so a rank reads only its rows; an iterable of
chunks is read in full by every rank, each keeping its share. A global batch
that does not split evenly (the last of a pass) is split as evenly as
possible and weighted exactly; one with fewer rows than ranks is skipped.

Everything after the all-reduce (parallel-gradient removal, clipping, Adam,
decoder renormalisation) then runs on identical numbers on every rank, so
training follows the one-process run at the same global batch up to
floating-point summation order. BatchTopK keeps the ``k * batch_size`` largest
activations of the *global* batch: each rank contributes its own largest
values to an all-gather (`DataParallel.global_top`). Metric sums are
all-reduced when logged, rank 0 alone prints and writes checkpoints (with
the global metric sums, so a run resumes on any number of processes), and the
weights are broadcast from rank 0 at the start and the end of training.

Faults. Before the first step of every ``fit`` and ``partial_fit`` the ranks
check that they agree on the estimator's parameters (`shared_params`: a hash
first, every rank's values only on a mismatch), so that different ``k``,
``max_iter`` or ``n_components`` raise the same ValueError on every rank
instead of training with mixed settings, hanging, or aborting in mismatched
collectives. Every collective carries ``distributed_timeout`` as its own
timeout (also the group's when sparsecode initialises it), so a rank that
stops responding makes the others raise a TimeoutError within about that
time, whoever initialised the group, and leaves them free to exit.

Why it joins torchrun jobs by itself and does not use
`DistributedDataParallel`: docs/design.md, section 4.

`Local` is the one-process case: every hook is the identity, so code that
calls them trains bit-identically to code that does not.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import warnings
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from ._collectives import Bounded, check_params, shared_params

__all__ = ["DataParallel", "Local", "get_comm", "launched_by_torchrun",
           "shared_params"]

_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """Whether the torchrun environment of a job of several processes is set.

    Returns
    -------
    bool
        True when ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``
        are all set and ``WORLD_SIZE > 1``.

    Examples
    --------
    >>> from unittest import mock
    >>> env = {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "localhost",
    ...        "MASTER_PORT": "29500"}
    >>> with mock.patch.dict(os.environ, env):
    ...     launched_by_torchrun()
    True
    """
    return (all(name in os.environ for name in _TORCHRUN_ENV)
            and int(os.environ["WORLD_SIZE"]) > 1)


def get_comm(distributed: bool | str, device: torch.device, timeout: float = 300.0,
             params: dict[str, Any] | None = None
             ) -> tuple[Local | DataParallel, torch.device]:
    """The communicator of a ``fit`` and the device of this process.

    Parameters
    ----------
    distributed : {"auto", True, False}
        ``"auto"``: data-parallel when ``torch.distributed`` is initialised
        with several processes or the process was started by torchrun (the
        default process group is then initialised here: NCCL for CUDA, gloo
        for the CPU). True: the same, but an error when neither holds.
        False: one process, whatever the environment.
    device : torch.device
        The resolved estimator device; a CUDA device without an index becomes
        ``cuda:LOCAL_RANK``.
    timeout : float, default=300.0
        Seconds every collective may wait for the other ranks (the
        estimator's ``distributed_timeout``).
    params : dict, default=None
        The estimator's ``get_params()``: when given, the ranks must agree
        on them first (`DataParallel.check_params`: a ValueError on every
        rank naming those that differ).

    Returns
    -------
    comm : Local or DataParallel
    device : torch.device

    Examples
    --------
    >>> comm, device = get_comm(False, torch.device("cpu"))
    >>> type(comm).__name__, device, comm.world_size
    ('Local', device(type='cpu'), 1)
    """
    required = distributed != "auto"
    if required and not distributed:
        return Local(), device
    if not (dist.is_available() and dist.is_initialized()):
        if not launched_by_torchrun():
            if required:
                raise ValueError(
                    "distributed=True, but torch.distributed is not initialised "
                    "and the torchrun environment (RANK, WORLD_SIZE, MASTER_ADDR, "
                    "MASTER_PORT) is not set; launch the script with `torchrun "
                    "--nproc_per_node=N script.py`.")
            return Local(), device
        device = _rank_device(device)
        _init_process_group(device, timeout)
    if dist.get_world_size() == 1:
        return Local(), device
    device = _rank_device(device)
    if device.type == "cpu" and dist.get_backend() == "nccl":
        raise ValueError("The process group uses NCCL, which cannot reduce CPU "
                         "tensors; use a CUDA device or a gloo process group.")
    comm = DataParallel(device, timeout)
    if params is not None:
        comm.check_params(params)
    return comm, device


def _rank_device(device: torch.device) -> torch.device:
    if device.type == "cuda" and device.index is None:
        rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()
                                  if dist.is_initialized() else 0))
        return torch.device("cuda", rank % torch.cuda.device_count())
    return device


def _init_process_group(device: torch.device, timeout: float) -> None:
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            timeout=datetime.timedelta(seconds=timeout))
    atexit.register(_destroy)


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class Local:
    """One process: every hook of the training loop is the identity.

    Examples
    --------
    >>> comm = Local()
    >>> comm.rank, comm.world_size, comm.broadcast_floats([1.5]), comm.any(0)
    (0, 1, [1.5], False)
    """

    rank = 0
    world_size = 1
    is_main = True

    def check_params(self, params: dict[str, Any]) -> None:
        """Nothing to compare with one process."""

    def check_batch_size(self, batch_size: int) -> None:
        """Nothing to check with one process."""

    def check_same(self, values: list[float], what: str) -> None:
        """Nothing to compare with one process."""

    def check_data(self, source: Any) -> None:
        """Nothing to compare with one process."""

    def broadcast_floats(self, values: list[float]) -> list[float]:
        """``values`` (rank 0's values when distributed)."""
        return values

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Nothing to broadcast with one process."""

    def barrier(self) -> None:
        """Nothing to wait for with one process."""

    def attach(self, model: torch.nn.Module) -> contextlib.AbstractContextManager:
        """Context in which batch-coupled activations see the global batch."""
        return contextlib.nullcontext()

    def batches(self, source: Any, gen: torch.Generator, start: int = 0
                ) -> Iterator[torch.Tensor]:
        """The batches of one pass of ``source`` (this rank's shares)."""
        return source.batches(gen, start=start)

    def weigh(self, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss terms as this rank's part of the global batch mean."""
        return terms

    def reduce_step(self, params: list[torch.Tensor], fired: torch.Tensor,
                    x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Global gradients, fired latents, batch mean and batch size."""
        return fired, x.float().mean(0), x.shape[0]

    def sum_dict(self, acc: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Metric sums over all ranks."""
        return acc

    def any(self, flag: Any) -> bool:
        """Whether ``flag`` is true on any rank."""
        return bool(flag)


class DataParallel(Local):
    """Several processes of the default process group; see the module docstring.

    Parameters
    ----------
    device : torch.device
        Where this rank trains (and where collectives run).
    timeout : float, default=300.0
        Seconds each collective may wait for the other ranks.

    Examples
    --------
    A one-process gloo group (a real job has several, started by torchrun):

    >>> import tempfile
    >>> url = "file://" + os.path.join(tempfile.mkdtemp(), "store")
    >>> dist.init_process_group("gloo", init_method=url, rank=0, world_size=1)
    >>> comm = DataParallel(torch.device("cpu"), timeout=30)
    >>> comm.world_size, comm.is_main, comm.any(True)
    (1, True, True)
    >>> dist.destroy_process_group()
    """

    def __init__(self, device: torch.device, timeout: float = 300.0) -> None:
        self.device, self.coll = device, Bounded(device, timeout)
        self.rank, self.world_size = self.coll.rank, self.coll.world_size
        self.is_main = self.rank == 0
        self.global_rows = self.local_rows = 0
        self._warned = False

    # ------------------------------------------------------------- set-up
    def check_params(self, params: dict[str, Any]) -> None:
        """Raise (on every rank) a ValueError naming the parameters that differ.

        ``params`` is ``estimator.get_params()``; see `shared_params`.
        """
        check_params(self.coll, params)

    def check_batch_size(self, batch_size: int) -> None:
        """Raise unless ``batch_size`` splits evenly over the ranks."""
        if batch_size % self.world_size:
            raise ValueError(
                f"batch_size={batch_size} must be divisible by the number of "
                f"processes (world size {self.world_size}): batch_size is the "
                f"global batch, of which each process takes batch_size / "
                f"{self.world_size} rows.")

    def check_same(self, values: list[float], what: str) -> None:
        """Raise (on every rank) unless ``values`` are equal on all ranks."""
        mine = torch.tensor(values, dtype=torch.float64, device=self.device)
        every = self.coll.all_gather(mine, "a consistency check")
        if not all(torch.equal(every[0], v) for v in every[1:]):
            raise ValueError(
                f"{what} differs between the {self.world_size} processes: "
                f"{[v.tolist() for v in every]}.")

    def check_data(self, source: Any) -> None:
        """Raise unless every rank was given the same data (shape, first rows)."""
        summary = [source.n_features, source.n_samples or -1,
                   float(source.sample(256).double().sum())]
        self.check_same(summary, "The training data (every process must call fit "
                        "with the same X; distributed=False trains one model "
                        "per process)")

    def broadcast_floats(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        self.coll.broadcast(t, "the broadcast of the seeds")
        return t.tolist()

    @torch.no_grad()
    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank."""
        for t in [*module.parameters(), *module.buffers()]:
            self.coll.broadcast(t.data, "the broadcast of the weights")

    def barrier(self) -> None:
        self.coll.all_reduce(torch.zeros(1, device=self.device), "a barrier")

    @contextlib.contextmanager
    def attach(self, model: torch.nn.Module) -> Iterator[None]:
        act = model.activation
        hooked = hasattr(type(act), "global_top")
        if hooked:
            act.global_top = self.global_top
        try:
            yield
        finally:
            if hooked:
                del act.global_top

    # ----------------------------------------------------------- batches
    def _share(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of a global batch (of rows or indices)."""
        n = self.global_rows = rows.shape[0]
        r, w = self.rank, self.world_size
        lo, hi = n * r // w, n * (r + 1) // w
        self.local_rows = hi - lo
        return rows[lo:hi]

    def batches(self, source: Any, gen: torch.Generator, start: int = 0
                ) -> Iterator[torch.Tensor]:
        for local in source.batches(gen, start=start, shard=self._share):
            if self.global_rows < self.world_size:  # some rank would get no row
                if self.is_main and not self._warned:
                    warnings.warn(
                        f"A batch of {self.global_rows} rows (the last of a pass) "
                        f"cannot be split over {self.world_size} processes; it is "
                        "skipped.", UserWarning, stacklevel=2)
                self._warned = True
                continue
            yield local

    # -------------------------------------------------------------- steps
    def weigh(self, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        w = self.local_rows / self.global_rows
        return {name: val * w for name, val in terms.items()}

    @torch.no_grad()
    def reduce_step(self, params: list[torch.Tensor], fired: torch.Tensor,
                    x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """One all-reduce: gradients, fired latents and column sums of x."""
        grads = [p.grad for p in params if p.grad is not None]
        dtype = grads[0].dtype if grads else x.dtype
        parts = [g.reshape(-1) for g in grads] + [fired.to(dtype), x.sum(0)]
        flat = torch.cat([p.to(dtype) for p in parts])
        self.coll.all_reduce(flat, "the gradient all-reduce of a training step")
        pos = 0
        for g in grads:
            g.copy_(flat[pos:pos + g.numel()].view_as(g))
            pos += g.numel()
        fired = flat[pos:pos + fired.numel()] > 0
        center = (flat[pos + fired.numel():] / self.global_rows).float()
        return fired, center, self.global_rows

    def sum_dict(self, acc: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not acc:
            return acc
        names = sorted(acc)  # the same order on every rank
        total = torch.stack([acc[k] for k in names])
        self.coll.all_reduce(total, "the all-reduce of the metrics")
        summed = dict(zip(names, total.unbind(), strict=True))
        return {k: summed[k] for k in acc}

    def any(self, flag: Any) -> bool:
        t = torch.tensor([float(bool(flag))], device=self.device)
        self.coll.all_reduce(t, "the stop vote of the callbacks", op=dist.ReduceOp.MAX)
        return bool(t.item())

    @torch.no_grad()
    def global_top(self, values: torch.Tensor, k: int) -> torch.Tensor:
        """The ``k * global_rows`` largest of all ranks' ``values`` (same on all).

        Each rank sends its own largest ones (padded with -1, below any ReLU
        value) to an all-gather; the global largest are among them.
        """
        n_keep = k * self.global_rows
        if values.dtype not in (torch.float32, torch.float64):
            values = values.float()
        mine = values.topk(min(n_keep, values.numel()), sorted=False).values
        if mine.numel() < n_keep:
            mine = torch.cat([mine, mine.new_full((n_keep - mine.numel(),), -1.0)])
        every = self.coll.all_gather(mine, "the BatchTopK all-gather")
        return torch.cat(every).topk(n_keep, sorted=False).values
