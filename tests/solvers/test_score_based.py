"""Guided annealed Langevin and guided SBIM (Song et al., ICLR 2021; Chung & Ye, MedIA 2022) on the analytic Gaussian prior, whose posterior is exact."""

from __future__ import annotations

import math

import pytest
import torch

from monai_ddpm_recon.operators import MaskedFourier, SenseOperator, birdcage_maps, make_mask
from monai_ddpm_recon.priors.gaussian import GaussianPrior
from monai_ddpm_recon.solvers.diffusion import GuidanceDivergedError, unconditional_reference
from monai_ddpm_recon.solvers.mapping import PriorMapping
from monai_ddpm_recon.solvers.sampling import (
    DDIMStepper,
    Denoise,
    count_denoise,
    ddim_schedule,
    ddim_timesteps,
    sample_loop,
)
from monai_ddpm_recon.solvers.score_based import (
    AnnealedLangevinSolver,
    DataTerm,
    LangevinStepper,
    SBIMSolver,
    SBIMStepper,
    langevin_schedule,
    mapping_jacobian_adjoint,
    sbim_schedule,
)
from monai_ddpm_recon.solvers.vp_ve import sigma_at, ve_score

H = 16
NOISE = 0.02  # physical k-space noise std (complex)


@pytest.fixture(scope="module")
def prior():
    return GaussianPrior((H, H), std=0.3)


def make_case(prior, multicoil: bool, batch: int = 16):
    """Gaussian-prior image (physical = (x + 1)/2, real), noisy undersampled k-space repeated ``batch`` times (one
    posterior sample per item), the exact posterior mean in physical units and the zero-filled image."""
    g = torch.Generator().manual_seed(1)
    x_true = prior.sample(1, g)
    mask = make_mask("random", (H, H), 4, center_fraction=0.15, seed=0)
    op = SenseOperator(birdcage_maps(4, (H, H)).to(torch.complex128), mask) if multicoil else MaskedFourier(mask, (H, H))
    img = ((x_true + 1) / 2).to(torch.complex128)
    shape = (1, op.num_coils, H, H)
    n = NOISE * torch.complex(torch.randn(shape, generator=g, dtype=torch.float64),
                              torch.randn(shape, generator=g, dtype=torch.float64)) / math.sqrt(2)
    y = op.forward(img) + n * op.mask
    # the solver's own normalisation: physical image = scale (x + 1)/2, noise std NOISE/scale in normalised units
    scale = PriorMapping.from_kspace(y, op, 1, "none").scale
    sigma_y = NOISE / float(scale)
    half = torch.full((1, 1, H, H), 0.5, dtype=torch.complex128)
    post = prior.posterior_mean(y / scale, lambda v: op.forward((v / 2).to(torch.complex128)),
                                lambda w: op.adjoint(w) / 2, sigma_y**2, offset=op.forward(half))
    post_img = scale * (post + 1) / 2
    return y.expand(batch, -1, -1, -1).clone(), op, sigma_y, post_img, op.adjoint(y)


def rel_err(a, ref):
    return float((a - ref).abs().norm() / ref.abs().norm())


# --------------------------------------------------------------------------------------------------------------
# algebra
# --------------------------------------------------------------------------------------------------------------
def test_sbim_predictor_is_ddim_eta0_in_ve_coordinates(prior):
    """Unconditional SBIM (predictor 'ddim', final denoising step) = DDIM η=0 without clipping, step for step."""
    times = ddim_timesteps(1000, 12)
    x = torch.randn(2, 1, H, H, dtype=torch.float64)
    a = sample_loop(prior, sbim_schedule(times), x, stepper=SBIMStepper(), progress=False)
    b = sample_loop(prior, ddim_schedule(1000, 12), x, stepper=DDIMStepper(0.0, clip_x0=False), progress=False)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_slides_predictor_factor(prior):
    """The slides' factor σ_t/sqrt(1+σ_t²) is the DDIM factor σ_t shrunk by sqrt(1+σ_t²)."""
    like = torch.zeros(1, dtype=torch.float64)
    ddim, slides = SBIMStepper("ddim"), SBIMStepper("slides")
    for t, tp in [(999, 900), (300, 250), (5, 0)]:
        s = sigma_at(prior, t, like)
        torch.testing.assert_close(slides.gradient_coefficient(prior, t, tp, like) * (1 + s**2).sqrt(),
                                   ddim.gradient_coefficient(prior, t, tp, like))
    assert float(ddim.gradient_coefficient(prior, 5, -1, like)) == 0.0  # final denoising step is unguided


