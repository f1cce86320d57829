"""Collectives bounded by a timeout, and the agreement of the ranks' parameters.

`Bounded` runs the collectives of `sparsecode.sae.distributed.DataParallel`
on the default process group with ``distributed_timeout`` as each one's own
timeout (``AllreduceOptions.timeout``), whoever initialised the group: the
backend itself then fails the operation when a rank stops responding, which
frees the live ranks (a ``work.wait(timeout)`` would raise, but leave the
backend's thread blocked, and the process unable to exit, for the group's
own timeout, 30 minutes by default for gloo). With NCCL the timeout is the
watchdog's, which by default ends the process with its own error. Only
all-reduce and broadcast are used; an all-gather is an all-reduce of zeros
but for one slot per rank, which is exact.

`check_params` makes every rank raise the same ValueError when the ranks'
`shared_params` differ.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["Bounded", "check_params", "shared_params"]

# process-local parameters: they may differ between the ranks
_LOCAL_PARAMS = ("verbose", "device", "distributed", "distributed_timeout",
                 "random_state")
_GIVEN_PARAMS = ("callback", "checkpoint_dir")  # compared as given or not


class Bounded:
    """The default group's collectives, each failing after ``timeout`` seconds.

    Parameters
    ----------
    device : torch.device
        Where the tensors of the collectives live.
    timeout : float
        Seconds a collective may wait for the other ranks.
    """

    def __init__(self, device: torch.device, timeout: float) -> None:
        self.device, self.timeout = device, float(timeout)
        self.group = dist.group.WORLD
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def _run(self, start: Callable[[], Any], what: str) -> None:
        """Start a collective and wait for it (the backend fails it in time).

        Errors of the wait (a peer that timed out, exited or reset the
        connection) are re-raised naming ``what``; those of the start (bad
        arguments) as they are.
        """
        work = start()
        if work is None:  # (a backend that synchronised already)
            return
        try:
            work.wait()
        except RuntimeError as exc:  # (DistBackendError is one)
            where = f"Rank {self.rank} of {self.world_size}: {what}"
            text = str(exc)
            if "timed out" in text.lower() or "timeout" in text.lower():
                raise TimeoutError(
                    f"{where} waited more than distributed_timeout="
                    f"{self.timeout:g} s for the other processes: at least one "
                    "of them stopped responding (stopped, hung, or far slower "
                    "than this one). The process group cannot be used after "
                    "an incomplete collective; restart the job (with a larger "
                    "distributed_timeout if the processes are merely slow)."
                ) from exc
            first = text.splitlines()[0] if text else type(exc).__name__
            raise RuntimeError(f"{where} failed: another process stopped "
                               f"responding or exited ({first}).") from exc

    def all_reduce(self, t: torch.Tensor, what: str,
                   op: Any = dist.ReduceOp.SUM) -> None:
        """Reduce ``t`` in place over the ranks; ``what`` names it in errors."""
        opts = dist.AllreduceOptions()
        opts.reduceOp, opts.asyncOp = op, False
        opts.timeout = datetime.timedelta(seconds=self.timeout)
        self._run(lambda: self.group.allreduce([t], opts), what)

    def all_gather(self, t: torch.Tensor, what: str) -> list[torch.Tensor]:
        """Every rank's ``t`` (of the same shape on all ranks)."""
        slots = t.new_zeros((self.world_size, *t.shape))
        slots[self.rank] = t
        self.all_reduce(slots, what)
        return list(slots.unbind())

    def broadcast(self, t: torch.Tensor, what: str) -> None:
        """Copy rank 0's ``t`` into ``t`` on every rank."""
        opts = dist.BroadcastOptions()
        opts.rootRank, opts.rootTensor, opts.asyncOp = 0, 0, False
        opts.timeout = datetime.timedelta(seconds=self.timeout)
        self._run(lambda: self.group.broadcast([t], opts), what)


def shared_params(params: dict[str, Any]) -> dict[str, str]:
    """The parameters all ranks must agree on, as text comparable across processes.

    Every parameter except the process-local ones: ``verbose`` (rank 0 alone
    reports), ``device`` (each rank has its own), ``distributed``,
    ``distributed_timeout`` (each rank's bounds its own waits) and
    ``random_state`` (rank 0's draws are broadcast to all). ``callback`` and
    ``checkpoint_dir`` are compared as given or not: their values may differ
    (a path on another machine), but a callback's stop vote and a
    checkpoint's metric sums are collectives that every rank must join.

    Parameters
    ----------
    params : dict
        ``estimator.get_params()``.

    Returns
    -------
    dict
        Parameter name to the text of its value, in name order.
    """
    out = {}
    for name, value in sorted(params.items()):
        if name in _GIVEN_PARAMS:
            out[name] = "None" if value is None else "given"
        elif name not in _LOCAL_PARAMS:
            out[name] = _text(value)
    return out


def _text(value: Any) -> str:
    """``repr`` with dictionaries in key order (equal values, equal text)."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: repr(kv[0]))
        return "{" + ", ".join(f"{k!r}: {_text(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        inner = ", ".join(map(_text, value))
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    return repr(value)


def check_params(coll: Bounded, params: dict[str, Any]) -> None:
    """Raise on every rank a ValueError naming the parameters that differ.

    One all-reduce of a hash of `shared_params`; only on a mismatch are
    every rank's values gathered, so that every rank can name them.

    Parameters
    ----------
    coll : Bounded
    params : dict
        ``estimator.get_params()``.
    """
    blob = json.dumps(shared_params(params)).encode()
    h = int.from_bytes(hashlib.sha256(blob).digest()[:7], "big")
    t = torch.tensor([h, -h], dtype=torch.int64, device=coll.device)
    coll.all_reduce(t, "the parameter check", op=dist.ReduceOp.MAX)
    if int(t[0]) == -int(t[1]):  # max == min: one hash on every rank
        return
    n = torch.tensor([len(blob)], dtype=torch.int64, device=coll.device)
    data = torch.zeros(int(max(coll.all_gather(n, "the parameter check"))),
                       dtype=torch.int64, device=coll.device)
    data[:len(blob)] = torch.tensor(list(blob), dtype=torch.int64)
    every = [json.loads(bytes(v[v > 0].tolist()).decode())
             for v in coll.all_gather(data, "the parameter check")]
    diff = []
    for name in sorted({k for p in every for k in p}):
        values = [p.get(name, "(absent)") for p in every]
        if len(set(values)) > 1:
            diff.append(f"{name}: " + ", ".join(
                f"rank {r}: {v}" for r, v in enumerate(values)))
    raise ValueError(
        f"The estimator parameters differ between the {coll.world_size} "
        "processes (every process must call fit with the same parameters): "
        + "; ".join(diff) + ".")
