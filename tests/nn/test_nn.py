"""Activations, the autoencoder module, sparse autograd and loss terms."""

import math

import numpy as np
import pytest
import torch

from sparsecode.nn import (
    ACTIVATIONS,
    LOSS_TERMS,
    Activation,
    SparseAutoencoderModule,
    geometric_median,
    make_activation,
    register_activation,
    sae_losses,
)
from sparsecode.nn.functional import gather_linear, sparse_decode


def _module(act, m=16, d=6, dtype=torch.float64, **kw):
    mod = SparseAutoencoderModule(d, m, act, kw, dtype=dtype)
    X = torch.randn(64, d, dtype=dtype, generator=torch.Generator().manual_seed(1))
    mod.reset_parameters_(X, torch.Generator().manual_seed(0), decoder_norm=0.5)
    with torch.no_grad():
        mod.b_enc.normal_(0, 0.1, generator=torch.Generator().manual_seed(2))
    return mod, X


def test_registry_has_all_variants_and_rejects_unknown():
    assert {"relu", "topk", "batchtopk", "jumprelu", "gated", "matryoshka"} <= set(
        ACTIVATIONS)
    with pytest.raises(ValueError, match="Unknown activation"):
        make_activation("nope", 4)
    with pytest.raises(ValueError, match="k must be"):
        make_activation("topk", 4, k=5)


def test_topk_exactly_k_nonzeros_per_row():
    pre = torch.randn(50, 30).abs() + 0.1  # all positive: ReLU never drops one
    codes = make_activation("topk", 30, k=7)(pre)
    assert ((codes != 0).sum(1) == 7).all()
    kept = pre.topk(7, dim=1).values
    assert torch.equal(codes.sort(1, descending=True).values[:, :7], kept)


@pytest.mark.parametrize("project", [True, False])
def test_sparse_topk_training_gradients_match_dense_autograd(project, monkeypatch):
    mod, X = _module("topk", k=3)
    monkeypatch.setattr(mod, "project_decoder_grad", project)
    dead = torch.zeros(16, dtype=torch.bool)
    dead[[1, 4, 5, 9]] = True
    out = mod.forward_train(X, dead, k_aux=2)
    assert out.decoder_grad_projected is project
    terms = sae_losses(out, X, mod, aux_coef=0.5)
    sum(terms.values()).backward()
    sparse_grads = {n: p.grad.clone() for n, p in mod.named_parameters()}
    mod.zero_grad()
    # dense reference with plain autograd
    pre = torch.nn.functional.linear(X - mod.b_pre, mod.W_enc, mod.b_enc)
    codes = mod.activation(pre)
    x_hat = codes @ mod.W_dec + mod.b_pre
    mse = (X - x_hat).pow(2).sum(1).mean()
    masked = torch.where(dead, pre, float("-inf"))
    aux_idx = masked.topk(2, dim=1).indices
    aux_codes = torch.zeros_like(pre).scatter(1, aux_idx, torch.relu(
        pre.gather(1, aux_idx)))
    resid = (X - x_hat).detach()
    aux = (resid - aux_codes @ mod.W_dec).pow(2).sum(1).mean() * min(1, 4 / 2)
    (mse + 0.5 * aux).backward()
    if project:  # the training loop's projection, applied to the dense reference
        mod.remove_parallel_grad_()
        along = torch.linalg.vecdot(sparse_grads["W_dec"], mod.W_dec.detach(), dim=1)
        assert along.abs().max() < 1e-5  # nothing left along the rows
    for name, p in mod.named_parameters():
        torch.testing.assert_close(sparse_grads[name], p.grad, msg=name)


