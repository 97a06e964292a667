"""The shared sampling loop: stepper vs MONAI's schedulers, schedule builders, re-noising, NaN detection."""

from __future__ import annotations

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from monai_ddpm_recon.solvers.sampling import (
    DDIMStepper,
    Denoise,
    NonFiniteIterateError,
    Renoise,
    count_denoise,
    ddim_schedule,
    ddim_timesteps,
    ddpm_schedule,
    long_grained_schedule,
    renoise,
    repaint_schedule,
    sample_loop,
)
from tests.solvers.diffusion_helpers import gaussian_prior


def _x0_eps(prior, x, t):
    eps = prior.eps(x, t)
    a = prior.abar(t, x)
    return eps, (x - (1 - a).sqrt() * eps) / a.sqrt()


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("num_steps,t", [(10, 999), (10, 499), (50, 20), (50, 19)])
def test_ddim_stepper_matches_monai(eta, num_steps, t):
    prior = gaussian_prior()
    sched = DDIMScheduler(clip_sample=False, **prior.scheduler_kwargs())
    sched.set_timesteps(num_steps)
    x = torch.randn(2, 1, *prior.image_size, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    eps, x0 = _x0_eps(prior, x, t)
    t_prev = t - prior.num_train_timesteps // num_steps  # MONAI's own prev_timestep
    ours = DDIMStepper(eta=eta, clip_x0=False)(prior, x, t, t_prev, eps, x0, torch.Generator().manual_seed(7))
    ref, ref_x0 = sched.step(eps, t, x, eta=eta, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(x0, ref_x0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours, ref.to(ours.dtype), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("t", [999, 500, 10, 1])
def test_ddim_eta1_single_step_is_ddpm(t):
    prior = gaussian_prior()
    sched = DDPMScheduler(clip_sample=False, **prior.scheduler_kwargs())
    x = torch.randn(2, 1, *prior.image_size, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    eps, x0 = _x0_eps(prior, x, t)
    ours = DDIMStepper(eta=1.0, clip_x0=False)(prior, x, t, t - 1, eps, x0, torch.Generator().manual_seed(9))
    ref, _ = sched.step(eps, t, x, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(ours, ref.to(ours.dtype), rtol=1e-4, atol=1e-4)
    # the deterministic parts (means) agree too: MONAI's posterior mean (Ho et al. eq. 7) vs η = 1 without noise
    a_t, a_p = prior.alphas_cumprod[t], prior.alphas_cumprod[t - 1]
    beta = 1 - a_t / a_p
    mu = a_p.sqrt() * beta / (1 - a_t) * x0 + (1 - beta).sqrt() * (1 - a_p) / (1 - a_t) * x
    sigma = (1 - a_p) / (1 - a_t) * beta
    ours_mean = ours - sigma.sqrt() * torch.randn(x.shape, generator=torch.Generator().manual_seed(9), dtype=x.dtype)
    torch.testing.assert_close(ours_mean, mu, rtol=1e-8, atol=1e-8)


def test_ddim_timesteps_match_monai():
    sched = DDIMScheduler(num_train_timesteps=1000)
    for n in (1, 7, 50, 100, 1000):
        sched.set_timesteps(n)
        if n > 1:
            assert ddim_timesteps(1000, n) == sched.timesteps.tolist()
    with pytest.raises(ValueError, match="num_steps"):
        ddim_timesteps(1000, 0)
    with pytest.raises(ValueError, match="exceeds"):
        ddim_timesteps(10, 11)


def test_repaint_schedule_structure():
    times = list(range(9, -1, -1))
    ops = repaint_schedule(times, jump_length=3, resamplings=2)
    assert count_denoise(ops) == 2 * len(times)
    renoises = [op for op in ops if isinstance(op, Renoise)]
    # segments [9..7]->6, [6..4]->3, [3..1]->0, [0]->-1, each re-noised back once
    assert renoises == [Renoise(6, 9), Renoise(3, 6), Renoise(0, 3), Renoise(-1, 0)]
    # each Renoise jumps from the time the preceding Denoise reached back to the segment start
    for i, op in enumerate(ops):
        if isinstance(op, Renoise):
            assert isinstance(ops[i - 1], Denoise) and ops[i - 1].t_prev == op.t_from
            assert ops[i + 1].t == op.t_to
    # r = 1 is plain sampling; the last op reaches the clean image
    assert repaint_schedule(times, 3, 1) == ddim_schedule(10, 10)
    assert ops[-1] == Denoise(0, -1)
    for bad in (dict(jump_length=0, resamplings=2), dict(jump_length=2, resamplings=0), dict(jump_length=-1, resamplings=1)):
        with pytest.raises(ValueError):
            repaint_schedule(times, **bad)


def test_ddpm_and_long_grained_schedule_structure():
    ops = ddpm_schedule(5)
    assert ops == [Denoise(4, 3), Denoise(3, 2), Denoise(2, 1), Denoise(1, 0), Denoise(0, -1)]
    times = [900, 600, 300, 100, 0]
    lg = long_grained_schedule(times, [300, 100])
    assert lg[:5] == [Denoise(900, 600), Denoise(600, 300), Denoise(300, 100), Denoise(100, 0), Denoise(0, -1)]
    assert lg[5:] == [Renoise(-1, 300), Denoise(300, 100), Denoise(100, 0), Denoise(0, -1), Renoise(-1, 100), Denoise(100, 0), Denoise(0, -1)]
    with pytest.raises(ValueError, match="decreasing"):
        long_grained_schedule(times, [100, 300])


def test_renoise_distribution():
    prior = gaussian_prior()
    x = torch.full((20000, 1, 2, 2), 0.5, dtype=torch.float64)
    a_from, a_to = float(prior.alphas_cumprod[100]), float(prior.alphas_cumprod[600])
    out = renoise(prior, x, 100, 600, torch.Generator().manual_seed(0))
    ratio = a_to / a_from
    assert abs(float(out.mean()) - ratio**0.5 * 0.5) < 0.015
    assert abs(float(out.var()) - (1 - ratio)) < 0.02
    with pytest.raises(ValueError):
        renoise(prior, x, 600, 100)


def test_long_grained_really_renoises():
    """At the restart the iterate must be q(x_tr | x_clean) — fails if Renoise were a no-op (x_tr == x_clean)."""
    prior = gaussian_prior()
    times = ddim_timesteps(1000, 10)
    tr = times[5]
    ops = long_grained_schedule(times, [tr])
    seen = {}

    def spy(ctx):
        seen.setdefault(ctx.index, (ctx.t, ctx.x_t.detach().clone(), ctx.x_prev.clone()))
        return ctx.x_prev

    x_init = torch.randn(64, 1, *prior.image_size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sample_loop(prior, ops, x_init, spy, DDIMStepper(eta=0.0, clip_x0=False), generator=torch.Generator().manual_seed(1), progress=False)
    clean = seen[len(times) - 1][2]  # x_prev of the last step of the first pass
    t_restart, x_restart, _ = seen[len(times)]
    assert t_restart == tr
    a = float(prior.alphas_cumprod[tr])
    residual = x_restart - a**0.5 * clean
    assert abs(float(residual.std()) - (1 - a) ** 0.5) < 0.05 * (1 - a) ** 0.5
    assert not torch.allclose(x_restart, clean)


def test_sample_loop_raises_on_nan():
    prior = gaussian_prior()
    ops = ddim_schedule(1000, 5)
    x_init = torch.randn(1, 1, *prior.image_size, dtype=torch.float64)

    def bad(ctx):
        return ctx.x_prev * float("nan") if ctx.index == 2 else ctx.x_prev

    with pytest.raises(NonFiniteIterateError, match="step 2"):
        sample_loop(prior, ops, x_init, bad, progress=False)


def test_ddim_unconditional_samples_converge_to_prior_statistics():
    """Deterministic DDIM (η = 0) with the exact ε maps N(0, I) to N(μ, Σ) as the step count grows."""
    prior = gaussian_prior()
    x_init = torch.randn(64, 1, *prior.image_size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref = prior.sample(1024, torch.Generator().manual_seed(1))
    ratios = []
    for n in (20, 200):
        x = sample_loop(prior, ddim_schedule(1000, n), x_init, None, DDIMStepper(0.0, clip_x0=False), progress=False)
        assert abs(float(x.mean()) - float(ref.mean())) < 0.01
        ratios.append(float(x.var()) / float(ref.var()))
    assert ratios[0] < ratios[1]
    assert abs(ratios[1] - 1) < 0.06
