"""The encoder matmul helper: oneDNN on the CPU, F.linear's values and gradients."""

import pytest
import torch
import torch.nn.functional as F

from sparsecode.nn import linear as lin


def _data(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(33, 20, generator=g, dtype=dtype)
    W = torch.randn(47, 20, generator=g, dtype=dtype)
    b = torch.randn(47, generator=g, dtype=dtype)
    return x, W, b


def test_onednn_path_is_taken_on_this_cpu():
    x, W, b = _data()
    assert lin.onednn_available() == torch.backends.mkldnn.is_available()
    assert lin.uses_onednn(x, W, b) == lin.onednn_available()
    assert not lin.uses_onednn(x.double(), W.double(), b.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not lin.uses_onednn(x, W, b)


@pytest.mark.parametrize("bias", [True, False])
def test_values_and_gradients_match_f_linear(bias):
    x, W, b = _data()
    b = b if bias else None
    leaves = [t.clone().requires_grad_() for t in (x, W) + ((b,) if bias else ())]
    ref_leaves = [t.clone().requires_grad_() for t in (x, W) + ((b,) if bias else ())]
    out = lin.linear(*leaves) if bias else lin.linear(*leaves, None)
    ref = F.linear(*ref_leaves) if bias else F.linear(*ref_leaves, None)
    torch.testing.assert_close(out, ref)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad(out, leaves, g)
    ref_grads = torch.autograd.grad(ref, ref_leaves, g)
    for a, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, r)
    with torch.no_grad():  # the autograd-free call
        torch.testing.assert_close(lin.linear(x, W, b), F.linear(x, W, b))


def test_non_contiguous_and_fallback_dtypes():
    x, W, b = _data()
    xt = torch.randn(20, 33).T  # a transposed view
    torch.testing.assert_close(lin.linear(xt, W, b), F.linear(xt, W, b))
    xd, Wd, bd = _data(torch.float64)
    assert torch.equal(lin.linear(xd, Wd, bd), F.linear(xd, Wd, bd))
