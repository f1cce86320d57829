"""The solvers on singular and near-singular Gram matrices, in float32 and float64.

Dictionaries (rows are atoms, unit norm unless zero) with duplicated atoms,
antipodal atoms (``d`` and ``-d``), nearly collinear atoms (``d`` perturbed by
1e-7 and by 1e-4, renormalised), zero atoms, random overcomplete atoms and all
of these at once; data with constant rows, zero rows and rows equal to an atom
or a multiple of one. Whether a support's Gram block factorises in floating
point depends on the CPU's rounding (a float64 homotopy once returned NaN on
duplicated atoms on one CPU only), so every check is of a mathematical
property, verified in float64 on the float64 problem: finite codes, the
lasso's KKT conditions and optimal objective, zero codes on zero atoms,
duplicates that add up to the deduplicated lasso, OMP's least-squares fit on
its support, LARS's equal correlations, and residuals that shrink as the
number of nonzeros grows.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from sparsecode import solvers, sparse_encode

N_FEATURES = 8
SEEDS = range(5)
DTYPES = [torch.float64, torch.float32]
KINDS = ["duplicated", "antipodal", "collinear_1e-7", "collinear_1e-4", "zero",
         "overcomplete", "mixed"]
ALPHAS = [0.05, 0.5]
EPS = {torch.float64: float(np.finfo(np.float64).eps),
       torch.float32: float(np.finfo(np.float32).eps)}
# Lasso KKT tolerance, relative to each row's scale ``alpha + ||x||`` (unit
# atoms bound the correlations by ||x||). A Gram matrix in precision eps does
# not resolve a support's eigenvalues below ~m eps (m atoms; the solvers take
# those below 10 m eps for zero): the fit along such a direction v of the
# codes, with ||v V|| = sqrt(lam), is lost, and the correlations are off by up
# to about ||r|| sqrt(m eps): ~1e-3 ||x|| in float32 (atoms 1e-4 apart are
# exact duplicates to a float32 Gram) and ~1e-7 in float64, where 1e-6 leaves
# room for the rounding that the pseudo-inverse amplifies.
KKT_RTOL = {torch.float64: 1e-6, torch.float32: 1e-3}
# Atoms closer than this angle are not told apart by a Gram matrix in that
# precision: their pair's eigenvalue theta^2 / 2 is within 1e3 eps of zero, so
# its inverse is off by more than 1e-3 (codes may use the wrong one of the
# pair; see `_objective_slack`)
UNRESOLVED = {dt: (2e3 * eps) ** 0.5 for dt, eps in EPS.items()}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread for these small problems: on a shared machine,
    waking a second thread for each small op costs more than the op."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


def _unit(A):
    """Rows scaled to unit norm (zero rows stay zero)."""
    norm = np.linalg.norm(A, axis=1, keepdims=True)
    return A / np.where(norm > 0, norm, 1.0)


@dataclass
class Case:
    """One problem: float64 data, the Gram form in ``dtype``, the atoms' groups.

    ``group[i] = g >= 0`` and ``sign[i] = s`` say atom ``i`` is exactly ``s``
    times ``base[g]``; ``group[i] = -1`` marks a zero atom and ``-2`` an atom
    that is no exact copy (a nearly collinear one).
    """

    X: np.ndarray
    V: np.ndarray
    base: np.ndarray
    group: np.ndarray
    sign: np.ndarray
    dtype: torch.dtype
    seed: int

    @property
    def G(self):
        V = torch.as_tensor(self.V, dtype=self.dtype)
        return V @ V.T

    @property
    def C(self):
        return torch.as_tensor(self.X, dtype=self.dtype) @ torch.as_tensor(
            self.V, dtype=self.dtype).T

    @property
    def x_sq(self):
        return (torch.as_tensor(self.X, dtype=self.dtype) ** 2).sum(1)

    @property
    def zero(self):
        return self.group == -1


def _dictionary(kind, seed):
    """Atoms of one kind (shuffled), the distinct atoms, groups and signs."""
    rng = np.random.RandomState(seed)
    k = 20 if kind in ("overcomplete", "mixed") else 6
    base = _unit(rng.randn(k, N_FEATURES))
    group, sign = list(range(k)), [1.0] * k
    if kind in ("duplicated", "mixed"):  # atom 0 three times, atom 2 twice
        group, sign = group + [0, 0, 2], sign + [1.0] * 3
    if kind in ("antipodal", "mixed"):
        group, sign = group + [1, 3], sign + [-1.0, -1.0]
    V = np.vstack([s * base[g] for g, s in zip(group, sign, strict=True)])
    extra = [_unit(base[:2] + eps * rng.randn(2, N_FEATURES)) for eps in
             {"collinear_1e-7": [1e-7], "collinear_1e-4": [1e-4],
              "mixed": [1e-7, 1e-4]}.get(kind, [])]
    if kind in ("zero", "mixed"):
        extra.append(np.zeros((2, N_FEATURES)))
    for block in extra:
        group += [-2 if block.any() else -1] * len(block)
        sign += [0.0] * len(block)
        V = np.vstack([V, block])
    perm = rng.permutation(len(V))
    return V[perm], base, np.array(group)[perm], np.array(sign)[perm]


def _data(V, seed):
    """Random rows and degenerate ones: constant, zero, an atom, multiples."""
    rng = np.random.RandomState(1000 + seed)
    nonzero = np.flatnonzero(np.linalg.norm(V, axis=1) > 0)
    a, b = rng.choice(nonzero, 2, replace=False)
    special = np.vstack([
        np.full(N_FEATURES, 1.0), np.full(N_FEATURES, -0.3),  # constant rows
        np.zeros((2, N_FEATURES)),
        V[a], -2.5 * V[a], 3.0 * V[b], V[a] + 0.5 * V[b],
    ])
    return np.vstack([special, 2.0 * rng.randn(40, N_FEATURES)])


def _case(kind, seed, dtype):
    V, base, group, sign = _dictionary(kind, seed)
    return Case(_data(V, seed), V, base, group, sign, dtype, seed)


def _codes(result, case):
    """Float64 codes of a solver's result, checked finite and zero on zero atoms."""
    codes = torch.as_tensor(getattr(result, "codes", result))
    assert codes.dtype == case.dtype
    assert torch.isfinite(codes).all(), "non-finite codes"
    U = codes.double().numpy()
    assert (U[:, case.zero] == 0).all(), "a zero atom has a nonzero code"
    return U


