"""Out-of-core learning and coding: private memory on memmaps, shuffled batches
read through an index permutation, chunked coding under joblib backends.

The memory tests run the work in a child process (``memory_probe.py``) and
sample its ``RssAnon`` from here; the bounds are the formulas of the README
section "Memory bounds" (bytes of private memory above the process's level
before ``fit``), and each is asserted to be well below the array's size.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch

from sparsecode import MiniBatchDictionaryLearning, SparseCoder, sparse_encode
from sparsecode.dictionary.coding import CHUNK_BYTES, MAX_ROWS, chunk_rows

_spec = importlib.util.spec_from_file_location(
    "memory_probe", Path(__file__).with_name("memory_probe.py"))
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)

MiB = 2**20
SLACK = 48 * MiB  # allocator arenas, lazily imported modules, thread stacks
N, D = 1_638_400, 64  # 400 MiB of float32
B = 4  # float32


def minibatch_bound(n: int, d: int, k: int, batch_size: int, b: int = B) -> int:
    """Private memory of `MiniBatchDictionaryLearning.fit` on an (n, d) memmap."""
    init = (b * d * 50_000 if n > 50_000 else 0) + 48 * d * d  # SVD subset, eigh
    s = min(k, d + 8)  # homotopy slots
    step = batch_size * (b * (2 * d + 14 * k) + 24 * s * s)
    return SLACK + init + 16 * n + b * (6 * k * k + 4 * d * k) + step


def sae_bound(n: int, d: int, m: int, batch_size: int, b: int = B) -> int:
    """Private memory of `SparseAutoencoder.fit` on an (n, d) memmap."""
    scale = (b + 1 + 8) * d * min(n, 100_000)  # rows read to estimate the scale
    return SLACK + scale + 16 * n + 8 * b * m * d + 24 * b * batch_size * (m + d)


def encode_bound(n: int, d: int, k: int, n_jobs: int = 1, b: int = B) -> int:
    """Private memory of `sparse_encode` or ``transform`` (omp) on an (n, d)
    memmap: the result and ``n_jobs`` chunks."""
    rows = chunk_rows("omp", d, k, b)
    return SLACK + b * n * k + n_jobs * rows * (b * (d + 12 * k))


@pytest.fixture(scope="module")
def big_memmap(tmp_path_factory) -> Path:
    """A 400 MiB float32 file of N x D standard normal numbers."""
    path = tmp_path_factory.mktemp("ooc") / "x.f32"
    X = np.memmap(path, dtype=np.float32, mode="w+", shape=(N, D))
    rng = np.random.default_rng(0)
    for lo in range(0, N, 200_000):
        X[lo:lo + 200_000] = rng.standard_normal((min(200_000, N - lo), D),
                                                 dtype=np.float32)
    X.flush()
    del X
    return path


def _private_peak(job: str, path: Path, n: int, d: int, opts: dict) -> dict:
    res = probe.measure(job, path, n, d, opts)
    res["delta"] = res["peak"] - res["baseline"]
    return res


@pytest.mark.parametrize("shuffle", [True, False])
def test_minibatch_fit_on_memmap_stays_under_bound(big_memmap, shuffle):
    k, bs = 16, 512
    res = _private_peak("minibatch", big_memmap, N, D, {
        "n_components": k, "batch_size": bs, "shuffle": shuffle,
        "max_no_improvement": 0, "random_state": 0})
    bound = minibatch_bound(N, D, k, bs)
    assert bound < N * D * B / 4  # the bound itself is well below the array
    assert res["samples"] > 100 and res["result"]["n_steps"] == 101
    assert res["delta"] < bound, (res["delta"] / MiB, bound / MiB)


def test_sae_fit_on_memmap_stays_under_bound(big_memmap):
    m, bs = 256, 1024
    res = _private_peak("sae", big_memmap, N, D, {
        "n_components": m, "batch_size": bs, "stop_after": 300, "log_every": 10,
        "random_state": 0})
    bound = sae_bound(N, D, m, bs)
    assert bound < N * D * B / 2
    assert res["samples"] > 100 and res["result"]["n_steps"] >= 30
    assert res["delta"] < bound, (res["delta"] / MiB, bound / MiB)


def test_sparse_encode_on_memmap_stays_under_bound(big_memmap):
    """Chunks of bounded size, written into the result: no concatenation and
    no whole-input solver buffers (K-wide, 12 per row for omp)."""
    n, k = 10_000, 1024
    res = _private_peak("encode", big_memmap, n, D, {
        "n_components": k, "algorithm": "omp", "n_nonzero_coefs": 2})
    assert res["result"]["shape"] == [n, k]
    bound = encode_bound(n, D, k)
    assert bound < 12 * n * k * B / 2  # half the old solver buffers, at least
    assert res["delta"] < bound, (res["delta"] / MiB, bound / MiB)


def test_sparse_coder_transform_on_read_only_memmap_stays_under_bound(big_memmap):
    """The result and one chunk: neither a copy of X nor of the result."""
    k = 16
    res = _private_peak("coder", big_memmap, N, D, {
        "n_components": k, "transform_algorithm": "omp",
        "transform_n_nonzero_coefs": 2})
    assert res["result"]["shape"] == [N, k]
    bound = encode_bound(N, D, k)
    assert bound < 2 * N * k * B  # less than a second copy of the result
    assert res["delta"] < bound, (res["delta"] / MiB, bound / MiB)


# ------------------------------------------------------------------- results
def _data(n=2000, d=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32)


def _as_memmap(X: np.ndarray, path: Path) -> np.memmap:
    mm = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    return np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)


def test_shuffled_batches_are_those_of_a_shuffled_copy(tmp_path):
    """With ``shuffle``, the batches are rows ``perm[lo:lo + bs]`` of X in the
    permutation's order: the same fit as before, when X was copied in
    shuffled order (emulated: ``shuffle=False`` on ``X[perm]``, the same
    ``dict_init``, no atom resampled), and a read-only memmap gives the same
    fit as the array in memory."""
    X = _data()
    D0 = _data(8, 16, seed=1)
    D0 /= np.linalg.norm(D0, axis=1, keepdims=True)
    kw = dict(n_components=8, alpha=0.1, batch_size=64, max_iter=2, tol=0,
              max_no_improvement=None, dict_init=D0, random_state=0, device="cpu")
    seed = int(np.random.RandomState(0).randint(np.iinfo(np.int32).max))
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))
    old = MiniBatchDictionaryLearning(shuffle=False, **kw).fit(X[perm.numpy()])
    new = MiniBatchDictionaryLearning(shuffle=True, **kw).fit(X)
    np.testing.assert_array_equal(new.components_, old.components_)
    mm = _as_memmap(X, tmp_path / "x.f32")
    for shuffle in (True, False):
        ref = MiniBatchDictionaryLearning(shuffle=shuffle, **kw).fit(np.array(mm))
        got = MiniBatchDictionaryLearning(shuffle=shuffle, **kw).fit(mm)
        np.testing.assert_array_equal(got.components_, ref.components_)
        assert got.n_steps_ == ref.n_steps_ == 2 * 32
    with pytest.raises(ValueError):  # the memmap is still read-only
        mm[0, 0] = 1.0


def test_minibatch_default_init_on_memmap_equals_in_memory(tmp_path):
    """The SVD initialisation (on a random subset of rows) reads a memmap as
    it reads the array."""
    X = _data(3000, 12, seed=2)
    mm = _as_memmap(X, tmp_path / "x.f32")
    kw = dict(n_components=6, batch_size=100, max_iter=1, random_state=3,
              device="cpu")
    ref = MiniBatchDictionaryLearning(**kw).fit(np.array(mm))
    got = MiniBatchDictionaryLearning(**kw).fit(mm)
    np.testing.assert_array_equal(got.components_, ref.components_)


def test_minibatch_on_offset_memmap_view_equals_in_memory(tmp_path):
    """A read-only memmap past a file header, sliced, is read where it lies."""
    X = _data(1500, 9, seed=8)
    path = tmp_path / "x.bin"
    path.write_bytes(b"header" * 17 + X.tobytes())
    mm = np.memmap(path, dtype=np.float32, mode="r", offset=102, shape=X.shape)
    kw = dict(n_components=5, batch_size=50, max_iter=1, random_state=0,
              device="cpu")
    for view in (mm, mm[37:1400]):
        ref = MiniBatchDictionaryLearning(**kw).fit(np.array(view))
        got = MiniBatchDictionaryLearning(**kw).fit(view)
        np.testing.assert_array_equal(got.components_, ref.components_)
    assert path.read_bytes()[102:] == X.tobytes()  # the file is untouched


def test_chunk_rows_bound_the_working_memory():
    """Full chunks for small problems; fewer rows as the per-row estimate
    ``b (d + c K) + m s^2`` grows, its total within the budget."""
    for alg in ("lasso_lars", "lars", "omp", "fista", "threshold"):
        assert chunk_rows(alg, 64, 8, 4) == MAX_ROWS["cpu"]
        rows = chunk_rows(alg, 64, 8192, 4)
        assert 1 <= rows < MAX_ROWS["cpu"]
        assert rows * 4 * (64 + 5 * 8192) <= CHUNK_BYTES["cpu"]
    s = 64 + 8  # the homotopy's slots: the lasso support is at most d
    rows = chunk_rows("lasso_lars", 64, 4096, 4)
    assert rows * (4 * (64 + 12 * 4096) + 24 * s * s) <= CHUNK_BYTES["cpu"]
    assert chunk_rows("lasso_lars", 512, 4096, 8) < rows  # d and b count too
    assert chunk_rows("omp", 64, 8, 4, device="cuda") == MAX_ROWS["other"]


_ALGORITHMS = [("lasso_lars", {}), ("omp", {"n_nonzero_coefs": 3}),
               ("fista", {"max_iter": 2000}), ("threshold", {})]


@pytest.mark.parametrize("backend", ["threading", "loky"])
def test_sparse_encode_backends_equal_single_job(backend, tmp_path):
    """Chunks do not depend on n_jobs or the backend: identical codes (fista's
    stopping rule sums the duality gaps of a chunk, so two chunks instead of
    one would stop elsewhere)."""
    n, d, k = 2500, 16, 24
    X = _data(n, d, seed=4)
    V = _data(k, d, seed=5)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    assert chunk_rows("lasso_lars", d, k, 4) < n / 2  # several chunks
    mm = _as_memmap(X, tmp_path / "x.f32")
    for alg, kw in _ALGORITHMS:
        ref = sparse_encode(X, V, algorithm=alg, alpha=0.2, **kw)
        with joblib.parallel_config(backend=backend, n_jobs=2):
            got = sparse_encode(X, V, algorithm=alg, alpha=0.2, **kw)
            got_mm = sparse_encode(mm, V, algorithm=alg, alpha=0.2, **kw)
            got_t = sparse_encode(torch.from_numpy(X), torch.from_numpy(V),
                                  algorithm=alg, alpha=0.2, **kw)
        with joblib.parallel_config(backend=backend):
            got_jobs = sparse_encode(X, V, algorithm=alg, alpha=0.2, n_jobs=2, **kw)
        for out in (got, got_mm, got_t.numpy(), got_jobs):
            np.testing.assert_array_equal(out, ref, err_msg=alg)
        assert np.count_nonzero(ref) > 0


@pytest.mark.parametrize("backend", ["threading", "loky"])
def test_transform_backends_equal_single_job(backend):
    X = _data(2500, 16, seed=4)
    V = _data(24, 16, seed=5)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    coder = SparseCoder(V, transform_algorithm="fista", transform_alpha=0.2,
                        transform_max_iter=2000, device="cpu")
    ref = coder.transform(X)
    with joblib.parallel_config(backend=backend, n_jobs=2):
        np.testing.assert_array_equal(coder.transform(X), ref)
    coder.set_params(n_jobs=2)
    with joblib.parallel_config(backend=backend):
        np.testing.assert_array_equal(coder.transform(X), ref)
