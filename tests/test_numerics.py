"""The measured numerical and input faults, one test each (issue "Hold up
under faults").

Each case failed before its fix: NaN codes from finite inputs near the ends
of float32's range, SPINE's silent NaN weights, complex tensors losing their
imaginary part, ``requires_grad`` tensors, unsupported devices, torch sparse
and meta tensors, bools as integers, a fit sized far beyond the memory, and an
unfitted `SparseCoder` given a tensor.
"""

import functools
import time
import warnings

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

from sparsecode import (
    SPINE,
    DictionaryLearning,
    MiniBatchDictionaryLearning,
    SparseAutoencoder,
    SparseCoder,
    SparseOvercompleteVectors,
    Transcoder,
)
from sparsecode.base import available_memory, check_memory, safe_rms
from sparsecode.nn import ACTIVATIONS, SparseAutoencoderModule

F32_MAX = float(np.finfo(np.float32).max)


def _data(n=40, d=5, scale=1.0, dtype=np.float32, seed=0):
    X = np.random.RandomState(seed).randn(n, d) * scale
    info = np.finfo(dtype)
    return np.clip(X, -info.max, info.max).astype(dtype)


def _sae(activation="topk", **kw):
    kw = {"n_components": 8, "k": 2, "max_iter": 1, "batch_size": 16,
          "random_state": 0, "device": "cpu", **kw}
    return SparseAutoencoder(activation=activation, **kw)


ESTIMATORS = {
    "DictionaryLearning": lambda d: DictionaryLearning(
        3, max_iter=2, transform_algorithm="lasso_lars", random_state=0,
        device="cpu"),
    "MiniBatchDictionaryLearning": lambda d: MiniBatchDictionaryLearning(
        3, max_iter=1, batch_size=8, random_state=0, device="cpu"),
    "SparseCoder": lambda d: SparseCoder(
        np.random.RandomState(1).randn(3, d), transform_algorithm="lasso_lars",
        device="cpu"),
    **{f"SparseAutoencoder-{a}": functools.partial(lambda a, d: _sae(a), a)
       for a in sorted(ACTIVATIONS)},
    "SparseOvercompleteVectors": lambda d: SparseOvercompleteVectors(
        6, max_iter=1, batch_size=16, random_state=0, device="cpu"),
    "SPINE": lambda d: SPINE(4, max_iter=1, batch_size=16, random_state=0,
                             device="cpu"),
}


# ------------------------------------------------- SAE near float32's range
@pytest.mark.parametrize("activation", ["topk", "relu", "gated"])
def test_sae_subnormal_float32_inputs_give_finite_codes(activation):
    """Subnormal float32 data (1e-42) used to give NaN codes: its input scale
    (1e42) overflowed float32. It now trains in float64."""
    X = _data(scale=1e-42)
    sae = _sae(activation).fit(X)
    codes = sae.transform(X)
    assert codes.dtype == np.float32 and np.isfinite(codes).all()
    assert np.isfinite(sae.components_).all()
    assert np.isfinite(sae.inverse_transform(codes)).all()
    assert codes.any()  # learned something, not all-zero codes


@pytest.mark.parametrize("activation", ["topk", "relu", "gated"])
def test_sae_near_float32_max_is_finite_or_a_clean_error(activation):
    """Finite inputs near float32's max (3e38) used to give NaN codes
    silently: the encoder overflowed. Representable codes are now finite; codes
    beyond float32's range raise a ValueError saying so."""
    X = _data(scale=1.5e38)
    sae = _sae(activation).fit(X)
    try:
        codes = sae.transform(X)
    except ValueError as err:  # topk, gated: codes near 4e38
        assert "overflows float32" in str(err)
    else:
        assert np.isfinite(codes).all()
    codes = sae.transform(X / 16)
    assert np.isfinite(codes).all() and codes.any()


def test_sae_encode_near_float32_max_matches_float64():
    """The module computes overflow-prone float32 inputs in float64: here
    ``x - b_pre`` overflows float32 while the codes are representable."""
    torch.manual_seed(0)
    sae = SparseAutoencoderModule(4, 6, "relu")
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn_like(p))
        sae.W_enc.mul_(1e-3)
        sae.b_pre.fill_(-2.5e38)
    x = torch.rand(5, 4) * 1e38 + 2e38
    codes, recon = sae.encode(x), sae.eval()(x)
    ref = sae.double().encode(x.double())
    assert codes.dtype == torch.float32 and torch.isfinite(codes).all()
    assert torch.isfinite(recon).all()
    torch.testing.assert_close(codes.double(), ref, rtol=1e-5, atol=0)