def test_langevin_step_is_annealed_langevin(prior):
    """x^VE ← x^VE + (α/2) s + sqrt(α) z, α = ε σ²/σ_L², expressed at the next level."""
    step = LangevinStepper(epsilon=1e-4, sigma_min=0.05)
    t, tp = 400, 300
    x = torch.randn(1, 1, H, H, dtype=torch.float64)
    eps = prior.eps(x, t)
    a, ap = prior.abar(t, x), prior.abar(tp, x)
    sigma = sigma_at(prior, t, x)
    out = step(prior, x, t, tp, eps, None, torch.Generator().manual_seed(3))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    alpha = 1e-4 * sigma**2 / 0.05**2
    torch.testing.assert_close(out / ap.sqrt(), x / a.sqrt() - alpha / 2 * eps / sigma + alpha.sqrt() * z)


def test_schedules_and_nfe():
    assert langevin_schedule([9, 5], 3) == [Denoise(9, 9), Denoise(9, 9), Denoise(9, 5)] + [Denoise(5, 5)] * 2 + [
        Denoise(5, -1)]
    ops = sbim_schedule([9, 5, 0], corrector_steps=2)
    assert ops == [Denoise(9, 5), Denoise(5, 5), Denoise(5, 5), Denoise(5, 0), Denoise(0, 0), Denoise(0, 0),
                   Denoise(0, -1)]
    assert count_denoise(ops) == 2 * (1 + 2) + 1