def _objective(X, V, U, alpha):
    """Per-row ``0.5||x - uV||^2 + alpha||u||_1`` in float64."""
    return 0.5 * ((X - U @ V) ** 2).sum(1) + alpha * np.abs(U).sum(1)


def _kkt_violation(X, V, U, alpha, positive):
    """Per-row largest violation of the lasso's optimality conditions.

    With ``c = V (x - uV)``: ``c_j = alpha sign(u_j)`` where ``u_j != 0``, and
    ``|c_j| <= alpha`` (``c_j <= alpha`` if positive) elsewhere.
    """
    corr = (X - U @ V) @ V.T
    active = U != 0
    on = np.where(active, np.abs(corr - alpha * np.sign(U)), 0.0)
    off = np.where(active, 0.0, (corr if positive else np.abs(corr)) - alpha)
    return np.maximum(on.max(1), off.max(1).clip(0))


def _assert_kkt(case, U, alpha, positive, rtol):
    if positive:
        assert (U >= 0).all()
    viol = _kkt_violation(case.X, case.V, U, alpha, positive)
    tol = rtol * (alpha + np.linalg.norm(case.X, axis=1))
    bad = np.flatnonzero(viol > tol)
    assert bad.size == 0, (case.seed, bad, viol[bad], tol[bad])


def _unresolved_angle(V, dtype):
    """Per atom, its largest distance to another atom (or its negative) that
    is nonzero but below ``UNRESOLVED[dtype]``, else 0 (unit atoms: the angle)."""
    diff = np.linalg.norm(V[:, None] - V[None], axis=2)
    diff = np.minimum(diff, np.linalg.norm(V[:, None] + V[None], axis=2))
    diff = np.where((diff > 0) & (diff < UNRESOLVED[dtype]), diff, 0.0)
    diff[np.linalg.norm(V, axis=1) == 0] = 0.0
    return diff.max(1)


def _objective_slack(X, V, U64, alpha, dtype):
    """How far codes computed in ``dtype`` may stay above the float64 optimum
    ``U64`` (objectives in float64), per row.

    Moving the code of an atom onto a partner ``theta`` away changes the
    residual by at most ``theta |u|``, so a solution that may use the wrong
    atoms of each unresolved group is worse by at most ``s ||r|| + s^2 / 2``
    with ``s = sum theta_j |u_j|``; plus ``100 eps`` relative for the rounding
    of G and C (the objective is stationary at the optimum, so it moves by
    about the square of the ``~sqrt(eps)`` relative change of the codes).
    """
    s = (_unresolved_angle(V, dtype) * np.abs(U64)).sum(1)
    r = np.linalg.norm(X - U64 @ V, axis=1)
    return 100 * EPS[dtype] * _objective(X, V, U64, alpha) + s * r + 0.5 * s * s


