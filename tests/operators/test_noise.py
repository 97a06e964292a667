"""The k-space noise-level estimate."""

from __future__ import annotations

import math

import pytest
import torch

from monai_ddpm_recon.operators import SenseOperator, birdcage_maps, make_mask
from monai_ddpm_recon.operators.noise import estimate_noise_std

SIZE = (64, 64)


def _noise(shape, sigma, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g)) * (sigma / math.sqrt(2))


def _phantom() -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(-1, 1, SIZE[0]), torch.linspace(-1, 1, SIZE[1]), indexing="ij")
    return (((x / 0.7) ** 2 + (y / 0.85) ** 2 < 1).float() * (1 + 0.5 * (x**2 + y**2 < 0.1).float())).to(torch.complex64)


@pytest.mark.parametrize("sigma", [0.01, 0.3])
def test_pure_noise_gives_its_std(sigma):
    mask = make_mask("random", SIZE, 4, 0.08, seed=0)
    k = _noise((2, 8, *SIZE), sigma, 0) * mask
    est = estimate_noise_std(k, mask)
    assert est.shape == (2,)
    torch.testing.assert_close(est, torch.full((2,), sigma), rtol=0.05, atol=0)


def test_noise_on_an_image_is_found_and_the_estimate_scales_with_the_data():
    mask = make_mask("random", SIZE, 8, 0.08, seed=1)
    op = SenseOperator(birdcage_maps(8, SIZE).reshape(1, 8, *SIZE), mask)
    clean = op.forward(_phantom().reshape(1, 1, *SIZE))
    sigma = 0.05 * float(clean.abs().max())
    noisy = clean + _noise(clean.shape, sigma, 2) * mask
    est = float(estimate_noise_std(noisy, mask)[0])
    assert abs(est / sigma - 1) < 0.15, est / sigma
    torch.testing.assert_close(estimate_noise_std(noisy * 7.0, mask), estimate_noise_std(noisy, mask) * 7.0)
    # without noise the estimate reads the outer band's signal, far below this noise level
    assert float(estimate_noise_std(clean, mask)[0]) < 0.5 * sigma


def test_bad_input_names_the_argument():
    mask = make_mask("random", SIZE, 4, 0.08, seed=0)
    with pytest.raises(ValueError, match="kspace"):
        estimate_noise_std(torch.zeros(1, 8, *SIZE), mask)
    with pytest.raises(ValueError, match="kspace"):
        estimate_noise_std(torch.full((1, 1, *SIZE), float("nan"), dtype=torch.complex64), mask)
    with pytest.raises(ValueError, match="outer"):
        estimate_noise_std(torch.ones(1, 1, *SIZE, dtype=torch.complex64), mask, outer=1.0)
    centre = torch.zeros(1, 1, *SIZE)
    centre[..., 24:40, 24:40] = 1  # a 2-D mask with nothing sampled in the outer band
    with pytest.raises(ValueError, match="outer band"):
        estimate_noise_std(torch.ones(1, 1, *SIZE, dtype=torch.complex64) * centre, centre)
