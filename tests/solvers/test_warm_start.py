"""Warm start: a schedule that begins at ``t_start`` from the least-squares image forward-diffused to it."""

from __future__ import annotations

import pytest
import torch

from monai_ddpm_recon.solvers import DiffPIRSolver, DiffusionSolver, ZeroFilledSolver
from monai_ddpm_recon.solvers.samplers import DDIMSampler, DDSSampler, DiffPIRSampler, strided_timesteps
from monai_ddpm_recon.solvers.sampling import Denoise, Renoise, count_denoise, ddim_timesteps
from tests.solvers.diffusion_helpers import gaussian_prior, make_problem


@pytest.mark.parametrize("spacing", ["uniform", "quadratic"])
@pytest.mark.parametrize("t_start, n", [(300, 50), (100, 50), (100, 101), (40, 3), (5, 2)])
def test_timesteps_from_t_start_reach_zero_strictly_decreasing(spacing, t_start, n):
    times = strided_timesteps(gaussian_prior(), n, spacing, t_start)
    assert len(times) == n and times[0] == t_start and times[-1] == 0
    assert all(a > b for a, b in zip(times, times[1:]))
    if n == t_start + 1:
        assert times == list(range(t_start, -1, -1))


def test_default_start_is_unchanged():
    prior = gaussian_prior()
    assert strided_timesteps(prior, 50, "uniform") == ddim_timesteps(1000, 50)
    quad = strided_timesteps(prior, 50, "quadratic")
    assert quad[0] == 999 and quad[-1] == 0 and quad == strided_timesteps(prior, 50, "quadratic", 999)
    # the quadratic rule t_i = T - 1 - T sqrt(i / (n - 1)), away from the rounding collisions at the start
    assert quad[25] == round(999 - 1000 * (25 / 49) ** 0.5)


@pytest.mark.parametrize("sampler, nfe", [
    (DiffPIRSampler(10, t_start=200), 10), (DDSSampler(10, t_start=200), 10), (DDIMSampler(10, t_start=200), 10),
    (DDIMSampler(10, t_start=200, resampling="long", jump_length=3, resamplings=2), 10 + 3),
])
def test_warm_schedule_begins_by_noising_the_estimate(sampler, nfe):
    ops = sampler.schedule(gaussian_prior())
    assert ops[0] == Renoise(-1, 200) and ops[1] == Denoise(200, ops[1].t_prev)
    assert not any(isinstance(op, Denoise) and op.t > 200 for op in ops)
    assert count_denoise(ops) == nfe and "t_start=200" in sampler.describe()


def test_bad_t_start_names_the_argument():
    prior = gaussian_prior()
    for bad in (-1, 2.5, True, "x"):
        with pytest.raises(ValueError, match="t_start"):
            DiffPIRSampler(10, t_start=bad)
    with pytest.raises(ValueError, match="t_start"):  # beyond the prior's T - 1: checked against the prior
        DiffPIRSolver(prior, num_steps=10, t_start=1000)
    with pytest.raises(ValueError, match="t_start"):  # more steps than timesteps below t_start
        DiffPIRSolver(prior, num_steps=60, t_start=50)


def test_warm_start_begins_from_the_least_squares_image():
    """With one step at t = 0 the Gaussian prior barely moves the noised estimate: a warm start returns the
    least-squares image (here the ground truth: full sampling); a cold start returns roughly the prior mean."""
    p = make_problem(coils=4, full=True)
    warm = DiffusionSolver(p.prior, DiffPIRSampler(1, clip_x0=False, t_start=0), None, phase_mode="none")
    cold = DiffusionSolver(p.prior, DiffPIRSampler(1, clip_x0=False), None, phase_mode="none")
    err = lambda img: float((img - p.image).norm() / p.image.norm())  # noqa: E731
    assert err(warm(p.kspace, p.operator)) < 0.02
    assert err(cold(p.kspace, p.operator)) > 0.2


def test_warm_started_diffpir_moves_toward_posterior_mean():
    p = make_problem(coils=4)
    solver = DiffPIRSolver(p.prior, num_steps=20, num_samples=8, phase_mode="none", clip_x0=False, t_start=400)
    out = solver(p.kspace, p.operator)
    zf_err = p.rel_error(ZeroFilledSolver()(p.kspace, p.operator))
    assert bool(torch.isfinite(out).all()) and solver.info.nfe == 20
    assert p.rel_error(out) < 0.7 * zf_err, (p.rel_error(out), zf_err)


def test_warm_started_loss_guidance_is_its_composition():
    from monai_ddpm_recon.solvers import LossGuidanceSolver
    from monai_ddpm_recon.solvers.loss_guidance import LossGuidance

    p = make_problem(coils=4)
    preset = LossGuidanceSolver(p.prior, num_steps=6, phase_mode="none", seed=3, t_start=300)
    composed = DiffusionSolver(p.prior, DDIMSampler(6, 1.0, t_start=300), LossGuidance(), phase_mode="none", seed=3,
                               final_data_consistency=True)
    assert torch.equal(preset(p.kspace, p.operator), composed(p.kspace, p.operator))
    assert preset.info.nfe == 6