def test_gather_linear_and_sparse_decode_match_dense():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    W = torch.randn(9, 4, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(9, dtype=torch.float64, generator=g, requires_grad=True)
    idx = torch.randint(0, 9, (5, 3), generator=g)
    with torch.no_grad():
        pre = x @ W.T + b
    assert torch.autograd.gradcheck(lambda x, W, b: gather_linear(x, W, b, idx, (
        x @ W.T + b).detach()), (x, W, b))
    vals = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    dense = torch.zeros(5, 9, dtype=torch.float64).index_put(
        (torch.arange(5)[:, None].expand(5, 3), idx), vals, accumulate=True)
    torch.testing.assert_close(sparse_decode(vals, idx, W), dense @ W)
    assert torch.autograd.gradcheck(lambda v, W: sparse_decode(v, idx, W), (vals, W))
    assert gather_linear(x, W, b, idx, pre).shape == (5, 3)


def test_batchtopk_training_keeps_k_times_batch_and_inference_uses_threshold():
    act = make_activation("batchtopk", 20, k=3).double()
    gen = torch.Generator().manual_seed(0)
    pre = torch.rand(8, 20, dtype=torch.float64, generator=gen) + 0.05
    codes = act.train()(pre)
    assert int((codes > 0).sum()) == 3 * 8
    assert (codes.sum(1) > 0).sum() >= 1
    thr = float(act.threshold)
    assert thr == pytest.approx(float(codes[codes > 0].min()))
    act.eval()
    z = torch.linspace(-1, 2, 40, dtype=torch.float64).reshape(2, 20)
    out = act(z)
    torch.testing.assert_close(out, z * (z > thr))
    torch.testing.assert_close(act(z[:1]), out[:1])  # independent of the batch


def test_jumprelu_pseudo_derivatives_follow_the_rectangle_kernel():
    act = make_activation("jumprelu", 3, bandwidth=0.2, threshold_init=0.5).double()
    z = torch.tensor([[0.45, 0.9, 0.1]], dtype=torch.float64, requires_grad=True)
    out = act(z)
    torch.testing.assert_close(out.detach(), torch.tensor([[0.0, 0.9, 0.0]],
                                                           dtype=torch.float64))
    out.sum().backward()
    theta = 0.5
    # only z=0.45 lies in the kernel window (theta +- 0.1): -(theta/eps) * 1
    expected = torch.tensor([-(theta / 0.2) * theta, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(act.log_threshold.grad, expected)  # chain: * theta
    torch.testing.assert_close(z.grad, torch.tensor([[0.0, 1.0, 0.0]],
                                                    dtype=torch.float64))
    act.log_threshold.grad = None
    act.step(z.detach()).sum().backward()  # L0: -(1/eps) rect, times dtheta/dlog
    torch.testing.assert_close(act.log_threshold.grad, torch.tensor(
        [-(1 / 0.2) * theta, 0.0, 0.0], dtype=torch.float64))


def test_jumprelu_thresholds_get_gradient_and_move_in_training():
    mod, X = _module("jumprelu", threshold_init=0.3, bandwidth=0.5)
    before = mod.activation.log_threshold.detach().clone()
    opt = torch.optim.Adam(mod.parameters(), lr=1e-2)
    for _ in range(5):
        terms = sae_losses(mod.forward_train(X), X, mod, alpha=1.0)
        opt.zero_grad()
        sum(terms.values()).backward()
        assert mod.activation.log_threshold.grad.abs().sum() > 0
        opt.step()
    assert (mod.activation.log_threshold.detach() - before).abs().max() > 1e-3


def test_l1_is_weighted_by_decoder_norms():
    mod, X = _module("relu")
    out = mod.forward_train(X)
    norms = mod.W_dec.detach().norm(dim=1)
    expected = (out.codes * norms).sum(1).mean()
    torch.testing.assert_close(LOSS_TERMS["l1"][0](out, X, mod).double(), expected)
    with torch.no_grad():
        mod.W_dec[0] *= 3.0
    with torch.no_grad():
        tripled = LOSS_TERMS["l1"][0](out, X, mod).double()
        torch.testing.assert_close(tripled - expected,
                                   2 * (out.codes[:, 0] * norms[0]).mean())
        weighted = float(sae_losses(out, X, mod, alpha=0.5)["l1"])
    assert weighted == pytest.approx(0.5 * float(tripled))


def test_gated_forward_and_gate_gradients():
    mod, X = _module("gated")
    act = mod.activation
    with torch.no_grad():
        act.b_gate.uniform_(-0.5, 0.5)
        act.r_mag.uniform_(-0.5, 0.5)
        act.b_mag.uniform_(-0.5, 0.5)
    pre = mod.encode_pre(X)
    expected = (pre + act.b_gate > 0) * torch.relu(pre * act.r_mag.exp() + act.b_mag)
    torch.testing.assert_close(mod.encode(X), expected)
    out = mod.forward_train(X)
    LOSS_TERMS["mse"][0](out, X, mod).backward()
    assert act.b_gate.grad is None or act.b_gate.grad.abs().sum() == 0
    mod.zero_grad()
    out = mod.forward_train(X)
    sum(sae_losses(out, X, mod, alpha=1.0).values()).backward()
    assert act.b_gate.grad.abs().sum() > 0 and mod.b_enc.grad is None


def test_matryoshka_term_sums_prefix_reconstructions():
    mod, X = _module("matryoshka", m=16, k=4, prefixes=[2, 8, 16])
    out = mod.forward_train(X)
    codes = out.codes
    manual = sum((X - (codes[:, :p] @ mod.W_dec[:p] + mod.b_pre)).pow(2).sum(1).mean()
                 for p in (2, 8))
    torch.testing.assert_close(LOSS_TERMS["matryoshka"][0](out, X, mod).double(),
                               manual)


def test_fold_scale_gives_scaled_codes_and_same_reconstruction():
    for name, kw in [("topk", {"k": 3}), ("jumprelu", {}), ("gated", {}),
                     ("batchtopk", {"k": 3})]:
        mod, X = _module(name, **kw)
        mod.eval()
        with torch.no_grad():
            if name == "batchtopk":
                mod.activation.threshold_num.fill_(0.05)
                mod.activation.threshold_den.fill_(1.0)
            codes, recon = mod.encode(4.0 * X), mod(4.0 * X)
            mod.fold_scale_(4.0)
            torch.testing.assert_close(mod.encode(X), codes / 4.0)
            torch.testing.assert_close(mod(X), recon / 4.0)


def test_decoder_constraint_removes_parallel_gradient():
    mod, X = _module("topk", k=3)
    mod.normalize_decoder_()
    torch.testing.assert_close(mod.W_dec.norm(dim=1), torch.ones(16,
                                                                 dtype=torch.float64))
    out = mod.forward_train(X)
    sum(sae_losses(out, X, mod).values()).backward()
    mod.remove_parallel_grad_()
    parallel = (mod.W_dec.grad * mod.W_dec).sum(1)
    assert parallel.abs().max() < 1e-12


def test_geometric_median_is_robust_and_minimises_distances():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(200, 3, generator=g, dtype=torch.float64)
    X[:20] += 100.0  # outliers drag the mean, not the median
    med = geometric_median(X)

    def cost(y):
        return float(torch.linalg.vector_norm(X - y, dim=1).sum())

    assert cost(med) < cost(X.mean(0))
    for _ in range(5):
        assert cost(med) <= cost(med + 0.01 * torch.randn(3, generator=g,
                                                           dtype=torch.float64))
    assert float(med.norm()) < 2.0 < float(X.mean(0).norm())


def test_a_registered_activation_plugs_into_the_estimator():
    from sparsecode import SparseAutoencoder

    @register_activation("test_shrink")
    class Shrink(Activation):
        loss_terms = ("mse", "l1")

        def forward(self, pre):
            return torch.relu(pre - 0.1)

    try:
        X = np.random.RandomState(0).randn(64, 4)
        est = SparseAutoencoder(n_components=8, activation="test_shrink", max_iter=2,
                                batch_size=32, random_state=0, device="cpu").fit(X)
        assert isinstance(est.module_.activation, Shrink)
        assert math.isfinite(est.score(X))
    finally:
        ACTIVATIONS.pop("test_shrink")


@pytest.mark.parametrize("act, kw", [("relu", {}), ("gated", {}), ("jumprelu", {})])
def test_dense_training_forward_matches_inference_and_its_gradients(act, kw):
    mod, X = _module(act, **kw)
    out = mod.forward_train(X)
    torch.testing.assert_close(out.x_hat, mod(X))
    out.x_hat.pow(2).sum().backward()
    fast = {n: p.grad.clone() for n, p in mod.named_parameters() if p.grad is not None}
    mod.zero_grad()
    mod(X).pow(2).sum().backward()  # centred form, plain autograd
    for name, p in mod.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(fast[name], p.grad, msg=name)


def test_registering_a_taken_name_raises():
    before = dict(ACTIVATIONS)
    with pytest.raises(ValueError, match="already registered"):
        @register_activation("topk")
        class Again(Activation):
            pass
    assert ACTIVATIONS == before and ACTIVATIONS["topk"].__name__ == "TopK"
    with pytest.raises(TypeError, match="non-empty str"):
        register_activation("")


def test_registering_a_taken_loss_term_raises():
    from sparsecode.nn import register_loss_term

    with pytest.raises(ValueError, match="already registered"):
        register_loss_term("mse")(lambda out, x, model: x.sum())
    with pytest.raises(ValueError, match="weight"):
        register_loss_term("test_new", weight="beta")
    assert "test_new" not in LOSS_TERMS


def test_every_variant_declares_what_the_estimator_and_readers_need():
    from sparsecode.nn import saelens_activation

    for name, cls in ACTIVATIONS.items():
        assert cls.name == name and isinstance(cls.takes_k, bool)
        assert cls.default_alpha >= 0 and set(cls.loss_terms) <= set(LOSS_TERMS)
        for arch in cls.saelens_names:
            assert saelens_activation(arch) == name  # one variant per SAELens name
    assert {n for n, c in ACTIVATIONS.items() if c.takes_k} == {
        "topk", "batchtopk", "matryoshka"}
    assert {n: c.default_alpha for n, c in ACTIVATIONS.items() if c.default_alpha} == {
        "relu": 1.0, "gated": 1.0, "jumprelu": 0.3}
    assert saelens_activation("standard") == "relu"
    assert saelens_activation("no_such_architecture") is None


def test_the_estimator_and_compare_read_the_registry():
    from sparsecode import SparseAutoencoder
    from sparsecode.comparison import get_family

    @register_activation("test_capped")
    class Capped(Activation):
        default_alpha = 0.25
        loss_terms = ("mse", "l1")

        def forward(self, pre):
            return pre.clamp(0, 1)

    try:
        X = np.random.RandomState(0).randn(64, 4)
        est = SparseAutoencoder(8, activation="test_capped", max_iter=1, batch_size=32,
                                random_state=0, device="cpu").fit(X)
        assert est.history_[-1]["l1"] > 0  # alpha = the declared 0.25, not 0
        family = get_family("sae_test_capped")
        assert family.level_name == "alpha x default"
        assert family.make(2.0, 8, 0, "cpu").alpha == pytest.approx(0.5)
        with pytest.raises(ValueError, match="unknown estimator family"):
            get_family("sae_no_such_variant")
    finally:
        ACTIVATIONS.pop("test_capped")