def _lasso64(case, alpha, positive):
    ref = dataclasses.replace(case, dtype=torch.float64)
    return _codes(solvers.lasso_lars(ref.G, ref.C, alpha, positive=positive), ref)


@pytest.mark.parametrize("positive", [False, True])
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_lasso_lars_kkt_and_objective(kind, dtype, alpha, positive):
    """The homotopy's codes satisfy the lasso's KKT conditions (checked in
    float64 against the float64 problem) for every seed, and float32 codes
    reach the float64 optimum's objective."""
    for seed in SEEDS:
        case = _case(kind, seed, dtype)
        U = _codes(solvers.lasso_lars(case.G, case.C, alpha, positive=positive), case)
        _assert_kkt(case, U, alpha, positive, KKT_RTOL[dtype])
        if dtype == torch.float32:
            U64 = _lasso64(case, alpha, positive)
            gap = _objective(case.X, case.V, U, alpha) - _objective(
                case.X, case.V, U64, alpha)
            excess = gap - _objective_slack(case.X, case.V, U64, alpha, dtype)
            assert (excess <= 0).all(), (seed, gap.max(), excess.max())


def _merged(case, U):
    """Codes on the distinct atoms: each group of exact copies summed (with
    their signs), the other atoms kept; and those atoms."""
    copies = case.group >= 0
    W = np.zeros((U.shape[0], len(case.base)))
    np.add.at(W.T, case.group[copies], (U[:, copies] * case.sign[copies]).T)
    return np.hstack([W, U[:, ~copies]]), np.vstack([case.base, case.V[~copies]])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind, positive", [
    ("duplicated", False), ("duplicated", True), ("antipodal", False),
    ("mixed", False)])
def test_copies_add_up_to_the_deduplicated_lasso(kind, positive, dtype):
    """The split of a code between copies of an atom is not unique, but the
    copies' codes have one sign (an opposite split wastes l1 norm) and their
    sum is the lasso solution on the dictionary without copies.

    (A positive code on ``-d`` is a negative one on ``d``: with antipodal
    atoms the deduplicated problem is not a positive lasso, so not tested.)
    """
    alpha = 0.3
    for seed in SEEDS:
        case = _case(kind, seed, dtype)
        U = _codes(solvers.lasso_lars(case.G, case.C, alpha, positive=positive), case)
        W, D = _merged(case, U)
        l1, l1_merged = np.abs(U).sum(1), np.abs(W).sum(1)
        np.testing.assert_allclose(l1_merged, l1, rtol=1e-12, atol=1e-12)
        Dt, Xt = torch.as_tensor(D), torch.as_tensor(case.X)
        ref = solvers.lasso_lars(Dt @ Dt.T, Xt @ Dt.T, alpha, positive=positive)
        W64 = ref.codes.numpy()
        gap = _objective(case.X, D, W, alpha) - _objective(case.X, D, W64, alpha)
        slack = _objective_slack(case.X, D, W64, alpha, dtype)
        assert (gap <= slack).all(), (seed, gap.max(), (gap - slack).max())
        if kind != "mixed":  # 6 independent atoms: a unique solution
            # (which rounding of G and C moves by ~eps cond(G), cond < 1e3 here)
            atol = 1e-8 if dtype == torch.float64 else 1e-4
            np.testing.assert_allclose(W, W64, atol=atol * (1 + np.abs(W64).max()))


def _support_condition(V, U):
    """Per row, the condition number of the Gram block of its nonzero codes'
    atoms (1 for an empty support)."""
    k = max(int((U != 0).sum(1).max()), 1)
    order = np.argsort(U == 0, axis=1, kind="stable")[:, :k]  # nonzeros first
    valid = np.take_along_axis(U != 0, order, 1)
    VS = V[order] * valid[:, :, None]
    G_SS = VS @ VS.transpose(0, 2, 1)
    eye = np.eye(k)
    G_SS = np.where(valid[:, :, None] & valid[:, None, :], G_SS, eye)
    w = np.linalg.eigvalsh(G_SS)
    return w[:, -1] / np.maximum(w[:, 0], 1e-300)


