"""The batched torch solvers against scikit-learn's per-sample solvers."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import sparse_encode as sk_encode
from sklearn.exceptions import ConvergenceWarning

from sparsecode import solvers, sparse_encode


def _problem(n=40, k=12, d=8, seed=0):
    rng = np.random.RandomState(seed)
    V = rng.randn(k, d)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    X = 2 * rng.randn(n, d)
    return X, V


def _objective(X, V, U, alpha):
    return 0.5 * ((X - U @ V) ** 2).sum() + alpha * np.abs(U).sum()


def _gram(X, V):
    Xt, Vt = torch.as_tensor(X), torch.as_tensor(V)
    return Vt @ Vt.T, Xt @ Vt.T, (Xt * Xt).sum(1)


@pytest.mark.parametrize("positive", [False, True])
def test_lasso_lars_matches_sklearn_codes(positive):
    X, V = _problem()
    # sklearn's positive LassoLars stops slightly short of the optimum on some rows;
    # its coordinate descent, run to convergence, is the exact reference there.
    algorithm = "lasso_cd" if positive else "lasso_lars"
    ref = sk_encode(X, V, algorithm=algorithm, alpha=0.3, positive=positive,
                    max_iter=100_000)
    G, C, _ = _gram(X, V)
    ours = solvers.lasso_lars(G, C, 0.3, positive=positive)
    assert ours.converged
    np.testing.assert_allclose(ours.codes.numpy(), ref, atol=1e-6 if positive else 1e-8)
    if positive:
        assert (ours.codes >= 0).all()


def test_omp_matches_sklearn():
    X, V = _problem(d=16, k=30)
    ref = sk_encode(X, V, algorithm="omp", n_nonzero_coefs=4)
    ours = sparse_encode(X, V, algorithm="omp", n_nonzero_coefs=4)
    np.testing.assert_allclose(ours, ref, atol=1e-8)
    assert ((ours != 0).sum(1) == 4).all()


def test_lars_matches_sklearn():
    X, V = _problem(d=10, k=20, seed=3)
    ref = sk_encode(X, V, algorithm="lars", n_nonzero_coefs=3)
    ours = sparse_encode(X, V, algorithm="lars", n_nonzero_coefs=3)
    np.testing.assert_allclose(ours, ref, atol=1e-8)


def test_threshold_matches_sklearn():
    X, V = _problem()
    for positive in (False, True):
        ref = sk_encode(X, V, algorithm="threshold", alpha=0.5, positive=positive)
        ours = sparse_encode(X, V, algorithm="threshold", alpha=0.5, positive=positive)
        np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_dual_gap_bounds_suboptimality():
    X, V = _problem()
    G, C, x_sq = _gram(X, V)
    exact = solvers.lasso_lars(G, C, 0.3).codes
    gap_exact = solvers.lasso_dual_gap(G, C, exact, 0.3, x_sq)
    assert float(gap_exact.max()) < 1e-8
    rough = exact * 0.5
    gap = solvers.lasso_dual_gap(G, C, rough, 0.3, x_sq)
    sub = solvers.lasso_objective(G, C, rough, 0.3, x_sq) - solvers.lasso_objective(
        G, C, exact, 0.3, x_sq
    )
    assert (gap >= sub - 1e-9).all() and float(sub.sum()) > 0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("algorithm", ["lasso_lars", "lasso_cd", "fista"])
def test_lasso_objective_within_half_percent_of_sklearn_cd(china_patches, algorithm):
    """Same dictionary, real patches: our objective <= 1.005 x sklearn's lasso_cd."""
    X = china_patches[:300]
    rng = np.random.RandomState(0)
    V = X[rng.choice(len(X), 64, replace=False)] + 0.1 * rng.randn(64, 64)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    ref = sk_encode(X, V, algorithm="lasso_cd", alpha=1.0, max_iter=5000)
    ours = sparse_encode(X, V, algorithm=algorithm, alpha=1.0, max_iter=5000)
    assert _objective(X, V, ours, 1.0) <= 1.005 * _objective(X, V, ref, 1.0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("algorithm", ["lasso_lars", "lasso_cd", "fista"])
def test_lasso_objective_on_sparse_coded_signal(algorithm):
    """make_sparse_coded_signal with its own dictionary: our objective <= 1.005 x
    sklearn's lasso_cd run to convergence."""
    from sklearn.datasets import make_sparse_coded_signal

    X, V, _ = make_sparse_coded_signal(n_samples=200, n_components=48, n_features=24,
                                       n_nonzero_coefs=5, random_state=0)
    ref = sk_encode(X, V, algorithm="lasso_cd", alpha=0.2, max_iter=5000)
    ours = sparse_encode(X, V, algorithm=algorithm, alpha=0.2, max_iter=5000)
    assert _objective(X, V, ours, 0.2) <= 1.005 * _objective(X, V, ref, 0.2)


def test_fista_warns_when_not_converged():
    X, V = _problem()
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        sparse_encode(X, V, algorithm="fista", alpha=0.01, max_iter=2)


def test_ista_and_fista_reach_the_lasso_solution():
    X, V = _problem(k=6, d=8)  # undercomplete: well conditioned
    exact = sparse_encode(X, V, algorithm="lasso_lars", alpha=0.3)
    for algorithm in ("fista", "ista"):
        ours = sparse_encode(X, V, algorithm=algorithm, alpha=0.3, max_iter=5000)
        assert _objective(X, V, ours, 0.3) <= _objective(X, V, exact, 0.3) * (1 + 1e-5)


def test_sparse_encode_tensor_in_tensor_out_and_dtype():
    X, V = _problem()
    Xt = torch.as_tensor(X, dtype=torch.float32)
    out = sparse_encode(Xt, V, algorithm="lasso_lars", alpha=0.3)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    ref = sparse_encode(X, V, algorithm="lasso_lars", alpha=0.3)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-4)