def test_sae_huge_float64_raises_instead_of_nan():
    """2.7e154 in float64: the squared norms overflow; it used to train to NaN."""
    X = _data(scale=2.7e154, dtype=np.float64)
    with pytest.raises(ValueError, match="not representable in float64"):
        _sae("topk").fit(X)


def test_sae_subnormal_with_float32_dtype_raises():
    with pytest.raises(ValueError, match="too small in magnitude"):
        _sae("topk", dtype="float32").fit(_data(scale=1e-42))


# -------------------------------------------------------- SPINE and SOV
def test_spine_huge_noise_raises_naming_noise():
    """noise=1.2e38 used to leave NaN weights without a warning."""
    with pytest.raises(ValueError, match="noise=1.2e"):
        SPINE(4, noise=1.2e38, max_iter=2, random_state=0, device="cpu").fit(_data())


def test_spine_huge_learning_rate_raises_naming_it():
    with pytest.raises(ValueError, match="learning_rate"):
        SPINE(4, optimizer="sgd", learning_rate=1e36, max_iter=3, random_state=0,
              device="cpu").fit(_data(scale=10.0))


def test_sov_huge_learning_rate_raises_naming_it():
    with pytest.raises(ValueError, match="learning_rate"):
        SparseOvercompleteVectors(6, learning_rate=1e38, max_iter=3, batch_size=16,
                                  random_state=0, device="cpu").fit(_data())


@pytest.mark.parametrize("scale", [1e-42, 1e30, 3e38])
@pytest.mark.parametrize("cls", [SPINE, SparseOvercompleteVectors])
def test_word_estimators_extreme_float32_scales_are_finite(cls, scale):
    """SPINE's and SOV's scales used to be computed from float32 squares (0 or
    inf); extreme float32 data is now fitted in float64."""
    X = _data(scale=scale)
    est = cls(4, max_iter=1, batch_size=16, random_state=0, device="cpu")
    codes = est.fit_transform(X)
    assert codes.dtype == np.float32 and np.isfinite(codes).all()
    assert np.isfinite(est.components_).all()
    rel = np.abs(est.components_).max() / np.abs(X).max()
    assert 1e-4 < rel < 1e4  # in the units of X


# ------------------------------------------------------------ containers
@pytest.mark.parametrize("name", list(ESTIMATORS) + ["Transcoder"])
def test_complex_tensors_raise_type_error(name):
    """A complex tensor used to lose its imaginary part silently."""
    X = torch.randn(20, 4, dtype=torch.complex64)
    if name == "Transcoder":
        est, args = Transcoder(6, k=2, max_iter=1, device="cpu"), (X, X.real)
    else:
        est, args = ESTIMATORS[name](4), (X,)
    with pytest.raises(TypeError, match="complex"):
        est.fit(*args)


@pytest.mark.parametrize("container", ["numpy", "pandas", "list"])
def test_complex_arrays_raise_type_error_naming_the_dtype(container):
    X = np.ones((10, 3)) * (1 + 1j)
    X = {"numpy": X, "list": X.tolist(),
         "pandas": pytest.importorskip("pandas").DataFrame(X)}[container]
    with pytest.raises(TypeError, match="complex"):
        DictionaryLearning(2, max_iter=1, device="cpu").fit(X)


@pytest.mark.parametrize("name", ["DictionaryLearning", "MiniBatchDictionaryLearning",
                                  "SparseCoder", "SparseOvercompleteVectors", "SPINE"])
def test_requires_grad_tensors_are_detached(name):
    """Tensors that require grad used to fail ("Can't call numpy() ...")."""
    X = torch.randn(20, 4, requires_grad=True)
    codes = ESTIMATORS[name](4).fit_transform(X)
    assert isinstance(codes, torch.Tensor) and not codes.requires_grad
    assert torch.isfinite(codes).all() and codes.shape[0] == 20


@pytest.mark.parametrize("device", ["mps", "meta", "tpu", "xpu", "garbage",
                                    torch.device("meta")])
def test_unsupported_devices_raise_a_clear_value_error(device):
    for make in (ESTIMATORS["DictionaryLearning"], ESTIMATORS["SPINE"],
                 ESTIMATORS["SparseAutoencoder-topk"]):
        est = make(5).set_params(device=device)
        with pytest.raises(ValueError, match="'cpu', 'cuda' or 'cuda:N'"):
            est.fit(_data())


