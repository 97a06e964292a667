"""Loss guidance with the analytic Gaussian prior (exact posterior known)."""

from __future__ import annotations

import pytest
import torch

from monai_ddpm_recon.solvers.diffusion import GuidanceDivergedError, sampled_count, unconditional_reference
from monai_ddpm_recon.solvers.loss_guidance import GuidanceGradient, LossGuidanceSolver, data_loss
from tests.solvers.diffusion_helpers import make_problem

FAST = dict(num_steps=20, phase_mode="none", clip_x0=False, step_rule="absolute")


def _zf_error(p):
    return float((p.zero_filled - p.posterior_mean).norm() / (p.posterior_mean - p.prior.mean).norm())


@pytest.mark.parametrize("gradient", list(GuidanceGradient))
def test_moves_toward_posterior_mean_single_coil(gradient):
    p = make_problem()
    solver = LossGuidanceSolver(p.prior, guidance=400, gradient=gradient, num_samples=16, **FAST)
    out = solver(p.kspace, p.operator)
    assert out.shape == p.image.shape and out.dtype == torch.complex128
    assert p.rel_error(out) < 0.6 * _zf_error(p)
    assert solver.info.nfe == 20 and solver.info.std.shape == (2, 1, 32, 32)
    assert solver.info.extra["grad_nfe"] == (20 if gradient == GuidanceGradient.TWEEDIE else 0)


def test_moves_toward_posterior_mean_sense():
    p = make_problem(coils=4)
    out = LossGuidanceSolver(p.prior, guidance=400, num_samples=8, **FAST)(p.kspace, p.operator)
    assert p.rel_error(out) < 0.85 * _zf_error(p)


@pytest.mark.parametrize("gradient", list(GuidanceGradient))
def test_zero_guidance_reproduces_unconditional_sampling(gradient):
    p = make_problem()
    # final data consistency (on by default) changes the image by design: compare the sampler's own output
    solver = LossGuidanceSolver(p.prior, guidance=0.0, gradient=gradient, num_steps=10, eta=1.0, num_samples=2, seed=5,
                                step_rule="absolute", final_data_consistency=False)
    out = solver(p.kspace, p.operator)
    ref = unconditional_reference(solver, p.kspace, p.operator)
    assert torch.equal(out, ref)
    # and a positive g does change it
    solver.guidance = 100.0
    assert not torch.allclose(solver(p.kspace, p.operator), ref)


def test_guidance_is_independent_of_kspace_scale():
    p = make_problem()
    solver = LossGuidanceSolver(p.prior, guidance=300, **FAST)
    a = solver(p.kspace, p.operator)
    b = solver(p.kspace * 1e3, p.operator)
    torch.testing.assert_close(b, a * 1e3, rtol=1e-7, atol=1e-9)


def test_loss_gradient_is_mask_normalised_residual():
    """∇_x (1/ΣM)‖(A image(x) − y)/s‖² = (1/ΣM) Re(conj(φ) Aᴴ r) for a magnitude prior (image = s/2 (x+1) φ)."""
    p = make_problem(phase=torch.exp(1j * torch.linspace(0, 1, 32, dtype=torch.float64)).reshape(1, 1, 1, 32).expand(1, 1, 32, 32))
    x = torch.randn(2, 1, 32, 32, dtype=torch.float64, requires_grad=True)
    coverage = sampled_count(p.operator)
    (grad,) = torch.autograd.grad(data_loss(x, p.kspace, p.operator, p.mapping, coverage), x)
    s, ph = p.mapping.scale, p.mapping.phase
    r = (p.operator.forward(p.mapping.to_image(x.detach(), torch.complex128)) - p.kspace) / s
    expected = (ph.conj() * p.operator.adjoint(r)).real / coverage
    torch.testing.assert_close(grad, expected)
    assert float(coverage.flatten()[0]) == float(p.operator.mask.sum()) * 32


def test_bad_guidance_and_options():
    p = make_problem()
    for g in (-1.0, float("nan"), float("inf"), "abc"):
        with pytest.raises(ValueError, match="guidance"):
            LossGuidanceSolver(p.prior, guidance=g)
    with pytest.raises(ValueError, match="gradient"):
        LossGuidanceSolver(p.prior, gradient="x0hat")


def test_divergence_raises_with_step_and_g():
    p = make_problem()
    solver = LossGuidanceSolver(p.prior, guidance=1e30, num_steps=20, phase_mode="none", step_rule="absolute")
    with pytest.warns(RuntimeWarning, match="stability limit"), pytest.raises(GuidanceDivergedError, match=r"step \d+.*guidance=1e\+30"):
        solver(p.kspace.to(torch.complex64), p.operator)
    # just above the stability limit 4·ΣM the iterate runs away without reaching Inf: still an error, not garbage
    limit = 4 * float(sampled_count(p.operator).min())
    solver = LossGuidanceSolver(p.prior, guidance=1.5 * limit, gradient="x_prev", num_steps=50, phase_mode="none",
                                clip_x0=False, step_rule="absolute")
    with pytest.warns(RuntimeWarning), pytest.raises(GuidanceDivergedError, match="stability limit"):
        solver(p.kspace, p.operator)
    ok = LossGuidanceSolver(p.prior, guidance=0.5 * limit, num_steps=20, phase_mode="none", step_rule="absolute")
    ok(p.kspace, p.operator)
    assert ok.info.extra["guidance_stability_limit"] == pytest.approx(limit)
