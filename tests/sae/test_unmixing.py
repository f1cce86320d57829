"""The simplex activation, the sad loss term, the projection hook and
`UnmixingAutoencoder`."""

import numpy as np
import pytest
import torch

from sparsecode.data.spectra import make_unmixing
from sparsecode.metrics.unmixing import match_endmembers, spectral_angle
from sparsecode.nn import LOSS_TERMS, SparseAutoencoderModule, make_activation
from sparsecode.nn.variants import ReLU
from sparsecode.sae import SparseAutoencoder
from sparsecode.sae.unmixing import UnmixingAutoencoder, extreme_pixels


def test_simplex_codes_are_on_the_simplex_with_finite_gradients():
    act = make_activation("simplex", 5)
    pre = torch.randn(64, 5, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        pre[0] = -1.0  # no positive entry: uniform codes
    codes = act(pre)
    assert (codes >= 0).all() and torch.allclose(codes.sum(1), torch.ones(64).double())
    assert torch.allclose(codes[0], torch.full((5,), 0.2).double())
    # where entries are positive the codes are proportional to them
    row = pre[1].detach().clamp_min(0)
    assert torch.allclose(codes[1], row / row.sum())
    (codes * torch.randn(64, 5).double()).sum().backward()
    assert torch.isfinite(pre.grad).all() and (pre.grad[0] == 0).all()


def test_simplex_folds_an_input_scale():
    mod = SparseAutoencoderModule(6, 3, "simplex", dtype=torch.float64)
    x = torch.rand(20, 6, dtype=torch.float64)
    mod.reset_parameters_(x, torch.Generator().manual_seed(0), b_pre_init="mean")
    scale = 7.0
    on_scaled = mod(scale * x) / scale
    mod.fold_scale_(scale)
    assert torch.allclose(mod(x), on_scaled)
    assert torch.allclose(mod.encode(x).sum(1), torch.full((20,), 1 / scale).double())


def test_sad_term_is_the_mean_spectral_angle_with_finite_gradient_at_zero():
    fn, weight = LOSS_TERMS["sad"]
    assert weight == "alpha" and "sad" in make_activation("simplex", 2).loss_terms
    x = torch.rand(30, 8, dtype=torch.float64)
    x_hat = (x + 0.1 * torch.rand(30, 8, dtype=torch.float64)).requires_grad_()
    out = type("Out", (), {"x_hat": x_hat})()
    value = fn(out, x, None)
    expected = spectral_angle(x.numpy(), x_hat.detach().numpy()).mean()
    assert value.item() == pytest.approx(expected, rel=1e-6)
    exact = type("Out", (), {"x_hat": x.clone().requires_grad_()})()
    fn(exact, x, None).backward()
    assert fn(exact, x, None).item() < 1e-6 and torch.isfinite(exact.x_hat.grad).all()


def test_projection_hook_runs_after_every_step():
    assert ReLU(3).project_(None) is None  # the base hook does nothing
    X = np.random.RandomState(0).randn(300, 5)  # data with negative entries
    fits = [SparseAutoencoder(4, activation="simplex", max_iter=3, batch_size=50,
                              activation_params={"nonnegative_decoder": flag},
                              random_state=0, device="cpu").fit(X)
            for flag in (True, False)]
    # random initial decoder rows have negative entries; the hook clamps them
    assert (fits[0].components_ >= 0).all() and (fits[0].components_ > 0).any()
    assert (fits[1].components_ < 0).any()  # no projection by default
    est = fits[0]
    codes = est.transform(X)
    assert np.allclose(codes.sum(1), codes.sum(1)[0]) and (codes >= 0).all()


def test_extreme_pixels_finds_the_pure_pixels_of_a_mixture():
    rng = np.random.RandomState(0)
    E = rng.rand(3, 10)
    A = np.vstack([np.eye(3), rng.dirichlet([1, 1, 1], size=200)])
    idx = extreme_pixels(torch.from_numpy(A @ E), 3)
    assert sorted(idx.tolist()) == [0, 1, 2]


def test_unmixing_autoencoder_recovers_endmembers_and_keeps_its_constraints():
    X, E, A = make_unmixing(1500, 3, snr_db=35, concentration=0.5, random_state=0)
    X = np.clip(X, 0, None)
    model = UnmixingAutoencoder(3, max_iter=12, batch_size=250, random_state=0,
                                device="cpu").fit(X)
    abundances = model.abundances(X)
    assert (model.endmembers_ >= 0).all()
    assert (abundances >= 0).all() and np.allclose(abundances.sum(1), 1)
    assert float(model.module_.b_pre.abs().max()) == 0.0  # no decoder bias
    np.testing.assert_allclose(model.inverse_transform(abundances),
                               abundances @ model.endmembers_, atol=1e-6)
    _, angles = match_endmembers(E, model.endmembers_)
    start = X[extreme_pixels(torch.from_numpy(X), 3).numpy()]
    _, start_angles = match_endmembers(E, start)
    assert angles.mean() < 0.1 and angles.mean() < start_angles.mean()
    assert {"mse", "sad"} <= set(model.history_[-1])


def test_sad_weight_enters_the_loss_and_parameters_are_validated():
    X = np.abs(np.random.RandomState(0).randn(200, 6))
    fits = [UnmixingAutoencoder(2, sad_weight=w, max_iter=2, batch_size=50,
                                random_state=0, device="cpu").fit(X)
            for w in (0.0, 10.0)]
    assert fits[0].history_[-1]["sad"] == 0.0 < fits[1].history_[-1]["sad"]
    assert not np.allclose(fits[0].endmembers_, fits[1].endmembers_)
    with pytest.raises(ValueError, match="n_components"):
        UnmixingAutoencoder(0, device="cpu").fit(X)
    with pytest.raises(ValueError, match="sad_weight"):
        UnmixingAutoencoder(2, sad_weight=-1.0, device="cpu").fit(X)


def test_save_and_load_keep_the_endmembers_and_constraints(tmp_path):
    import sparsecode

    X, _, _ = make_unmixing(400, 3, snr_db=30, purity=0.9, random_state=0)
    est = UnmixingAutoencoder(3, max_iter=5, random_state=0, device="cpu").fit(X)
    back = sparsecode.load(sparsecode.save(est, tmp_path / "unmix"))
    assert type(back) is UnmixingAutoencoder
    np.testing.assert_array_equal(back.endmembers_, est.endmembers_)
    np.testing.assert_array_equal(back.transform(X), est.transform(X))
    back.partial_fit(X)  # training goes on under the same constraints
    assert (back.endmembers_ >= 0).all()
    np.testing.assert_allclose(back.transform(X).sum(1), 1.0, rtol=1e-5)
