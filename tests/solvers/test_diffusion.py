"""DiffusionSolver base: input checks, schedules, batched posterior samples, seeding, phase handling, hard DC."""

from __future__ import annotations

import pytest
import torch

from monai_ddpm_recon.operators import MaskedFourier, SenseOperator, birdcage_maps, make_mask
from monai_ddpm_recon.solvers.diffusion import Resampling, expand_operator
from monai_ddpm_recon.solvers.frequency_replacement import FrequencyReplacementSolver
from monai_ddpm_recon.solvers.loss_guidance import LossGuidanceSolver
from monai_ddpm_recon.solvers.sampling import Denoise, Renoise, count_denoise
from tests.solvers.diffusion_helpers import gaussian_prior, make_problem, psnr


class _ThreeChannelPrior:
    def eps(self, x_t, t): ...

    abar = x0 = score = eps
    alphas_cumprod = torch.ones(10)
    num_train_timesteps = 10
    channels = 3
    image_size = (32, 32)


def test_bad_input():
    p = make_problem()
    prior = p.prior
    for kw, match in [
        (dict(num_steps=0), "num_steps"),
        (dict(num_steps=2.5), "num_steps"),
        (dict(num_steps=1001), "exceeds"),
        (dict(jump_length=0), "jump_length"),
        (dict(resamplings=-1), "resamplings"),
        (dict(num_samples=0), "num_samples"),
        (dict(eta=-0.1), "eta"),
        (dict(resampling="medium"), "resampling"),
        (dict(phase_mode="guess"), "phase_mode"),
        (dict(resampling="long", num_steps=10, jump_length=5, resamplings=3), "long-grained"),
    ]:
        with pytest.raises(ValueError, match=match):
            LossGuidanceSolver(prior, **kw)
    with pytest.raises(ValueError, match="channels"):
        LossGuidanceSolver(_ThreeChannelPrior())
    with pytest.raises(TypeError, match="prior"):
        LossGuidanceSolver(object())
    # operator grid differs from the prior's image size: the message says how to resize
    small = MaskedFourier(make_mask("random", (16, 16), 4, 0.1, seed=0), (16, 16))
    y = small.forward(torch.randn(1, 1, 16, 16, dtype=torch.complex128))
    with pytest.raises(ValueError, match=r"prior.image_size=\(32, 32\).*crop or zero-pad"):
        LossGuidanceSolver(prior)(y, small)
    with pytest.raises(ValueError, match="kspace"):
        LossGuidanceSolver(prior)(p.kspace[:, :, :16], p.operator)
    with pytest.raises(TypeError, match="complex"):
        LossGuidanceSolver(prior)(p.kspace.real, p.operator)


def test_schedules_from_options():
    prior = gaussian_prior()
    plain = LossGuidanceSolver(prior, num_steps=20).schedule()
    assert count_denoise(plain) == 20 and all(isinstance(op, Denoise) for op in plain)
    ddpm = LossGuidanceSolver(prior, num_steps=None).schedule()
    assert count_denoise(ddpm) == 1000 and ddpm[0] == Denoise(999, 998)
    short = LossGuidanceSolver(prior, num_steps=20, resampling="short", jump_length=5, resamplings=3).schedule()
    assert count_denoise(short) == 60
    long = LossGuidanceSolver(prior, num_steps=20, resampling="long", jump_length=4, resamplings=3).schedule()
    renoises = [op for op in long if isinstance(op, Renoise)]
    times = LossGuidanceSolver(prior, num_steps=20).timesteps()
    # restarts 8 and then 4 steps before the end, each re-noising the clean image
    assert renoises == [Renoise(-1, times[20 - 8]), Renoise(-1, times[20 - 4])]
    assert count_denoise(long) == 20 + 8 + 4
    assert Resampling("long") == "long"