@pytest.mark.parametrize("channels", [1, 2])
def test_data_term_is_minus_gradient_of_residual(channels):
    """d(x) = 2 Jᵀ Aᴴ(y_n - A u(x)) = -∇_x ‖y_n - A u(x)‖² (autograd), with a smooth phase for 1 channel."""
    g = torch.Generator().manual_seed(0)
    mask = make_mask("random", (H, H), 3, center_fraction=0.2, seed=1)
    op = SenseOperator(birdcage_maps(3, (H, H)).to(torch.complex128), mask)
    y = torch.complex(torch.randn(2, 3, H, H, generator=g, dtype=torch.float64),
                      torch.randn(2, 3, H, H, generator=g, dtype=torch.float64)) * op.mask
    mapping = PriorMapping.from_kspace(y, op, channels, "smooth")
    data = DataTerm(op, y, mapping, "likelihood", sigma_y=1.0)
    x = torch.randn(2, channels, H, H, generator=g, dtype=torch.float64, requires_grad=True)
    u = mapping.to_image(x, torch.complex128) / mapping.scale
    loss = ((y / mapping.scale - op.forward(u)).abs() ** 2).sum()
    (grad,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(data.residual_gradient(x.detach()), -grad)
    w = torch.randn(2, 1, H, H, dtype=torch.complex128)
    assert mapping_jacobian_adjoint(mapping, w).shape == (2, channels, H, H)


@pytest.mark.parametrize("multicoil", [False, True])
def test_guided_drift_vanishes_at_exact_posterior_mean(prior, multicoil):
    """s(x, σ_0) + g(x) = 0 exactly at the posterior mean of the σ_0-smoothed prior N(μ, Σ + σ_0² I) given y: the
    prior score (VE bridge), the data term's real-gradient weight 2/σ_y² and the mapping all agree. With the slides'
    Wirtinger weight 1/σ_y² the fixed point would be the posterior for noise variance 2σ_y² instead."""
    y, op, sigma_y, _, _ = make_case(prior, multicoil, batch=1)
    mapping = PriorMapping.from_kspace(y, op, 1, "none")
    data = DataTerm(op, y, mapping, "likelihood", sigma_y)
    x = torch.zeros(1, 1, H, H, dtype=torch.float64)
    sigma0 = sigma_at(prior, 0, x)
    smoothed = GaussianPrior((H, H), power_spectrum=prior.power + float(sigma0) ** 2, std=1.0)
    half = torch.full((1, 1, H, H), 0.5, dtype=torch.complex128)

    def posterior(noise_var):
        return smoothed.posterior_mean(y / mapping.scale, lambda v: op.forward((v / 2).to(torch.complex128)),
                                       lambda w: op.adjoint(w) / 2, noise_var, offset=op.forward(half), tol=1e-13)

    def drift(x):
        score = ve_score(prior, x, 0)
        return score + data(x, score, sigma0)

    exact, wrong = posterior(sigma_y**2), posterior(2 * sigma_y**2)
    assert float(drift(exact).norm()) < 1e-6 * float(drift(wrong).norm())


# --------------------------------------------------------------------------------------------------------------
# posterior
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("multicoil", [False, True])
def test_langevin_moves_to_posterior_mean(prior, multicoil):
    y, op, sigma_y, post, zf = make_case(prior, multicoil)
    solver = AnnealedLangevinSolver(prior, num_levels=20, steps_per_level=5, epsilon=5e-5, sigma_y=sigma_y,
                                    phase_mode="none", progress=False, final_data_consistency=False)
    out = solver(y, op)
    assert out.shape == (16, 1, H, H) and out.is_complex()
    assert solver.info.nfe == solver.info.iterations == len(solver.timesteps()) * 5
    err, err_zf = rel_err(out.mean(0, keepdim=True), post), rel_err(zf, post)
    assert err < 0.2 * err_zf, (err, err_zf)


@pytest.mark.parametrize("multicoil", [False, True])
def test_sbim_with_corrector_moves_to_posterior_mean(prior, multicoil):
    y, op, sigma_y, post, zf = make_case(prior, multicoil)
    solver = SBIMSolver(prior, num_steps=20, corrector_steps=2, sigma_y=sigma_y, phase_mode="none", progress=False, final_data_consistency=False)
    out = solver(y, op)
    assert solver.info.nfe == 19 * 3 + 1
    err, err_zf = rel_err(out.mean(0, keepdim=True), post), rel_err(zf, post)
    assert err < 0.2 * err_zf, (err, err_zf)


def test_normalized_and_slides_variants_run_toward_posterior(prior):
    y, op, sigma_y, post, zf = make_case(prior, False)
    lang = AnnealedLangevinSolver(prior, num_levels=20, steps_per_level=5, sigma_y=sigma_y,
                                  data_gradient="normalized", phase_mode="none", progress=False, final_data_consistency=False)
    sbim = SBIMSolver(prior, num_steps=20, corrector_steps=2, predictor="slides", sigma_y=sigma_y,
                      phase_mode="none", progress=False, final_data_consistency=False)
    for solver in (lang, sbim):
        assert rel_err(solver(y, op).mean(0, keepdim=True), post) < 0.3 * rel_err(zf, post)


def test_sbim_with_infinite_sigma_y_is_unconditional_sbim(prior):
    """Data weight 0 (σ_y → ∞): the guided sampler is exactly unconditional SBIM with the same noise."""
    y, op, _, _, _ = make_case(prior, False, batch=2)
    solver = SBIMSolver(prior, num_steps=8, corrector_steps=1, sigma_y=float("inf"), phase_mode="none", seed=5,
                        progress=False, final_data_consistency=False)
    out = solver(y, op)
    g = torch.Generator().manual_seed(5)
    x = torch.randn((2, 1, H, H), generator=g, dtype=torch.float64)
    times = ddim_timesteps(1000, 8)
    stepper = SBIMStepper("ddim", solver.epsilon, float(sigma_at(prior, times[-1], x)))
    x = sample_loop(prior, sbim_schedule(times, 1), x, None, stepper, generator=g, progress=False)
    mapping = PriorMapping.from_kspace(y, op, 1, "none")
    assert torch.equal(out, mapping.to_image(x, out.dtype))
    assert torch.equal(out, unconditional_reference(solver, y, op))  # the shared base's g = 0 reference


def test_sbim_without_final_denoise_returns_ve_iterate(prior):
    """Without the final denoising step the result is the VE iterate at t_0: x^VP_{t_0} / sqrt(ᾱ_{t_0})."""
    y, op, _, _, _ = make_case(prior, False, batch=1)
    times = [999, 500, 100, 20]
    solver = SBIMSolver(prior, timesteps=times, final_denoise=False, sigma_y=float("inf"), phase_mode="none", seed=2,
                        progress=False, final_data_consistency=False)
    out = solver(y, op)
    g = torch.Generator().manual_seed(2)
    x = torch.randn((1, 1, H, H), generator=g, dtype=torch.float64)
    x = sample_loop(prior, sbim_schedule(times, 0, False), x, None, SBIMStepper(), generator=g, progress=False)
    expected = PriorMapping.from_kspace(y, op, 1, "none").to_image(x / prior.abar(20, x).sqrt(), out.dtype)
    torch.testing.assert_close(out, expected)
    assert solver.info.nfe == 3 and solver.info.extra["timesteps"] == times


def test_determinism_under_seed(prior):
    y, op, sigma_y, _, _ = make_case(prior, False, batch=2)
    kw = dict(num_steps=6, corrector_steps=1, sigma_y=sigma_y, phase_mode="none", progress=False, final_data_consistency=False)
    a = SBIMSolver(prior, seed=3, **kw)(y, op)
    b = SBIMSolver(prior, seed=3, **kw)(y, op)
    c = SBIMSolver(prior, seed=4, **kw)(y, op)
    assert torch.equal(a, b) and not torch.equal(a, c)
    lk = dict(num_levels=5, steps_per_level=2, sigma_y=sigma_y, phase_mode="none", progress=False, final_data_consistency=False)
    assert torch.equal(AnnealedLangevinSolver(prior, seed=1, **lk)(y, op), AnnealedLangevinSolver(prior, seed=1, **lk)(y, op))


def test_num_samples_gives_mean_and_std(prior):
    y, op, sigma_y, post, zf = make_case(prior, True, batch=1)
    solver = SBIMSolver(prior, num_steps=20, corrector_steps=2, sigma_y=sigma_y, phase_mode="none", num_samples=8,
                        progress=False, final_data_consistency=False)
    out = solver(y, op)
    assert out.shape == (1, 1, H, H) and solver.info.std.shape == (1, 1, H, H)
    assert rel_err(out, post) < 0.25 * rel_err(zf, post)


# --------------------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [AnnealedLangevinSolver, SBIMSolver])
def test_bad_parameters(prior, cls):
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="sigma_y"):
            cls(prior, sigma_y=bad)
        with pytest.raises(ValueError, match="epsilon"):
            cls(prior, epsilon=bad)
    with pytest.raises(ValueError, match="timesteps is empty"):
        cls(prior, timesteps=[])
    with pytest.raises(ValueError, match="data_gradient"):
        cls(prior, data_gradient="fancy")
    with pytest.raises(TypeError, match="prior"):
        cls("not a prior")


