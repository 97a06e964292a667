"""Masks (acceleration, fully sampled centre) and coil maps (birdcage, ESPIRiT)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_ddpm_recon.operators import (
    SenseOperator,
    birdcage_maps,
    effective_acceleration,
    espirit_maps,
    fft2c,
    make_mask,
)


@pytest.mark.parametrize("mask_type", ["random", "equispaced"])
@pytest.mark.parametrize("acc", [4, 8])
def test_column_masks(mask_type, acc):
    shape = (64, 128)
    mask = make_mask(mask_type, shape, acc, center_fraction=0.08, seed=3)
    assert mask.shape == (1, 1, 1, 128) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    eff = effective_acceleration(mask, shape)
    assert 0.7 * acc <= eff <= 1.3 * acc, eff
    n_center = round(128 * 0.08)
    lo = 64 - (n_center + 1) // 2
    assert bool(mask[..., lo : lo + n_center].all()), "centre columns must be fully sampled"
    # deterministic for a fixed seed, different for another
    assert torch.equal(mask, make_mask(mask_type, shape, acc, center_fraction=0.08, seed=3))


def test_random_masks_differ_between_seeds():
    a = make_mask("random", (32, 64), 4, seed=1)
    b = make_mask("random", (32, 64), 4, seed=2)
    assert not torch.equal(a, b)


@pytest.mark.parametrize("acc", [4.0, 6.0])
def test_poisson_mask(acc):
    shape = (64, 64)
    mask = make_mask("poisson", shape, acc, seed=0, calib_size=12)
    assert mask.shape == (1, 1, 64, 64)
    eff = effective_acceleration(mask, shape)
    assert 0.75 * acc <= eff <= 1.25 * acc, eff
    assert bool(mask[..., 32 - 6 : 32 + 6, 32 - 6 : 32 + 6].all()), "calibration square must be fully sampled"


def test_make_mask_bad_input():
    with pytest.raises(ValueError, match="mask_type"):
        make_mask("spiral", (16, 16), 4)
    with pytest.raises(ValueError, match="acceleration"):
        make_mask("random", (16, 16), 1)
    with pytest.raises(ValueError, match="acceleration"):
        make_mask("random", (16, 16), 2.5)
    with pytest.raises(ValueError, match="center_fraction"):
        make_mask("random", (16, 16), 4, center_fraction=0.0)


def test_birdcage_maps_normalised():
    maps = birdcage_maps(6, (32, 40))
    assert maps.shape == (1, 6, 32, 40) and maps.dtype == torch.complex64
    power = (maps.abs() ** 2).sum(dim=1)
    assert torch.allclose(power, torch.ones_like(power), atol=1e-5)
    with pytest.raises(ValueError, match="num_coils"):
        birdcage_maps(0, (8, 8))


def _disc_object(n: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    r2 = xx**2 + yy**2
    img = (r2 < 0.6).float() * (1.0 + 0.3 * torch.cos(4 * xx) * torch.sin(3 * yy))
    return img.to(torch.complex64)


def test_espirit_recovers_birdcage_up_to_phase():
    n, coils = 64, 6
    img = _disc_object(n)
    true_maps = birdcage_maps(coils, (n, n))
    kspace = fft2c(true_maps * img)  # (1, C, n, n), fully sampled
    est = espirit_maps(kspace, calib_width=24)
    assert est.shape == (1, coils, n, n)
    # per-pixel coil-vector correlation |<s_est, s_true>| / (|s_est| |s_true|): invariant to the pixelwise phase
    num = (est.conj() * true_maps).sum(dim=1).abs()
    den = est.abs().pow(2).sum(dim=1).sqrt() * true_maps.abs().pow(2).sum(dim=1).sqrt()
    inside = (img.abs() > 0)[None]
    corr = (num / den.clamp_min(1e-12))[inside]
    assert float(corr.mean()) > 0.95, float(corr.mean())
    assert float((corr > 0.9).float().mean()) > 0.95


def test_espirit_maps_make_a_consistent_sense_operator():
    n, coils = 64, 4
    img = _disc_object(n)
    kspace = fft2c(birdcage_maps(coils, (n, n)) * img)
    est = espirit_maps(kspace, calib_width=20)
    recon = SenseOperator(est, torch.ones(1, 1, n, n)).adjoint(kspace)
    inside = img.abs() > 0
    rel = (recon.abs()[0, 0][inside] - img.abs()[inside]).norm() / img.abs()[inside].norm()
    assert float(rel) < 0.1


def test_espirit_guards():
    k = torch.randn(4, 32, 32, dtype=torch.complex64)
    with pytest.raises(ValueError, match="calib_width"):
        espirit_maps(k, calib_width=12)
    with pytest.raises(TypeError, match="kspace"):
        espirit_maps(k.real, calib_width=16)
    bad = k.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="kspace"):
        espirit_maps(bad, calib_width=16)
    with pytest.raises(ValueError, match="kspace"):
        espirit_maps(np.zeros((2, 4, 32, 32), np.complex64), calib_width=16)


@pytest.mark.parametrize("shape", [(192, 224), (217, 181)])
@pytest.mark.parametrize("mask_type", ["random", "equispaced", "poisson"])
def test_operators_built_at_non_square_sizes_are_adjoint(shape, mask_type):
    """Native-size cases (image_size=None) are non-square, odd sizes included: masks, birdcage maps and the SENSE
    operator built from them keep (H, W) apart and ⟨A x, y⟩ = ⟨x, Aᴴ y⟩."""
    h, w = shape
    mask = make_mask(mask_type, shape, 4, center_fraction=0.08, seed=1)
    assert mask.shape == ((1, 1, h, w) if mask_type == "poisson" else (1, 1, 1, w))
    maps = birdcage_maps(4, shape)
    assert maps.shape == (1, 4, h, w)
    torch.testing.assert_close((maps.abs() ** 2).sum(1), torch.ones(1, h, w), atol=1e-5, rtol=0)
    op = SenseOperator(maps.to(torch.complex128), mask.double())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, h, w, dtype=torch.complex128, generator=g)
    y = torch.randn(1, 4, h, w, dtype=torch.complex128, generator=g)
    lhs, rhs = (op(x).conj() * y).sum(), (x.conj() * op.adjoint(y)).sum()
    assert abs(lhs - rhs) <= 1e-9 * abs(lhs)
    assert 3 < effective_acceleration(mask, shape) < 5.5
