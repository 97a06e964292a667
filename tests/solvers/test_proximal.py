"""Proximal data consistency (DDS, DiffPIR), the DiffPIR stepper, DPS, per-item CG and the sampler × rule composition."""

from __future__ import annotations

import pytest
import torch

from monai_ddpm_recon.operators import MaskedFourier, SenseOperator, birdcage_maps, make_mask
from monai_ddpm_recon.operators.fft import fft2c
from monai_ddpm_recon.operators.noise import estimate_noise_std
from monai_ddpm_recon.priors.base import DiffusionPrior
from monai_ddpm_recon.solvers import (
    DDIMSampler,
    DecomposedDiffusionSolver,
    DiffPIRSampler,
    DiffPIRSolver,
    DiffusionSolver,
    DPSSolver,
    LossGuidance,
    LossGuidanceSolver,
    ProximalDataConsistency,
    ZeroFilledSolver,
)
from monai_ddpm_recon.solvers.diffusion import Measurement, conjugate_gradient
from monai_ddpm_recon.solvers.mapping import PriorMapping
from monai_ddpm_recon.solvers.sampling import DDIMStepper, DiffPIRStepper, StepContext
from tests.solvers.diffusion_helpers import SIZE, gaussian_prior, make_problem


class _TwoChannelGaussian(DiffusionPrior):
    """Real and imaginary parts independent draws of the analytic Gaussian prior: an exact 2-channel ε-network."""

    def __init__(self) -> None:
        super().__init__(SIZE, channels=2)
        self.g = gaussian_prior()

    def eps(self, x_t, t):
        return torch.cat([self.g.eps(x_t[:, :1], t), self.g.eps(x_t[:, 1:], t)], dim=1)

    def sample(self, n, generator):
        return torch.cat([self.g.sample(n, generator), self.g.sample(n, generator)], dim=1)


def _measurement(prior, kspace, operator, mapping):
    return Measurement(prior, DDIMSampler(10).stepper(prior), [], kspace, operator, mapping, torch.Generator().manual_seed(0))


def _ctx(x0, t=500):
    return StepContext(x0, t, t - 50, torch.zeros_like(x0), x0, None, 0, None)


def test_proximal_step_is_the_closed_form_prox_for_a_complex_prior():
    """2-channel prior, single coil: (FᴴMF + ρ) u = FᴴM y + ρ u0 is diagonal in k-space, k = (M y + ρ k0)/(M + ρ)."""
    prior = _TwoChannelGaussian()
    mask = make_mask("random", SIZE, 4, 0.08, seed=0).to(torch.float64)
    op = MaskedFourier(mask, SIZE)
    g = torch.Generator().manual_seed(0)
    y = op.forward(torch.randn(2, 1, *SIZE, generator=g, dtype=torch.complex128))
    mapping = PriorMapping(torch.ones(2, 1, 1, 1, dtype=torch.float64), None, 2)
    x0 = 0.5 * torch.randn(2, 2, *SIZE, generator=g, dtype=torch.float64)
    rule = ProximalDataConsistency("constant", rho=0.3, cg_iterations=50, cg_tol=1e-12, clip_x0=False)
    out = rule.bind(_measurement(prior, y, op, mapping)).on_x0(_ctx(x0))
    u0 = torch.complex(x0[:, :1], x0[:, 1:])
    m = mask.expand(1, 1, *SIZE)
    expected = torch.fft.ifftshift(torch.fft.ifft2(torch.fft.fftshift((m * y + 0.3 * fft2c(u0)) / (m + 0.3), dim=(-2, -1)),
                                                   norm="ortho"), dim=(-2, -1))
    torch.testing.assert_close(torch.complex(out[:, :1], out[:, 1:]), expected)
    assert rule.report()["cg_residual_last"] < 1e-10