# OMP's least squares on a support is checked where the support's Gram block
# is well conditioned (independent atoms to the dtype): a solve through the
# Gram matrix loses ~eps * cond, so with cond <= 1e3 the residual's
# correlations with the support are within 10 eps cond ||x|| of zero
WELL_CONDITIONED = 1e3


def _residual_slack(norm_x, dtype):
    """How much a residual norm may grow as an atom joins the support.

    In exact arithmetic it cannot (nested supports). Rounding of ``eps ||x||``
    in the correlations, along a direction of the support's Gram block with
    eigenvalue ``lam``, moves the codes by ``eps ||x|| / lam`` and the
    residual by ``eps ||x|| / sqrt(lam)``; the solvers use no direction with
    ``lam`` below ``eps`` (relative), so the growth stays below
    ``sqrt(eps) ||x||``.
    """
    return EPS[dtype] ** 0.5 * norm_x


def _assert_at_most(U, k):
    assert ((U != 0).sum(1) <= k).all(), "more nonzeros than n_nonzero_coefs"


def _assert_least_squares(case, U):
    """The residual is orthogonal to the atoms of the nonzero codes, on the
    rows where those are independent (`WELL_CONDITIONED`)."""
    R = case.X - U @ case.V
    cond = _support_condition(case.V, U)
    corr = np.where(U != 0, np.abs(R @ case.V.T), 0.0).max(1)
    tol = 10 * EPS[case.dtype] * cond * np.maximum(np.linalg.norm(case.X, axis=1), 1)
    bad = np.flatnonzero((cond <= WELL_CONDITIONED) & (corr > tol))
    assert bad.size == 0, (case.seed, bad, corr[bad], tol[bad])


def _assert_equal_correlations(case, U):
    """The atoms of the nonzero codes have the largest absolute correlation
    with the residual (to `KKT_RTOL`, as for the lasso: the same path)."""
    corr = np.abs((case.X - U @ case.V) @ case.V.T)
    off = np.where(U != 0, corr.max(1, keepdims=True) - corr, 0.0).max(1)
    tol = KKT_RTOL[case.dtype] * np.linalg.norm(case.X, axis=1)
    bad = np.flatnonzero(off > tol)
    assert bad.size == 0, (case.seed, bad, off[bad], tol[bad])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("algorithm", ["omp", "lars"])
def test_greedy_supports_and_shrinking_residuals(algorithm, kind, dtype):
    """OMP and LARS keep at most n_nonzero_coefs nonzeros, for every
    n_nonzero_coefs up to n_features; OMP's codes are the least-squares fit
    on their atoms (where independent), LARS's atoms all have the largest
    absolute correlation with the residual (the equiangular path); and the
    residual shrinks as n_nonzero_coefs grows."""
    solver, check = {"omp": (solvers.omp, _assert_least_squares),
                     "lars": (solvers.lars, _assert_equal_correlations)}[algorithm]
    for seed in SEEDS:
        case = _case(kind, seed, dtype)
        G, C = case.G, case.C
        norm_x = np.linalg.norm(case.X, axis=1)
        prev = norm_x
        for k in range(1, N_FEATURES + 1):
            U = _codes(solver(G, C, k), case)
            _assert_at_most(U, k)
            check(case, U)
            res = np.linalg.norm(case.X - U @ case.V, axis=1)
            grew = np.flatnonzero(res > prev + _residual_slack(norm_x, dtype))
            assert grew.size == 0, (seed, k, grew, (res - prev)[grew])
            prev = res


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", ["duplicated", "antipodal", "zero", "mixed"])
def test_masked_solve_on_exactly_singular_supports(kind, dtype):
    """Least squares on a support of every atom (a singular block: copies,
    zero atoms, more atoms than features) is the minimum-norm solution: the
    residual is orthogonal to every atom, copies share their code equally
    (``-d`` takes the opposite of ``d``'s) and zero atoms get exactly 0."""
    for seed in SEEDS:
        case = _case(kind, seed, dtype)
        n, K = case.C.shape
        idx = torch.arange(K).expand(n, K)
        U = _codes(solvers.masked_solve(case.G, idx, torch.ones(n, K, dtype=torch.bool),
                                        case.C), case)
        corr = np.abs((case.X - U @ case.V) @ case.V.T).max(1)
        tol = 10 * EPS[dtype] * WELL_CONDITIONED * np.maximum(
            np.linalg.norm(case.X, axis=1), 1)
        if kind != "mixed":  # (20 atoms in 8 dimensions: the span is everything)
            assert np.linalg.cond(case.base @ case.base.T) <= WELL_CONDITIONED
        bad = np.flatnonzero(corr > tol)
        assert bad.size == 0, (seed, bad, corr[bad], tol[bad])
        for g in np.unique(case.group[case.group >= 0]):
            copies = np.flatnonzero(case.group == g)
            shared = U[:, copies] * case.sign[copies]
            spread = np.ptp(shared, axis=1)
            assert (spread <= tol * (1 + np.abs(shared).max(1))).all(), (seed, g)


