"""Sparse training of ReLU-family activations: same results as the dense path."""

import numpy as np
import pytest
import torch

from sparsecode import SparseAutoencoder
from sparsecode.nn import SparseAutoencoderModule, sae_losses
from sparsecode.nn.functional import Pattern, pattern_decode, pattern_linear
from sparsecode.nn.losses import row_norms
from sparsecode.nn.select import support_positions, topk_indices

CASES = [
    ("relu", {}),
    ("gated", {}),
    ("jumprelu", {"bandwidth": 0.5, "threshold_init": 0.3}),
    ("jumprelu", {"mode": "tanh"}),
]


def _module(act, kw, dtype, m=64, d=12, n=200):
    g = torch.Generator().manual_seed(0)
    mod = SparseAutoencoderModule(d, m, act, kw, dtype=dtype)
    X = torch.randn(n, d, dtype=dtype, generator=g)
    mod.reset_parameters_(X, torch.Generator().manual_seed(0), decoder_norm=0.5)
    with torch.no_grad():  # a few percent of the codes active
        mod.b_enc.normal_(-1.0, 0.3, generator=g)
        for name, p in mod.activation.named_parameters():
            if name != "log_threshold":
                p.normal_(-0.5 if name == "b_gate" else 0.0, 0.3, generator=g)
    return mod, X


def _step(mod, X, max_density):
    mod.zero_grad()
    mod.sparse_max_density = max_density
    out = mod.forward_train(X)
    terms = sae_losses(out, X, mod, alpha=0.3)
    sum(terms.values()).backward()
    grads = {n: p.grad.clone() for n, p in mod.named_parameters() if p.grad is not None}
    return out, {k: float(v.detach()) for k, v in terms.items()}, grads


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("act, kw", CASES)
def test_sparse_path_matches_dense_gradients(act, kw, dtype, rtol):
    mod, X = _module(act, kw, dtype)
    dense, dense_terms, dense_grads = _step(mod, X, 0.0)
    sparse, sparse_terms, sparse_grads = _step(mod, X, 1.0)
    assert dense.codes is not None and sparse.pattern is not None
    assert sparse.pattern.nnz < 0.5 * dense.codes.numel()  # really sparse
    torch.testing.assert_close(sparse.x_hat, dense.x_hat, rtol=rtol, atol=rtol)
    assert sparse_terms == pytest.approx(dense_terms, rel=rtol, abs=rtol)
    assert set(sparse_grads) == set(dense_grads)
    for name, g in dense_grads.items():
        scale = float(g.abs().max())
        torch.testing.assert_close(sparse_grads[name], g, rtol=0, atol=rtol * scale,
                                   msg=name)
    # the sparse codes are the dense codes at the pattern, and zero elsewhere
    codes = torch.zeros_like(dense.codes)
    p = sparse.pattern
    codes[p.row, p.col] = sparse.vals.detach()
    torch.testing.assert_close(codes, dense.codes.detach(), rtol=rtol, atol=rtol)


def test_dense_sparse_switch_follows_the_active_fraction():
    mod, X = _module("relu", {}, torch.float64)
    density = float((mod.encode(X) > 0).double().mean())
    assert 0 < density < 0.2
    mod.sparse_max_density = density * 1.01
    assert mod.forward_train(X).pattern is not None
    mod.sparse_max_density = density * 0.99
    assert mod.forward_train(X).codes is not None
    mod.sparse_max_density = 0.0
    assert mod.forward_train(X).codes is not None
    # AuxK needs dense pre-activations: no sparse path with a dead mask
    mod.sparse_max_density = 1.0
    dead = torch.zeros(64, dtype=torch.bool)
    assert mod.forward_train(X, dead, 0).pattern is not None


def _pattern(g):
    mask = torch.rand(7, 9, generator=g) < 0.3
    mask[2] = False  # an empty row
    mask[4, :] = True  # a full row
    return mask, Pattern.from_mask(mask)