def test_proximal_step_solves_the_magnitude_normal_equations_with_phase():
    """1-channel prior with smooth phase: v = (x+1)/2 solves Re(φ* AᴴA φ v) + ρ v = Re(φ* Aᴴ y_n) + ρ v0 (multi-coil)."""
    phase = torch.exp(1j * torch.linspace(0, 1.5, SIZE[1], dtype=torch.float64)).reshape(1, 1, 1, -1).expand(1, 1, *SIZE)
    p = make_problem(coils=4, phase=phase)
    rule = ProximalDataConsistency("constant", rho=0.1, cg_iterations=200, cg_tol=1e-12, clip_x0=False, space="prior")
    x0 = p.zero_filled.clone()
    out = rule.bind(_measurement(p.prior, p.kspace, p.operator, p.mapping)).on_x0(_ctx(x0))
    ph = p.mapping.phase
    v, v0 = (out + 1) / 2, (x0 + 1) / 2
    lhs = (ph.conj() * p.operator.normal(v.to(torch.complex128) * ph)).real + 0.1 * v
    rhs = (ph.conj() * p.operator.adjoint(p.kspace / p.mapping.scale)).real + 0.1 * v0
    torch.testing.assert_close(lhs, rhs, atol=1e-8, rtol=1e-8)
    # image space (the default with an estimated phase): the complex prox, projected onto the real-along-φ manifold
    image_rule = ProximalDataConsistency("constant", rho=0.1, cg_iterations=200, cg_tol=1e-12, clip_x0=False)
    out = image_rule.bind(_measurement(p.prior, p.kspace, p.operator, p.mapping)).on_x0(_ctx(x0))
    u0 = v0.to(torch.complex128) * ph
    u = conjugate_gradient(lambda w: p.operator.normal(w) + 0.1 * w, p.operator.adjoint(p.kspace / p.mapping.scale)
                           + 0.1 * u0, u0, 200, 1e-12).x
    torch.testing.assert_close((out + 1) / 2, (ph.conj() * u).real, atol=1e-8, rtol=1e-8)


def test_diffpir_weight_follows_noise_level():
    p = make_problem()
    rule = ProximalDataConsistency("diffpir", lam=2.0, sigma_y=0.05)
    m = _measurement(p.prior, p.kspace, p.operator, p.mapping)
    like = torch.zeros((), dtype=torch.float64)
    for t in (10, 300, 900):
        a = p.prior.abar(t, like)
        sigma_bar = ((1 - a) / a).sqrt() / 2
        torch.testing.assert_close(rule.rho_at(m, t, like), 2.0 * 0.05**2 / sigma_bar**2)
    assert float(rule.rho_at(m, 900, like)) < float(rule.rho_at(m, 10, like))


@pytest.mark.parametrize("preset", ["dds", "diffpir"])
@pytest.mark.parametrize("coils", [1, 4])
def test_proximal_presets_move_toward_posterior_mean(preset, coils):
    p = make_problem(coils=coils)
    kw = dict(num_steps=20, num_samples=8, phase_mode="none", clip_x0=False)
    solver = DecomposedDiffusionSolver(p.prior, **kw) if preset == "dds" else DiffPIRSolver(p.prior, **kw)
    out = solver(p.kspace, p.operator)
    zf_err = p.rel_error(ZeroFilledSolver()(p.kspace, p.operator))
    assert out.shape == p.image.shape and bool(torch.isfinite(out).all())
    assert p.rel_error(out) < (0.6 if coils == 1 else 0.7) * zf_err, (p.rel_error(out), zf_err)
    assert solver.info.nfe == 20 and solver.info.extra["cg_residual_max"] is not None


def test_proximal_works_with_two_channel_prior_and_smooth_phase():
    prior = _TwoChannelGaussian()
    g = torch.Generator().manual_seed(3)
    x = prior.sample(2, g)
    op = SenseOperator(birdcage_maps(4, SIZE).to(torch.complex128).reshape(1, 4, *SIZE),
                       make_mask("random", SIZE, 4, 0.08, seed=1).to(torch.float64))
    image = torch.complex(x[:, :1], x[:, 1:])
    # physical units in which the solver's estimated scale is 1, so the mapping reproduces the prior's x
    image = image / PriorMapping.from_kspace(op.forward(image), op, 2).scale
    y = op.forward(image)
    out = DiffPIRSolver(prior, num_steps=20, num_samples=8, seed=0)(y, op)
    zf = ZeroFilledSolver()(y, op)
    # zero-filling is near-optimal for these smooth fields; the posterior mean improves on it by ~20 %
    assert float((out - image).norm()) < 0.85 * float((zf - image).norm())
    # magnitude prior + smooth phase estimated from the calibration region
    phase = torch.exp(1j * torch.linspace(0, 1.0, SIZE[1], dtype=torch.float64)).reshape(1, 1, 1, -1).expand(1, 1, *SIZE)
    p = make_problem(coils=4, phase=phase)
    zf_err = float((ZeroFilledSolver()(p.kspace, p.operator) - p.image).norm())
    out = DiffPIRSolver(p.prior, num_steps=20, num_samples=8)(p.kspace, p.operator)  # space="auto" -> image
    assert float((out - p.image).norm()) < 0.8 * zf_err
    # the constrained solve fits the data along the estimated (slightly wrong) phase and amplifies the mismatch: the
    # reason the default solves over the complex image when the phase is estimated
    constrained = DiffPIRSolver(p.prior, num_steps=20, num_samples=8, space="prior")(p.kspace, p.operator)
    assert float((constrained - p.image).norm()) > float((out - p.image).norm())