# FISTA's convergence: its stopping rule is a duality gap below
# ``FISTA_TOL * sum ||x||^2`` (float32 evaluates the gap to ~eps32 of that).
FISTA_TOL = {torch.float64: 1e-9, torch.float32: 1e-6}
# Its restarted iterations converge at a rate set by the smallest nonzero
# eigenvalues that matter, not by an exact null space (copies, zero atoms):
# there it converges; on the nearly collinear and overcomplete dictionaries
# (supports of condition up to 1e8) it stops at max_iter, where the
# correlations, whose error the small eigenvalues scale down, are within
# 1e-3 of the row's scale (3.4e-4 at most here after 3000 iterations)
FISTA_RTOL = 1e-3


@pytest.mark.parametrize("positive", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_fista_kkt_and_objective(kind, dtype, positive):
    """FISTA's codes are finite, zero on zero atoms, satisfy the lasso's KKT
    conditions to its convergence; exact copies and zero atoms do not slow it
    down, and when it reports convergence its objective is within its
    tolerance of the optimum."""
    alpha, tol = 0.5, FISTA_TOL[dtype]
    for seed in SEEDS:
        case = _case(kind, seed, dtype)
        res = solvers.fista(case.G, case.C, alpha, max_iter=3000, tol=tol,
                            positive=positive, x_sq=case.x_sq)
        U = _codes(res, case)
        _assert_kkt(case, U, alpha, positive, FISTA_RTOL)
        if kind in ("duplicated", "antipodal", "zero"):
            assert res.converged, (seed, res.n_iter)
        if res.converged:
            U64 = _lasso64(case, alpha, positive)
            gap = _objective(case.X, case.V, U, alpha) - _objective(
                case.X, case.V, U64, alpha)
            slack = _objective_slack(case.X, case.V, U64, alpha, dtype)
            assert gap.sum() <= tol * (case.X ** 2).sum() + slack.sum(), seed


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=str)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("algorithm, positive", [
    ("lasso_lars", False), ("lasso_lars", True), ("lasso_cd", False),
    ("lasso_cd", True), ("omp", False), ("lars", False), ("threshold", False),
    ("threshold", True)])
def test_sparse_encode_on_singular_dictionaries(algorithm, positive, kind, dtype):
    """The scikit-learn front end, fed the arrays in either dtype: codes of
    that dtype, finite, zero on zero atoms, and each algorithm's defining
    property (checked in float64 on the float64 problem)."""
    alpha, k = 0.3, 3
    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    for seed in SEEDS:
        case = _case(kind, seed, torch_dtype)
        codes = sparse_encode(case.X.astype(dtype), case.V.astype(dtype),
                              algorithm=algorithm, alpha=alpha, n_nonzero_coefs=k,
                              positive=positive)
        assert codes.dtype == dtype
        U = _codes(torch.from_numpy(codes), case)
        if algorithm in ("lasso_lars", "lasso_cd"):
            _assert_kkt(case, U, alpha, positive, KKT_RTOL[torch_dtype])
        elif algorithm == "omp":
            _assert_at_most(U, k)
            _assert_least_squares(case, U)
        elif algorithm == "lars":
            _assert_at_most(U, k)
            _assert_equal_correlations(case, U)
        else:  # soft thresholding of X V^T, to the rounding of the product
            corr = case.X @ case.V.T
            ref = (np.maximum(corr - alpha, 0.0) if positive else
                   np.sign(corr) * np.maximum(np.abs(corr) - alpha, 0.0))
            atol = 10 * EPS[torch_dtype] * N_FEATURES * np.abs(case.X).max()
            np.testing.assert_allclose(U, ref, rtol=0, atol=atol)