def test_sparse_encode_chunks_and_threads_agree():
    from sparsecode.dictionary.coding import encode_chunks

    X, V = _problem(n=50)
    Xt, Vt = torch.as_tensor(X), torch.as_tensor(V)
    whole = encode_chunks(Xt, Vt, algorithm="lasso_lars", alpha=0.3)
    parts = encode_chunks(Xt, Vt, n_jobs=2, chunk_size=7, algorithm="lasso_lars",
                          alpha=0.3)
    np.testing.assert_allclose(parts.numpy(), whole.numpy(), atol=1e-10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(algorithm="nope"), "The 'algorithm' parameter of sparse_encode must be"),
        (dict(algorithm="omp", positive=True), "Positive constraint not supported"),
        (dict(algorithm="lars", positive=True), "Positive constraint not supported"),
    ],
)
def test_sparse_encode_bad_parameters(kwargs, match):
    X, V = _problem()
    with pytest.raises(ValueError, match=match):
        sparse_encode(X, V, **kwargs)


def test_sparse_encode_bad_shapes():
    X, V = _problem()
    with pytest.raises(ValueError, match="different numbers of features"):
        sparse_encode(X[:, :5], V)
    with pytest.raises(ValueError, match="init must have shape"):
        sparse_encode(X, V, algorithm="fista", init=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN|infinity"):
        Xn = X.copy()
        Xn[0, 0] = np.nan
        sparse_encode(Xn, V)


def test_collinear_atoms_in_float32_stay_finite_and_optimal():
    """Duplicated atoms make the support's Gram singular; codes must stay exact."""
    X, V = _problem(n=60, k=10, d=8, seed=5)
    V = np.vstack([V, V[:3], -V[3:4]])  # exact duplicates and an antipodal copy
    G, C, x_sq = _gram(X.astype(np.float32), V.astype(np.float32))
    res = solvers.lasso_lars(G, C, 0.3)
    assert torch.isfinite(res.codes).all()
    G64, C64, x64 = _gram(X, V)
    res64 = solvers.lasso_lars(G64, C64, 0.3)
    assert torch.isfinite(res64.codes).all()  # (a CPU-rounding-dependent NaN once)
    ours = solvers.lasso_objective(G64, C64, res.codes.double(), 0.3, x64).sum()
    best = solvers.lasso_objective(G64, C64, res64.codes, 0.3, x64).sum()
    ref = _objective(X, V, sk_encode(X, V, algorithm="lasso_cd", alpha=0.3,
                                     max_iter=100_000), 0.3)
    assert float(best) <= ref * (1 + 1e-6)
    assert float(ours) <= float(best) * (1 + 1e-4)


@pytest.mark.parametrize("positive", [False, True])
def test_homotopy_float32_on_coherent_atoms_satisfies_kkt(china_patches, positive):
    """256 atoms cut from the same image (4x overcomplete, highly coherent): the
    float32 path, whose active-set inverses are updated by rank-one steps over
    dozens of breakpoints, still ends at the lasso optimum (KKT checked in
    float64) and matches the float64 path's objective."""
    X = china_patches[:512]
    rng = np.random.RandomState(1)
    V = china_patches[rng.choice(len(china_patches), 256, replace=False)]
    V = V / np.linalg.norm(V, axis=1, keepdims=True)
    alpha = 0.5
    G32, C32, _ = _gram(X.astype(np.float32), V.astype(np.float32))
    res = solvers.lasso_lars(G32, C32, alpha, positive=positive)
    assert res.converged and res.n_iter > 20  # a long path, many rank-one updates
    G, C, x_sq = _gram(X, V)
    U = res.codes.double()
    corr = C - U @ G  # correlations of the atoms with the residual
    active = U != 0
    assert active.sum(1).float().mean() > 5
    scale = alpha * 1e-3
    if positive:
        assert (U >= 0).all()
        assert (corr <= alpha + scale).all()
    else:
        assert (corr.abs() <= alpha + scale).all()
    assert ((corr[active] - alpha * U[active].sign()).abs() <= scale).all()
    exact = solvers.lasso_lars(G, C, alpha, positive=positive).codes
    ours = solvers.lasso_objective(G, C, U, alpha, x_sq).sum()
    best = solvers.lasso_objective(G, C, exact, alpha, x_sq).sum()
    assert abs(float(ours) - float(best)) <= 1e-5 * float(best)


def test_active_set_finisher_solves_from_a_nearby_support(china_patches):
    """`finish` (the homotopy's tail solver) reaches the exact lasso solution
    from a support missing some of its atoms (as at the end of a path); a row
    it cannot settle is reported, never returned wrong."""
    from sparsecode.solvers.active_set import finish

    X = china_patches[:200]
    rng = np.random.RandomState(2)
    V = china_patches[rng.choice(len(china_patches), 128, replace=False)]
    V = V / np.linalg.norm(V, axis=1, keepdims=True)
    G, C, x_sq = _gram(X, V)
    exact = solvers.lasso_lars(G, C, 0.5).codes
    guess = exact.sign()
    flip = torch.rand(guess.shape, generator=torch.Generator().manual_seed(0))
    guess[flip < 0.15] = 0.0  # some atoms of the solution missing
    assert (guess != exact.sign()).any(1).float().mean() > 0.5
    done, codes = finish(G, C, guess, 0.5, positive=False)
    assert done.float().mean() > 0.9
    corr = C - codes @ G  # lasso optimality on the settled rows
    act = codes != 0
    assert (corr[done].abs() <= 0.5 + 1e-8).all()
    assert ((corr - 0.5 * codes.sign())[act & done.unsqueeze(1)].abs() <= 1e-8).all()
    obj = solvers.lasso_objective(G, C, codes, 0.5, x_sq)
    ref = solvers.lasso_objective(G, C, exact, 0.5, x_sq)
    torch.testing.assert_close(obj[done], ref[done], rtol=1e-10, atol=0)
    done1, codes1 = finish(G, C, guess, 0.5, positive=False, max_iter=1)
    wrong = (guess != exact.sign()).any(1)
    assert not (done1 & wrong).any()  # a wrong guess is never accepted as is
    assert (codes1[~done1] == 0).all()


@pytest.mark.parametrize("positive", [False, True])
def test_orthogonal_atoms_take_the_closed_form(positive):
    """Scaled orthogonal atoms plus zero atoms (sklearn's SVD initialisation):
    the closed form matches sklearn's lasso, and a perturbed (non-orthogonal)
    dictionary goes down the path instead."""
    rng = np.random.RandomState(0)
    Q, _ = np.linalg.qr(rng.randn(8, 8))
    V = np.vstack([Q * rng.uniform(0.5, 3.0, (8, 1)), np.zeros((4, 8))])
    X = 2 * rng.randn(30, 8)
    algorithm = "lasso_cd" if positive else "lasso_lars"
    ref = sk_encode(X, V, algorithm=algorithm, alpha=0.4, positive=positive,
                    max_iter=100_000)
    G, C, _ = _gram(X, V)
    res = solvers.lasso_lars(G, C, 0.4, positive=positive)
    assert res.n_iter == 1 and res.converged
    np.testing.assert_allclose(res.codes.numpy(), ref, atol=1e-7)
    V[0] += 0.05 * V[1]
    G, C, _ = _gram(X, V)
    assert solvers.lasso_lars(G, C, 0.4, positive=positive).n_iter > 1