def test_pattern_from_mask_is_csr_of_the_mask():
    g = torch.Generator().manual_seed(0)
    mask, p = _pattern(g)
    nz = mask.nonzero()
    assert torch.equal(p.row, nz[:, 0]) and torch.equal(p.col, nz[:, 1])
    assert torch.equal(p.crow, torch.cat([torch.zeros(1, dtype=torch.long),
                                          mask.sum(1).cumsum(0)]))
    assert p.batch == 7 and p.nnz == int(mask.sum())
    assert torch.equal(p.flat, p.row * 9 + p.col)
    assert Pattern.from_indices(nz[:, 1:].reshape(-1, 1), 9).flat is None
    assert torch.equal(Pattern.from_mask(mask, p.nnz).col, p.col)
    ccol, row_t, order = p.by_col()
    assert torch.equal(p.col[order], p.col.sort(stable=True).values)
    assert torch.equal(row_t, p.row[order])
    assert torch.equal(ccol.diff(), torch.bincount(p.col, minlength=9))


def test_pattern_primitives_match_dense_and_gradcheck():
    g = torch.Generator().manual_seed(1)
    mask, p = _pattern(g)
    kw = {"dtype": torch.float64, "requires_grad": True}
    x = torch.randn(7, 4, generator=g, dtype=torch.float64).requires_grad_()
    W = torch.randn(9, 4, generator=g, dtype=torch.float64).requires_grad_()
    b = torch.randn(9, generator=g, dtype=torch.float64).requires_grad_()
    vals = torch.randn(p.nnz, generator=g, dtype=torch.float64).requires_grad_()
    with torch.no_grad():
        pre = x @ W.T + b
    out = pattern_linear(x, W, b, p, pre[p.row, p.col])
    torch.testing.assert_close(out, pre[p.row, p.col])
    assert torch.autograd.gradcheck(
        lambda x, W, b: pattern_linear(x, W, b, p, (x @ W.T + b)[p.row, p.col]),
        (x, W, b))
    assert torch.autograd.gradcheck(
        lambda x, W: pattern_linear(x, W, None, p, (x @ W.T)[p.row, p.col]), (x, W))
    c = torch.randn(4, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(  # centred input, with and without an x grad
        lambda x, W, b, c: pattern_linear(x, W, b, p, ((x - c) @ W.T + b)[p.row, p.col],
                                          c), (x, W, b, c))
    assert torch.autograd.gradcheck(
        lambda W, c: pattern_linear(x.detach(), W, None, p,
                                    ((x.detach() - c) @ W.T)[p.row, p.col], c), (W, c))
    S = torch.zeros(7, 9, dtype=torch.float64)
    S[p.row, p.col] = vals.detach()
    torch.testing.assert_close(pattern_decode(vals, p, W), S @ W)
    assert torch.autograd.gradcheck(lambda v, W: pattern_decode(v, p, W), (vals, W))
    empty = Pattern.from_mask(torch.zeros(3, 9, dtype=torch.bool))
    v0 = torch.zeros(0, **kw)
    assert torch.equal(pattern_decode(v0, empty, W), torch.zeros(3, 4,
                                                                 dtype=torch.float64))


def test_pattern_transposed_product_sums_repeated_pairs():
    idx = torch.tensor([[1, 1], [0, 2]])
    p = Pattern.from_indices(idx, 3)
    rhs = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    out = p.t_matmul(torch.tensor([1.0, 2.0, 3.0, 4.0]), rhs)
    torch.testing.assert_close(out, torch.tensor([[9.0, 12.0], [3.0, 6.0],
                                                  [12.0, 16.0]]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_topk_selection_on_integer_view_gives_the_topk_codes(dtype):
    g = torch.Generator().manual_seed(0)
    pre = (torch.randn(300, 40, generator=g) - 1.5).to(dtype)
    pre[0] = -1.0  # no positive entry
    pre[1, :3] = 0.0
    pre[1, 3:5] = -0.0

    def codes(idx):
        return torch.zeros_like(pre).scatter(1, idx, torch.relu(pre.gather(1, idx)))

    ref = codes(pre.topk(6, dim=1).indices)
    assert torch.equal(codes(topk_indices(pre, 6)), ref)


def test_relu_estimator_trains_the_same_with_and_without_the_sparse_path(
        monkeypatch):
    rng = np.random.RandomState(0)
    atoms = rng.randn(40, 10)
    coef = rng.rand(600, 40) * (rng.rand(600, 40) < 0.05)
    X = coef @ atoms + 0.01 * rng.randn(600, 10)
    params = {"n_components": 40, "activation": "relu", "alpha": 3.0, "max_iter": 4,
              "batch_size": 100, "random_state": 0, "device": "cpu", "log_every": 6}
    monkeypatch.setattr(SparseAutoencoderModule, "sparse_max_density", 0.0)
    dense = SparseAutoencoder(**params).fit(X)
    monkeypatch.setattr(SparseAutoencoderModule, "sparse_max_density", 1.0)
    sparse = SparseAutoencoder(**params).fit(X)
    np.testing.assert_allclose(sparse.components_, dense.components_, rtol=1e-9,
                               atol=1e-11)
    np.testing.assert_allclose(sparse.transform(X), dense.transform(X), rtol=1e-9,
                               atol=1e-11)
    for a, b in zip(sparse.history_, dense.history_, strict=True):
        assert a["l0"] == pytest.approx(b["l0"]) and a["fvu"] == pytest.approx(b["fvu"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape,k", [((300, 256), 4), ((64, 3072), 32)])
def test_two_stage_topk_on_wide_rows_gives_the_topk_codes(dtype, shape, k):
    """Wide rows take the chunked two-stage selection: same codes as topk,
    with ties, rows without enough positives and clustered large entries."""
    g = torch.Generator().manual_seed(1)
    pre = (torch.randn(*shape, generator=g) - 1.0).to(dtype)
    pre[0] = -1.0  # no positive entry
    pre[1] = 0.5  # all tied
    pre[2, :3 * k] = 5.0 + 0.25 * torch.arange(3 * k)  # in 3k contiguous columns
    pre[3, ::shape[1] // 8] = 7.0 + 0.5 * torch.arange(8)  # all in one chunk

    def codes(idx):
        return torch.zeros_like(pre).scatter(1, idx, torch.relu(pre.gather(1, idx)))

    idx = topk_indices(pre, k)
    assert idx.shape == (shape[0], k)
    assert (idx.sort(1).values.diff(dim=1) > 0).all()  # k distinct columns
    got, ref = codes(idx), codes(pre.topk(k, dim=1).indices)
    torch.testing.assert_close(got.sort(1).values, ref.sort(1).values, rtol=0, atol=0)
    # rows 2 and 3 have no ties among their top k: the same columns
    torch.testing.assert_close(got[2:4], ref[2:4], rtol=0, atol=0)


def test_decoder_norm_gradient_matches_torch_with_a_zero_row():

    g = torch.Generator().manual_seed(3)
    W = torch.randn(6, 5, generator=g, dtype=torch.float64)
    W[2] = 0.0
    W.requires_grad_()
    w = torch.randn(6, generator=g, dtype=torch.float64)
    ours, = torch.autograd.grad((row_norms(W) * w).sum(), W)
    ref, = torch.autograd.grad((torch.linalg.vector_norm(W, dim=1) * w).sum(), W)
    torch.testing.assert_close(ours, ref)
    assert torch.equal(ours[2], torch.zeros(5, dtype=torch.float64))
    rows = W.detach()[[0, 1, 3]].requires_grad_()
    assert torch.autograd.gradcheck(row_norms, (rows,))


@pytest.mark.parametrize("count_first", [True, False])
def test_support_positions_both_ways(count_first):

    mask = torch.rand(50, 40, generator=torch.Generator().manual_seed(4)) < 0.1
    flat = mask.reshape(-1)
    want = flat.nonzero().squeeze(1)
    got = support_positions(flat, len(want), count_first=count_first)
    assert torch.equal(got, want)
    assert support_positions(flat, len(want) - 1, count_first=count_first) is None


def test_pattern_decode_projected_weight_gradient():
    g = torch.Generator().manual_seed(5)
    mask, p = _pattern(g)
    W = torch.randn(9, 4, generator=g, dtype=torch.float64)
    W = (W / W.norm(dim=1, keepdim=True)).requires_grad_()
    vals = torch.randn(p.nnz, generator=g, dtype=torch.float64).requires_grad_()
    up = torch.randn(7, 4, generator=g, dtype=torch.float64)
    gv, gW = torch.autograd.grad((pattern_decode(vals, p, W) * up).sum(), (vals, W))
    gv_p, gW_p = torch.autograd.grad((pattern_decode(vals, p, W, project=True)
                                      * up).sum(), (vals, W))
    along = (gW * W).sum(1, keepdim=True)
    assert along.abs().max() > 1e-3  # the projection has something to remove
    torch.testing.assert_close(gW_p, gW - along * W.detach())
    torch.testing.assert_close(gv_p, gv)
