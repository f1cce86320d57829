"""The block-coordinate-descent atom update: numpy (CPU) and torch loops agree
with the textbook update of Mairal et al. (2009) / scikit-learn."""

import numpy as np
import pytest
import torch

from sparsecode.dictionary.update import bcd_numpy, bcd_pass, bcd_torch


def _stats(seed=0, K=12, d=5, n=40):
    rng = np.random.RandomState(seed)
    U = rng.randn(n, K) * (rng.rand(n, K) < 0.3)
    U[:, [3, 7]] = 0.0  # two unused atoms: resampled from the candidates
    X = rng.randn(n, d)
    V = rng.randn(K, d)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    return V, U.T @ U / n, X.T @ U / n, rng.randn(K, d)


def _reference(V, A, B, candidates, positive):
    """sklearn's _update_dict loop, written out."""
    V = V.copy()
    for k in range(V.shape[0]):
        if A[k, k] <= 1e-6:
            V[k] = candidates[k]
        else:
            V[k] += (B[:, k] - A[k] @ V) / A[k, k]
        if positive:
            np.clip(V[k], 0, None, out=V[k])
        V[k] /= max(np.linalg.norm(V[k]), 1)
    return V


@pytest.mark.parametrize("positive", [False, True])
def test_bcd_pass_matches_the_reference_update(positive):
    V, A, B, cand = _stats()
    ref = _reference(V, A, B, cand, positive)
    Vt = torch.tensor(V)
    unused = bcd_pass(Vt, torch.tensor(A), torch.tensor(B), torch.tensor(cand),
                       positive)
    np.testing.assert_allclose(Vt.numpy(), ref, atol=1e-12)
    assert unused.nonzero().flatten().tolist() == [3, 7]
    assert (np.linalg.norm(ref, axis=1) <= 1 + 1e-12).all()


@pytest.mark.parametrize("positive", [False, True])
def test_numpy_and_torch_loops_agree(positive):
    """The CPU fast path and the device path compute the same pass."""
    V, A, B, cand = _stats(seed=1)
    diag = np.diagonal(A)
    safe = np.where(diag > 1e-6, diag, 1.0)
    M = np.eye(len(A)) - A / safe[:, None]
    B_rows = np.ascontiguousarray((B / safe).T)
    unused = [bool(a <= 1e-6) for a in diag]
    V_np = V.copy()
    bcd_numpy(V_np, M, B_rows, cand, unused, positive)
    V_t = torch.tensor(V)
    bcd_torch(V_t, torch.tensor(M), torch.tensor(B_rows), torch.tensor(cand),
               unused, positive)
    np.testing.assert_allclose(V_t.numpy(), V_np, atol=1e-12)
    assert not np.allclose(V_np, V)  # the pass moved the atoms


def test_svd_init_from_the_gram_matrix_matches_the_svd(china_patches):
    """The online estimator's initialisation (eigenvectors of X^T X) gives the
    SVD's atoms, signs included, padded with zero atoms."""
    from sparsecode.dictionary.update import svd_init

    X = torch.tensor(china_patches)
    _, ref = svd_init(X, 100)
    codes, atoms = svd_init(X, 100, need_codes=False)
    assert codes.numel() == 0 and atoms.shape == (100, 64)
    torch.testing.assert_close(atoms, ref, atol=1e-8 * float(ref.abs().max()), rtol=0)
    assert (atoms[64:] == 0).all()