def test_torch_sparse_and_meta_tensors_say_what_to_pass():
    X = torch.randn(10, 4)
    est = DictionaryLearning(2, max_iter=1, device="cpu")
    with pytest.raises(TypeError, match=r"to_dense\(\)"):
        est.fit(X.to_sparse())
    with pytest.raises(TypeError, match=r"to_dense\(\)"):
        est.fit(X.to_sparse_csr())
    with pytest.raises(ValueError, match="'meta' device"):
        est.fit(X.to("meta"))


def test_read_only_and_big_endian_arrays_are_accepted():
    X = _data(dtype=np.float64)
    ro = X.copy()
    ro.flags.writeable = False
    big = X.astype(">f8")
    for arr in (ro, big):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # torch: "not writable"
            est = SPINE(3, max_iter=1, random_state=0, device="cpu")
            codes = est.fit_transform(arr)
        assert np.isfinite(codes).all()


# ------------------------------------------------------------ parameters
@pytest.mark.parametrize("make", [
    lambda v: DictionaryLearning(v, device="cpu"),
    lambda v: MiniBatchDictionaryLearning(v, device="cpu"),
    lambda v: SparseAutoencoder(v, device="cpu"),
    lambda v: Transcoder(v, device="cpu"),
    lambda v: SparseOvercompleteVectors(v, device="cpu"),
    lambda v: SPINE(v, device="cpu"),
])
def test_bool_n_components_is_refused(make):
    """n_components=True used to be accepted as 1."""
    X = _data()
    with pytest.raises(InvalidParameterError, match="n_components.*Got True"):
        make(True).fit(X, X)


@pytest.mark.parametrize("param", ["max_iter", "batch_size", "k"])
def test_bool_integer_parameters_are_refused(param):
    with pytest.raises(InvalidParameterError, match=param):
        _sae("topk", **{param: True}).fit(_data())


def test_bool_where_a_bool_is_expected_is_accepted():
    SPINE(3, max_iter=1, verbose=False, random_state=0, device="cpu").fit(_data())


@pytest.mark.parametrize("make", [
    lambda: SparseOvercompleteVectors(10**9, device="cpu"),
    lambda: SparseAutoencoder(10**9, activation="gated", device="cpu"),
    lambda: SparseAutoencoder(10**9, activation="topk", k=4, device="cpu"),
    lambda: DictionaryLearning(10**9, device="cpu"),
    lambda: MiniBatchDictionaryLearning(10**9, device="cpu"),
    lambda: SPINE(10**9, device="cpu"),
])
def test_a_fit_far_beyond_memory_fails_fast_naming_the_parameter(make):
    """n_components=10**9 used to spend 40 s and 8-12 GB before failing."""
    if available_memory("cpu") is None:
        pytest.skip("free memory is unknown on this platform")
    X = _data(d=64)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"n_components=1000000000 needs at least "
                                         r"[\d,]+ bytes .* only [\d,]+ bytes"):
        make().fit(X)
    assert time.perf_counter() - t0 < 5


def test_check_memory_and_available_memory():
    free = available_memory("cpu")
    assert free is None or free > 0
    assert available_memory("meta") is None
    check_memory(1, param="n_components", value=1)  # fits
    if free is not None:
        with pytest.raises(ValueError, match="reduce n_components"):
            check_memory(free * 2.0, param="n_components", value=7)


def test_unfitted_sparse_coder_takes_a_tensor():
    """SparseCoder.transform(tensor) before fit raised AttributeError."""
    D = np.random.RandomState(0).randn(3, 5).astype(np.float32)
    X = torch.as_tensor(_data(n=7))
    codes = SparseCoder(D, device="cpu").transform(X)
    assert isinstance(codes, torch.Tensor) and codes.shape == (7, 3)
    assert torch.isfinite(codes).all()


# ---------------------------------------------------------------- helpers
@pytest.mark.parametrize("value, dtype", [(3e38, torch.float32), (1e-42, torch.float32),
                                          (1e300, torch.float64),
                                          (1e-310, torch.float64)])
def test_safe_rms_has_no_overflow_or_underflow(value, dtype):
    X = torch.full((7, 3), value, dtype=dtype)
    X[0, 0] = -value
    assert safe_rms(X) == pytest.approx(float(X[1, 1]), rel=1e-6)
    assert safe_rms(torch.zeros(3, 2)) == 0.0
