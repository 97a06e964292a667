"""The VP↔VE bridge (Kawar et al., 2022, App. B) on the analytic Gaussian prior, whose VE score is known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from monai_ddpm_recon.operators.fft import fft2c, ifft2c
from monai_ddpm_recon.priors.gaussian import GaussianPrior
from monai_ddpm_recon.solvers.vp_ve import (
    abar_at,
    abar_from_sigma,
    check_timesteps,
    geometric_timesteps,
    sigma_at,
    sigma_to_timestep,
    ve_score,
    ve_sigmas,
    ve_to_vp,
    vp_to_ve,
)


@pytest.fixture
def prior():
    return GaussianPrior((16, 16), mean=0.1, std=0.3)


def analytic_ve_score(prior: GaussianPrior, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """x^VE = x0 + σ z with x0 ~ N(μ, Σ): x^VE ~ N(μ, Σ + σ² I), score -(Σ + σ² I)⁻¹ (x - μ) (spectral)."""
    filt = 1.0 / (prior.power + sigma**2)
    return -ifft2c(fft2c((x - prior.mean).to(torch.complex128)) * filt).real


def test_sigma_and_abar_are_inverse(prior):
    sig = ve_sigmas(prior.alphas_cumprod)
    assert torch.all(sig[1:] > sig[:-1])
    torch.testing.assert_close(abar_from_sigma(sig), prior.alphas_cumprod, rtol=1e-12, atol=0)
    like = torch.zeros(1, dtype=torch.float64)
    assert float(sigma_at(prior, -1, like)) == 0.0 and float(abar_at(prior, -1, like)) == 1.0
    assert math.isclose(float(sigma_at(prior, 999, like)), float(sig[999]))


@pytest.mark.parametrize("t", [0, 10, 250, 999])
def test_ve_score_from_eps_equals_analytic(prior, t):
    g = torch.Generator().manual_seed(t)
    sigma = float(ve_sigmas(prior.alphas_cumprod)[t])
    x_ve = prior.sample(3, g) + sigma * torch.randn(3, 1, 16, 16, generator=g, dtype=torch.float64)
    torch.testing.assert_close(ve_score(prior, x_ve, t), analytic_ve_score(prior, x_ve, sigma), rtol=1e-9, atol=1e-12)


def test_ve_score_is_rescaled_vp_score(prior):
    """s^VE(x) = sqrt(ᾱ) s^VP(sqrt(ᾱ) x), and s^VP = sqrt(1 + σ²) s^VE at the corresponding points."""
    t = 400
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    a = prior.abar(t, x)
    s_vp = prior.score(ve_to_vp(x, a), t)
    s_ve = ve_score(prior, x, t)
    torch.testing.assert_close(s_ve, a.sqrt() * s_vp)
    torch.testing.assert_close(s_vp, (1 + sigma_at(prior, t, x) ** 2).sqrt() * s_ve)
    torch.testing.assert_close(vp_to_ve(ve_to_vp(x, a), a), x)


def test_ve_samples_from_vp_forward_process(prior):
    """x_t^VP / sqrt(ᾱ_t) has the VE marginal: mean μ, variance diag(P) + σ_t² in the Fourier basis."""
    g = torch.Generator().manual_seed(0)
    t = 300
    x0 = prior.sample(4000, g)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    a = prior.abar(t, x0)
    x_ve = vp_to_ve(prior.add_noise(x0, noise, t), a)
    sigma = float(sigma_at(prior, t, x0))
    var = (fft2c((x_ve - prior.mean).to(torch.complex128)).abs() ** 2).mean(0)[0]
    torch.testing.assert_close(var, prior.power + sigma**2, rtol=0.15, atol=0)


def test_sigma_to_timestep(prior):
    sig = ve_sigmas(prior.alphas_cumprod)
    for t in (0, 17, 500, 999):
        assert sigma_to_timestep(prior, float(sig[t])) == t
        assert math.isclose(sigma_to_timestep(prior, float(sig[t]), "interpolate"), t, abs_tol=1e-6)
    mid = math.sqrt(float(sig[100] * sig[101]))  # geometric midpoint: halfway in log σ
    assert math.isclose(sigma_to_timestep(prior, mid, "interpolate"), 100.5, abs_tol=1e-6)
    assert sigma_to_timestep(prior, 1e6) == 999 and sigma_to_timestep(prior, 1e-9) == 0
    with pytest.raises(ValueError, match="outside"):
        sigma_to_timestep(prior, 1e6, "interpolate")
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="sigma"):
            sigma_to_timestep(prior, bad)
    with pytest.raises(ValueError, match="rounding"):
        sigma_to_timestep(prior, 1.0, "cubic")


def test_geometric_timesteps(prior):
    times = geometric_timesteps(prior, 30)
    assert times[0] == 999 and times[-1] == 0
    assert all(b < a for a, b in zip(times, times[1:]))
    sig = ve_sigmas(prior.alphas_cumprod)[times]
    ratios = (sig[:-1] / sig[1:]).log()
    assert float(ratios.std() / ratios.mean()) < 0.35  # roughly constant ratio (snapped to the integer grid)
    with pytest.raises(ValueError, match="num_levels"):
        geometric_timesteps(prior, 0)


def test_check_timesteps():
    assert check_timesteps("timesteps", [9, 5, 0], 10) == [9, 5, 0]
    with pytest.raises(ValueError, match="timesteps is empty"):
        check_timesteps("timesteps", [], 10)
    with pytest.raises(ValueError, match="strictly decreasing"):
        check_timesteps("timesteps", [3, 5], 10)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        check_timesteps("timesteps", [10, 2], 10)