def test_bad_counts(prior):
    with pytest.raises(ValueError, match="steps_per_level"):
        AnnealedLangevinSolver(prior, steps_per_level=0)
    with pytest.raises(ValueError, match="num_levels"):
        AnnealedLangevinSolver(prior, num_levels=0)
    with pytest.raises(ValueError, match="corrector_steps"):
        SBIMSolver(prior, corrector_steps=-1)
    with pytest.raises(ValueError, match="predictor"):
        SBIMSolver(prior, predictor="euler")


def test_bad_kspace_and_size(prior):
    y, op, _, _, _ = make_case(prior, False, batch=1)
    solver = SBIMSolver(prior, num_steps=3, progress=False, final_data_consistency=False)
    with pytest.raises(TypeError, match="kspace"):
        solver(y.real, op)
    big = MaskedFourier(make_mask("random", (32, 32), 4, center_fraction=0.15, seed=0), (32, 32))
    with pytest.raises(ValueError, match="image_size"):
        solver(torch.zeros(1, 1, 32, 32, dtype=torch.complex128), big)


def test_diverging_iterate_names_step(prior):
    """The literal likelihood term with a tiny σ_y at huge σ blows up: a clear error naming the step and time."""
    y, op, _, _, _ = make_case(prior, False, batch=1)
    solver = AnnealedLangevinSolver(prior, num_levels=10, steps_per_level=20, epsilon=1e-3, sigma_y=1e-4,
                                    data_gradient="likelihood", phase_mode="none", progress=False, final_data_consistency=False)
    with pytest.raises(GuidanceDivergedError, match=r"AnnealedLangevinSolver.*step \d+ \(t=\d+.*epsilon"):
        solver(y, op)


def test_solver_protocol_and_registry(prior):
    from monai_ddpm_recon.solvers.base import Solver
    from monai_ddpm_recon.workflows.registry import build_solver

    from monai_ddpm_recon.solvers.base import ReconInfo

    y, op, _, _, _ = make_case(prior, multicoil=True, batch=2)
    fast = {"langevin": dict(num_levels=4, steps_per_level=1), "sbim": dict(num_steps=4)}
    for name in ("langevin", "sbim"):
        solver = build_solver(name, prior, num_samples=2, seed=0, progress=False, final_data_consistency=False,
                              **fast[name])
        assert isinstance(solver, Solver)  # names only (runtime Protocol); the contract itself is checked below
        # Solver contract: (B, C, H, W) k-space and an operator in, a finite complex (B, 1, H, W) image out, and a
        # ReconInfo describing this call
        image = solver(y, op)
        assert image.shape == (2, 1, H, H) and image.is_complex() and bool(torch.isfinite(image).all())
        assert isinstance(solver.info, ReconInfo) and solver.info.nfe > 0
        assert solver.info.std is not None and solver.info.std.shape == (2, 1, H, H)  # 2 samples: a std map
        torch.testing.assert_close(solver(y, op), image)  # seeded: the same call gives the same image
        assert not torch.allclose(solver(2 * y, op), image)  # and the image depends on the measured data
