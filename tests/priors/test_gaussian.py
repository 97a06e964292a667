"""The analytic Gaussian prior against dense linear algebra on a small grid."""

from __future__ import annotations

import pytest
import torch

from monai_ddpm_recon.operators import MaskedFourier, fft2c, make_mask
from monai_ddpm_recon.priors.gaussian import GaussianPrior, radial_power_spectrum

N = 8


def _dense(fn, n=N):
    """Matrix of a linear map on real (1, 1, n, n) images."""
    eye = torch.eye(n * n, dtype=torch.float64).reshape(n * n, 1, n, n)
    return fn(eye).reshape(n * n, -1).T


@pytest.fixture
def prior():
    return GaussianPrior((N, N), mean=0.1, power_spectrum=radial_power_spectrum((N, N), 1.0), std=0.5)


def test_power_spectrum_is_hermitian_so_samples_are_real(prior):
    p = prior.power
    flipped = torch.roll(torch.flip(p, dims=(0, 1)), shifts=(1, 1), dims=(0, 1))  # k -> -k on the centred grid
    torch.testing.assert_close(p, flipped)
    w = torch.randn(3, 1, N, N, dtype=torch.float64)
    from monai_ddpm_recon.operators import ifft2c

    complex_out = ifft2c(fft2c(w.to(torch.complex128)) * prior.power.sqrt())
    assert float(complex_out.imag.abs().max()) < 1e-12


@pytest.mark.parametrize("t", [0, 250, 999])
def test_eps_is_the_exact_conditional_mean(prior, t):
    sigma = _dense(prior.covariance_apply)
    a = float(prior.alphas_cumprod[t])
    sigma_t = a * sigma + (1 - a) * torch.eye(N * N, dtype=torch.float64)
    x_t = torch.randn(2, 1, N, N, dtype=torch.float64)
    mu = prior.mean.reshape(-1)
    centred = x_t.reshape(2, -1) - a**0.5 * mu
    expected = (1 - a) ** 0.5 * torch.linalg.solve(sigma_t, centred.T).T
    torch.testing.assert_close(prior.eps(x_t, t).reshape(2, -1), expected)
    # x0 / score are consistent with eps
    torch.testing.assert_close(prior.score(x_t, t), -prior.eps(x_t, t) / (1 - a) ** 0.5)


def test_sample_covariance(prior):
    x = prior.sample(20000, torch.Generator().manual_seed(0)).reshape(20000, -1)
    emp = torch.cov(x.T)
    torch.testing.assert_close(emp, _dense(prior.covariance_apply), atol=0.01, rtol=0)
    torch.testing.assert_close(x.mean(0), prior.mean.reshape(-1), atol=0.01, rtol=0)


def test_posterior_mean_matches_dense_solution(prior):
    op = MaskedFourier(make_mask("random", (N, N), 2, 0.25, seed=0).to(torch.float64), (N, N))
    fwd = lambda v: op.forward(v.to(torch.complex128))  # noqa: E731
    x = prior.sample(1, torch.Generator().manual_seed(1))
    noise_var = 0.01
    y = fwd(x) + (noise_var / 2) ** 0.5 * torch.randn(1, 1, N, N, dtype=torch.complex128)
    got = prior.posterior_mean(y, fwd, op.adjoint, noise_var)
    # dense: precision Σ⁻¹ + (2/σ²) Re(AᴴA); mean μ + P⁻¹ (2/σ²) Re Aᴴ(y − Aμ)
    sigma = _dense(prior.covariance_apply)
    normal = _dense(lambda v: op.normal(v.to(torch.complex128)).real)
    prec = torch.linalg.inv(sigma) + (2 / noise_var) * normal
    mu = prior.mean.reshape(-1)
    rhs = (2 / noise_var) * op.adjoint(y - fwd(prior.mean.reshape(1, 1, N, N))).real.reshape(-1)
    expected = mu + torch.linalg.solve(prec, rhs)
    torch.testing.assert_close(got.reshape(-1), expected, atol=1e-6, rtol=1e-6)


def test_bad_power_spectrum():
    with pytest.raises(ValueError, match="power_spectrum"):
        GaussianPrior((N, N), power_spectrum=-torch.ones(N, N))
    with pytest.raises(ValueError, match="power_spectrum"):
        GaussianPrior((N, N), power_spectrum=torch.ones(N, N + 1))