def test_cg_that_stops_short_reports_its_residual():
    p = make_problem(coils=4)
    short = DiffPIRSolver(p.prior, num_steps=5, cg_iterations=1, phase_mode="none")
    short(p.kspace, p.operator)
    assert short.info.extra["cg_residual_max"] > 1e-3
    full = DiffPIRSolver(p.prior, num_steps=5, cg_iterations=30, phase_mode="none")
    full(p.kspace, p.operator)
    assert full.info.extra["cg_residual_max"] < short.info.extra["cg_residual_max"]


def test_bad_proximal_arguments_name_the_argument():
    prior = gaussian_prior()
    for kw, name in [
        (dict(rho=0), "rho"), (dict(rho=-1), "rho"), (dict(cg_iterations=0), "cg_iterations"),
        (dict(cg_iterations=2.5), "cg_iterations"), (dict(eta=1.5), "eta"), (dict(eta=-0.1), "eta"),
    ]:
        with pytest.raises(ValueError, match=name):
            DecomposedDiffusionSolver(prior, **kw)
    for kw, name in [(dict(lam=0), "lam"), (dict(lam=-2), "lam"), (dict(lam="x"), "lam"),
                     (dict(sigma_y=0), "sigma_y"),
                     (dict(zeta=1.5), "zeta"), (dict(zeta=-0.2), "zeta"), (dict(zeta="x"), "zeta")]:
        with pytest.raises(ValueError, match=name):
            DiffPIRSolver(prior, **kw)
    with pytest.raises(ValueError, match="weight"):
        ProximalDataConsistency("hard")
    with pytest.raises(ValueError, match="space"):
        ProximalDataConsistency(space="kspace")
    with pytest.raises(TypeError, match="sampler"):
        DiffusionSolver(prior, sampler=object())
    with pytest.raises(TypeError, match="rule"):
        DiffusionSolver(prior, rule=object())


def test_conjugate_gradient_is_independent_per_item():
    """Each batch item gets its own step sizes: a slice's solution does not depend on the rest of the batch."""
    g = torch.Generator().manual_seed(0)
    d = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64) * torch.tensor([1.0, 100.0, 0.01]).reshape(3, 1, 1, 1)
    b = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64)
    batch = conjugate_gradient(lambda x: (d + 0.1) * x, b, max_iter=3).x
    single = torch.cat([conjugate_gradient(lambda x, i=i: (d[i : i + 1] + 0.1) * x, b[i : i + 1], max_iter=3).x
                        for i in range(3)])
    torch.testing.assert_close(batch, single)
    exact = conjugate_gradient(lambda x: (d + 0.1) * x, b, max_iter=200, tol=1e-14)
    torch.testing.assert_close(exact.x, b / (d + 0.1))
    assert float(exact.relative_residual.max()) < 1e-12


def test_diffpir_stepper_with_zeta_zero_is_ddim_eta_zero_on_the_tweedie_estimate():
    prior = gaussian_prior()
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(2, 1, *SIZE, generator=g, dtype=torch.float64)
    eps = prior.eps(x_t, 600)
    x0 = prior.x0(x_t, 600)
    a = DiffPIRStepper(zeta=0.0, clip_x0=False)(prior, x_t, 600, 400, eps, x0, None)
    b = DDIMStepper(eta=0.0, clip_x0=False)(prior, x_t, 600, 400, eps, x0, None)
    torch.testing.assert_close(a, b)
    assert torch.equal(DiffPIRStepper(1.0)(prior, x_t, 600, -1, eps, x0, None), x0.clamp(-1, 1))


