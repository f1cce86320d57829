"""Data-parallel SAE training under torchrun (2 gloo processes on the CPU).

One torchrun launch (``tests/sae/_ddp_worker.py``) fits topk, relu and batchtopk
SAEs on 2 processes; each must equal the one-process fit at the same global
batch. The data have 609 rows, so the last batch of every pass (33 rows)
splits unevenly (16 + 17); the 48 latents with k=2 and a one-batch dead window
keep AuxK busy (dead counters must agree across processes); the inputs are an
array, a memmap (each process reads only its rows) and a re-iterable of chunks.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sparsecode
from sparsecode import SparseAutoencoder
from sparsecode.data.toy import make_superposition
from sparsecode.sae.distributed import Local, get_comm

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with gloo is not available")

WORKER = Path(__file__).with_name("_ddp_worker.py")
BASE = dict(n_components=48, k=2, max_iter=4, batch_size=64, log_every=5,
            dead_window=64, random_state=0, device="cpu", dtype="float64")
SPEC = {
    "topk": dict(BASE, activation="topk", input="array"),
    "relu": dict(BASE, activation="relu", input="memmap"),
    "batchtopk": dict(BASE, activation="batchtopk", input="iterable",
                      checkpoint_every=7),
}


def _worker_module():
    spec = importlib.util.spec_from_file_location("_ddp_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """Run the worker on 2 processes; the directory holding its results."""
    out = tmp_path_factory.mktemp("ddp")
    X, _ = make_superposition(609, 16, 24, mean_active=3, random_state=0)
    np.save(out / "x.npy", X)
    spec = {name: dict(params) for name, params in SPEC.items()}
    spec["batchtopk"]["checkpoint_dir"] = str(out / "ckpt")
    (out / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node=2", str(WORKER), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _one_process(out, name, **extra):
    params = {**SPEC[name], **extra}
    kind = params.pop("input")
    X = np.load(out / "x.npy")
    data = _worker_module().training_input(X, kind, str(out / "x.npy"))
    return SparseAutoencoder(**params).fit(data)


def _weights(est):
    return {k: v.clone() for k, v in est.module_.state_dict().items()}


@pytest.mark.parametrize("name", list(SPEC))
def test_two_processes_equal_one_process(ddp_run, name):
    one = _one_process(ddp_run, name)
    rank0 = sparsecode.load(ddp_run / f"{name}_rank0")
    rank1 = sparsecode.load(ddp_run / f"{name}_rank1")
    w1, w_rank0, w_rank1 = _weights(one), _weights(rank0), _weights(rank1)
    assert w1.keys() == w_rank0.keys()
    for key in w1:  # parameters and buffers (the batchtopk threshold)
        torch.testing.assert_close(w_rank0[key], w1[key], rtol=0, atol=1e-8)
        assert torch.equal(w_rank0[key], w_rank1[key])
    assert rank0.n_steps_ == one.n_steps_ == 40
    assert len(rank0.history_) == len(one.history_)
    for got, want in zip(rank0.history_, one.history_, strict=True):
        assert got["samples"] == want["samples"]
        for key in ("loss", "fvu", "l0", "dead_fraction"):
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6)
    if name != "relu":  # AuxK was in use: latents died and dead counters agreed
        assert max(h["dead_fraction"] for h in one.history_) > 0
        assert max(h["auxk"] for h in one.history_) > 0


def test_checkpoint_of_two_processes_resumes_in_one(ddp_run):
    ckpt = ddp_run / "ckpt"
    names = sorted(p.name for p in ckpt.iterdir())  # (older ones may be kept)
    assert names[0] == "checkpoint.json" and names[-1] == "step_000000040.safetensors"
    assert all(n.startswith("step_") and n.endswith(".safetensors")
               for n in names[1:])
    resumed = _one_process(ddp_run, "batchtopk", checkpoint_dir=str(ckpt))
    rank0 = sparsecode.load(ddp_run / "batchtopk_rank0")
    for key, val in _weights(rank0).items():
        assert torch.equal(_weights(resumed)[key], val)


def test_batch_size_not_divisible_and_different_data_raise(ddp_run):
    for rank in (0, 1):  # on every rank, so that none waits for the others
        errors = json.loads((ddp_run / f"errors_rank{rank}.json").read_text())
        assert "batch_size=63 must be divisible" in errors["batch_size"]
        assert "world size 2" in errors["batch_size"]
        assert "training data" in errors["data"] and "differs" in errors["data"]


def test_one_process_without_torchrun():
    assert isinstance(get_comm("auto", torch.device("cpu"))[0], Local)
    X, _ = make_superposition(100, 8, 8, random_state=0)
    with pytest.raises(ValueError, match="torchrun"):
        SparseAutoencoder(distributed=True, device="cpu").fit(X)
