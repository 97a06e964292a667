"""Frequency replacement with the analytic Gaussian prior; k-space noise factor; multi-coil rules; scheduled filter."""

from __future__ import annotations

import pytest
import torch

from monai_ddpm_recon.operators import fft2c, ifft2c
from monai_ddpm_recon.solvers.frequency_replacement import (
    CoilRule,
    FrequencyReplacementSolver,
    NoiseSpace,
    filter_sigma_schedule,
    gaussian_lowpass,
    kspace_noise_var_per_part,
)
from tests.solvers.diffusion_helpers import make_problem

FAST = dict(num_steps=20, phase_mode="none", clip_x0=False)


def _zf_error(p):
    return float((p.zero_filled - p.posterior_mean).norm() / (p.posterior_mean - p.prior.mean).norm())


def test_kspace_noise_factor_is_one_half():
    """F ε for real white ε: per real/imag part variance 1/2 away from self-conjugate frequencies."""
    eps = torch.randn(8000, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    k = fft2c(eps.to(torch.complex128))
    var_re, var_im = k.real.var(dim=0)[0], k.imag.var(dim=0)[0]
    self_conj = torch.zeros(8, 8, dtype=torch.bool)
    for i in (0, 4):
        for j in (0, 4):
            self_conj[i, j] = True  # centred grid: indices 0 and N/2 map to themselves under k -> -k
    half = kspace_noise_var_per_part(1)
    assert half == 0.5
    torch.testing.assert_close(var_re[~self_conj], torch.full_like(var_re[~self_conj], half), atol=0.05, rtol=0)
    torch.testing.assert_close(var_im[~self_conj], torch.full_like(var_im[~self_conj], half), atol=0.05, rtol=0)
    torch.testing.assert_close(var_re[self_conj], torch.ones(4, dtype=torch.float64), atol=0.08, rtol=0)
    assert kspace_noise_var_per_part(2) == 1.0


@pytest.mark.parametrize("t", [100, 700])
def test_noised_kspace_image_and_kspace_modes_agree_in_distribution(t):
    p = make_problem(batch=1)
    m = p.mapping.expand(800)
    y = p.kspace.repeat(800, 1, 1, 1)
    a = float(p.prior.alphas_cumprod[t])
    out = {}
    for mode in NoiseSpace:
        solver = FrequencyReplacementSolver(p.prior, noise_space=mode, **FAST)
        out[mode] = solver.rule.noised_kspace(solver.prior, y, p.operator, m, t, torch.Generator().manual_seed(1))
    sampled = (p.operator.mask.expand(1, 1, 32, 32)[0, 0] > 0)
    sampled[16, 16] = False  # DC is self-conjugate
    sampled[:, 0] = sampled[0, :] = False
    sampled[16, :] = False  # the k_x = 0 row pairs with itself under k -> -k for centred ky = 0
    for mode in NoiseSpace:
        mean = out[mode].mean(dim=0)[0]
        var = out[mode].real.var(dim=0)[0][sampled]
        expected = (1 - a) * 0.5 * (p.mapping.scale.flatten()[0] / 2) ** 2
        assert abs(float(var.mean()) / float(expected) - 1) < 0.05, mode
    # both modes have the same mean: sqrt(ᾱ) y + (1 - sqrt(ᾱ)) A c
    torch.testing.assert_close(out[NoiseSpace.IMAGE].mean(0), out[NoiseSpace.KSPACE].mean(0), atol=0.06, rtol=0)


@pytest.mark.parametrize("noise_space", list(NoiseSpace))
def test_moves_toward_posterior_mean_single_coil(noise_space):
    p = make_problem()
    solver = FrequencyReplacementSolver(p.prior, noise_space=noise_space, num_samples=16, final_data_consistency=False, **FAST)
    out = solver(p.kspace, p.operator)
    assert p.rel_error(out) < 0.6 * _zf_error(p)


@pytest.mark.parametrize("coil_rule", list(CoilRule))
def test_moves_toward_posterior_mean_sense(coil_rule):
    p = make_problem(coils=4)
    out = FrequencyReplacementSolver(p.prior, coil_rule=coil_rule, num_samples=4, final_data_consistency=False, **FAST)(
        p.kspace, p.operator
    )
    assert p.rel_error(out) < 0.85 * _zf_error(p)


def test_coil_rules():
    """sense = per-coil replacement + SENSE combination; cg = least-squares projection; both = replacement for 1 coil."""
    p1 = make_problem(batch=1)
    img = torch.randn(1, 1, 32, 32, dtype=torch.complex128)
    r1 = p1.kspace - p1.operator.forward(img)
    replaced = ifft2c(fft2c(img) * (1 - p1.operator.mask) + p1.kspace)
    for rule in CoilRule:
        solver = FrequencyReplacementSolver(p1.prior, coil_rule=rule, cg_iterations=5)
        torch.testing.assert_close(img + solver.rule.correction(p1.operator, r1), replaced)

    p = make_problem(batch=1, coils=4)
    op = p.operator
    r = p.kspace - op.forward(img)
    sense = FrequencyReplacementSolver(p.prior, coil_rule="sense")
    maps, m = op.sens_maps, op.mask
    coil_imgs = maps * img
    per_coil = ifft2c(fft2c(coil_imgs) * (1 - m) + p.kspace)
    combined = (maps.conj() * per_coil).sum(dim=1, keepdim=True)
    torch.testing.assert_close(img + sense.rule.correction(op, r), combined, atol=1e-5, rtol=1e-5)  # Σ|S|² = 1 to float32

    cg = FrequencyReplacementSolver(p.prior, coil_rule="cg", cg_iterations=200)
    new = img + cg.rule.correction(op, r)
    normal_residual = op.adjoint(p.kspace - op.forward(new))
    assert float(normal_residual.norm()) < 1e-3 * float(op.adjoint(r).norm())
    # cg fits the data at least as well as the one-shot SENSE combination
    assert (p.kspace - op.forward(new)).norm() <= (p.kspace - op.forward(combined)).norm()


@pytest.mark.parametrize("coils", [1, 4])
def test_full_sampling_with_final_data_consistency_returns_ground_truth(coils):
    p = make_problem(coils=coils, full=True)
    out = FrequencyReplacementSolver(p.prior, num_steps=5, final_data_consistency=True, phase_mode="none")(p.kspace, p.operator)
    tol = 1e-10 if coils == 1 else 1e-6  # birdcage maps: Σ|S|² = 1 to float32 precision
    torch.testing.assert_close(out, p.image, atol=tol, rtol=tol)


def test_filter_schedule():
    T = 1000
    assert filter_sigma_schedule(T - 1, T, 0.02, 2.0) == pytest.approx(0.02)
    assert filter_sigma_schedule(0, T, 0.02, 2.0) == pytest.approx(2.0)
    assert filter_sigma_schedule(-1, T, 0.02, 2.0) == pytest.approx(2.0)
    sig = [filter_sigma_schedule(t, T, 0.02, 2.0) for t in range(T - 1, -1, -50)]
    assert all(a < b for a, b in zip(sig, sig[1:]))  # widening: high frequencies enter late
    lp = gaussian_lowpass((32, 32), 0.1)
    assert lp.shape == (1, 1, 32, 32) and float(lp[0, 0, 16, 16]) == 1.0
    assert float(lp[0, 0, 16, 16 + 8]) == pytest.approx(float(torch.exp(torch.tensor(-(0.25**2) / (2 * 0.01)))))
    p = make_problem()
    filt = FrequencyReplacementSolver(p.prior, filter_sigma=(0.05, 5.0), num_samples=8, final_data_consistency=False, **FAST)
    assert p.rel_error(filt(p.kspace, p.operator)) < _zf_error(p)


def test_bad_options():
    p = make_problem()
    with pytest.raises(ValueError, match="filter_sigma"):
        FrequencyReplacementSolver(p.prior, filter_sigma=(-1.0, 1.0))
    with pytest.raises(ValueError, match="filter_sigma"):
        FrequencyReplacementSolver(p.prior, filter_sigma=(1.0,))
    with pytest.raises(ValueError, match="noise_space"):
        FrequencyReplacementSolver(p.prior, noise_space="sinogram")
    with pytest.raises(ValueError, match="coil_rule"):
        FrequencyReplacementSolver(p.prior, coil_rule="rss")
    with pytest.raises(ValueError, match="cg_iterations"):
        FrequencyReplacementSolver(p.prior, cg_iterations=0)