def test_ddim_clip_keeps_a_rule_correction_of_x0():
    """Clipping adjusts ε only by the clipped amount: a corrected x̂0 within [-1, 1] reaches the update unchanged."""
    prior = gaussian_prior()
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(1, 1, *SIZE, generator=g, dtype=torch.float64)
    eps = prior.eps(x_t, 300)
    corrected = (0.5 * prior.x0(x_t, 300)).clamp(-0.9, 0.9)
    clipped = DDIMStepper(0.0, clip_x0=True)(prior, x_t, 300, 200, eps, corrected, None)
    plain = DDIMStepper(0.0, clip_x0=False)(prior, x_t, 300, 200, eps, corrected, None)
    torch.testing.assert_close(clipped, plain)


def test_preset_is_the_composition():
    p = make_problem()
    kw = dict(num_steps=10, eta=1.0, phase_mode="none", seed=4)
    preset = LossGuidanceSolver(p.prior, guidance=0.7, **kw)(p.kspace, p.operator)
    composed = DiffusionSolver(p.prior, DDIMSampler(10, 1.0), LossGuidance(0.7), phase_mode="none", seed=4,
                               final_data_consistency=True)
    assert torch.equal(preset, composed(p.kspace, p.operator))
    with pytest.raises(ValueError, match="num_steps"):
        DiffusionSolver(p.prior, DiffPIRSampler(num_steps=2000))


def test_dps_moves_toward_posterior_mean_and_back_propagates():
    p = make_problem()
    solver = DPSSolver(p.prior, zeta=5.0, num_steps=50, num_samples=4, phase_mode="none", clip_x0=False)
    out = solver(p.kspace, p.operator)
    zf_err = p.rel_error(ZeroFilledSolver()(p.kspace, p.operator))
    assert p.rel_error(out) < 0.9 * zf_err  # the prior mean has relative error 1
    assert solver.info.extra["grad_nfe"] == solver.info.nfe == 50
    with pytest.raises(ValueError, match="zeta"):
        DPSSolver(p.prior, zeta=0)


def test_auto_sigma_y_is_the_estimated_noise_in_normalised_units():
    p = make_problem(coils=4)
    noisy = p.kspace + 0.05 * torch.randn(p.kspace.shape, dtype=p.kspace.dtype,
                                          generator=torch.Generator().manual_seed(0)) * p.operator.mask
    mapping = PriorMapping.from_kspace(noisy, p.operator, 1, "none")
    m = _measurement(p.prior, noisy, p.operator, mapping)
    auto = ProximalDataConsistency("diffpir", lam=2.0, sigma_y="auto")
    auto.bind(m)
    expected = (estimate_noise_std(noisy, p.operator.mask) / mapping.scale.reshape(-1)).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(auto.noise_level(m), expected.to(torch.float64))
    like = torch.zeros((), dtype=torch.float64)
    fixed = ProximalDataConsistency("diffpir", lam=2.0, sigma_y=1.0)
    torch.testing.assert_close(auto.rho_at(m, 300, like), fixed.rho_at(m, 300, like) * expected**2)
    out = DiffPIRSolver(p.prior, num_steps=10, sigma_y="auto", phase_mode="none")(noisy, p.operator)
    assert bool(torch.isfinite(out).all())
    with pytest.raises(ValueError, match="sigma_y"):
        ProximalDataConsistency(sigma_y="estimate")


def test_default_scale_keeps_bright_pixels_that_the_data_measure():
    """A fully sampled image whose brightest 0.3 % lie far above its 99.5th percentile comes back whole: the default
    intensity scale (the maximum of ``|Aᴴ y|``) keeps them inside the prior's [-1, 1], where x̂0 is clipped. With the
    99.5th percentile (the default before 2026-12-06) the clip cut them to that percentile."""
    image = torch.full((1, 1, *SIZE), 0.3, dtype=torch.complex128)
    image[..., 5, 7] = image[..., 20, 11] = image[..., 16, 25] = 1.0  # 3 of 1024 pixels
    op = MaskedFourier(torch.ones(1, 1, 1, SIZE[1], dtype=torch.float64), SIZE)
    kspace = op.forward(image)
    kw = dict(lam=1e-4, num_steps=5, phase_mode="none", seed=0)
    rec = DiffPIRSolver(gaussian_prior(), **kw)(kspace, op)
    assert float((rec.abs() - image.abs()).abs().max()) < 0.01
    clipped = DiffPIRSolver(gaussian_prior(), scale_percentile=99.5, **kw)(kspace, op)
    assert float(clipped.abs().max()) < 0.35