def test_num_samples_is_one_batch_with_std():
    p = make_problem()
    p.prior.nfe = 0
    solver = LossGuidanceSolver(p.prior, guidance=300, step_rule="absolute", num_steps=10, num_samples=5, phase_mode="none")
    out = solver(p.kspace, p.operator)
    assert p.prior.nfe == 10 == solver.info.nfe  # K samples cost no extra network calls: one B*K batch per step
    std = solver.info.std
    assert std.shape == (2, 1, 32, 32) and not torch.is_complex(std) and bool((std >= 0).all()) and float(std.mean()) > 0
    assert out.shape == (2, 1, 32, 32)
    assert solver.info.wall_time_s > 0 and solver.info.extra["num_samples"] == 5
    # the mean of K samples is the mean of the K-sample batch: K=1 with the same seed is the first sample
    one = LossGuidanceSolver(p.prior, guidance=300, step_rule="absolute", num_steps=10, num_samples=1, phase_mode="none", seed=3)
    assert one.info.std is None


def test_seeding():
    p = make_problem()
    kw = dict(guidance=300, step_rule="absolute", num_steps=10, phase_mode="none", eta=1.0)
    a = LossGuidanceSolver(p.prior, seed=1, **kw)(p.kspace, p.operator)
    b = LossGuidanceSolver(p.prior, seed=1, **kw)(p.kspace, p.operator)
    c = LossGuidanceSolver(p.prior, seed=2, **kw)(p.kspace, p.operator)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_per_item_masks_with_samples():
    """Operators with per-item masks/maps are expanded to the B*K batch (item-major)."""
    prior = gaussian_prior()
    masks = torch.cat([make_mask("random", (32, 32), 4, 0.08, seed=s) for s in (0, 1)]).to(torch.float64)
    img = torch.randn(2, 1, 32, 32, dtype=torch.complex128)
    ops = [MaskedFourier(masks, (32, 32)), SenseOperator(birdcage_maps(4, (32, 32)).to(torch.complex128).expand(2, -1, -1, -1).clone(), masks)]
    for op in ops:
        big = expand_operator(op, 2, 3)
        x = img.repeat_interleave(3, dim=0)
        torch.testing.assert_close(big.forward(x), op.forward(img).repeat_interleave(3, dim=0))
        y = op.forward(img)
        out = FrequencyReplacementSolver(prior, num_steps=5, num_samples=3)(y, op)
        assert out.shape == (2, 1, 32, 32)


@pytest.mark.parametrize("coils", [1, 4])
def test_loss_guidance_full_sampling_with_hard_dc_returns_ground_truth(coils):
    p = make_problem(coils=coils, full=True)
    out = LossGuidanceSolver(p.prior, num_steps=5, final_data_consistency=True)(p.kspace, p.operator)
    tol = 1e-10 if coils == 1 else 1e-6  # birdcage maps: Σ|S|² = 1 to float32 precision
    torch.testing.assert_close(out, p.image, atol=tol, rtol=tol)


def test_smooth_phase_costs_little():
    """Same magnitude data with and without a smooth phase: the smooth-phase mapping loses < 0.5 dB.

    The Gaussian field fills the whole field of view, so the phase is chosen periodic (the calibration image is a
    circular blur; real MR images have an empty background at the borders)."""
    g = torch.arange(32, dtype=torch.float64) * 2 * torch.pi / 32
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    phase = torch.exp(1j * (0.8 * torch.cos(xx) + 0.6 * torch.sin(yy) - 0.3))[None, None]
    results = {}
    for name, ph in (("none", None), ("smooth", phase)):
        p = make_problem(phase=ph, center_fraction=0.16, acceleration=4)
        for solver_cls, kw in ((LossGuidanceSolver, dict(guidance=400, step_rule="absolute")), (FrequencyReplacementSolver, dict(final_data_consistency=False))):
            solver = solver_cls(p.prior, num_steps=20, num_samples=4, clip_x0=False, **kw)
            results[name, solver_cls.__name__] = psnr(solver(p.kspace, p.operator), p.image)
    for cls in ("LossGuidanceSolver", "FrequencyReplacementSolver"):
        assert results["none", cls] - results["smooth", cls] < 0.5, results
