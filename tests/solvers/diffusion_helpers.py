"""Shared set-up for the diffusion-solver tests: an analytic Gaussian prior, data drawn from it in the units the
solvers' :class:`PriorMapping` will infer, and the exact posterior mean in prior units."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from monai_ddpm_recon.operators import MaskedFourier, SenseOperator, birdcage_maps, make_mask
from monai_ddpm_recon.priors.gaussian import GaussianPrior, radial_power_spectrum
from monai_ddpm_recon.solvers.mapping import PriorMapping

SIZE = (32, 32)


def gaussian_prior(size: tuple[int, int] = SIZE, num_train_timesteps: int = 1000) -> GaussianPrior:
    return GaussianPrior(size, mean=-0.2, power_spectrum=radial_power_spectrum(size, 1.5), std=0.3,
                         num_train_timesteps=num_train_timesteps)


@dataclass
class Problem:
    prior: GaussianPrior
    operator: object
    kspace: torch.Tensor  # (B, C, H, W) complex128
    image: torch.Tensor  # ground truth, physical (B, 1, H, W) complex128
    mapping: PriorMapping
    posterior_mean: torch.Tensor  # prior units (B, 1, H, W) float64
    zero_filled: torch.Tensor  # prior units

    def rel_error(self, image: torch.Tensor) -> float:
        """Relative error of a physical image (mapped to prior units) to the exact posterior mean."""
        x = self.mapping.to_prior(image)
        mu = self.prior.mean
        return float((x - self.posterior_mean).norm() / (self.posterior_mean - mu).norm())


def make_problem(
    batch: int = 2,
    acceleration: int = 4,
    coils: int = 1,
    mask_type: str = "random",
    center_fraction: float = 0.08,
    phase: torch.Tensor | None = None,
    seed: int = 1,
    mask_seed: int = 0,
    full: bool = False,
) -> Problem:
    """Images ``x0 ~ prior`` in physical units ``(x0 + 1)/2 · c · phase`` with ``c`` chosen so that the mapping's scale
    comes out as exactly 1/c-consistent (the mapping then reproduces ``x0`` in prior units)."""
    prior = gaussian_prior()
    gen = torch.Generator().manual_seed(seed)
    x0 = prior.sample(batch, gen)
    if full:
        mask = torch.ones(1, 1, 1, SIZE[1])
    else:
        mask = make_mask(mask_type, SIZE, acceleration, center_fraction, seed=mask_seed)
    mask = mask.to(torch.float64)
    if coils == 1:
        op = MaskedFourier(mask, SIZE)
    else:
        op = SenseOperator(birdcage_maps(coils, SIZE).to(torch.complex128).reshape(1, coils, *SIZE), mask)
    ph = torch.ones(1, 1, *SIZE, dtype=torch.complex128) if phase is None else phase
    image = ((x0 + 1) / 2).to(torch.complex128) * ph
    kspace = op.forward(image)
    mode = "none" if phase is None else "smooth"
    c = PriorMapping.from_kspace(kspace, op, 1, mode).scale
    image, kspace = image / c, kspace / c
    mapping = PriorMapping.from_kspace(kspace, op, 1, mode)
    s = mapping.scale
    pha = mapping.phase if mapping.phase is not None else 1.0

    def fwd(v):
        return op.forward((v * s / 2).to(torch.complex128) * pha)

    def adj(k):
        return op.adjoint(k) * torch.as_tensor(pha).conj() * s / 2

    pm = prior.posterior_mean(kspace, fwd, adj, noise_var=1e-6, offset=fwd(torch.ones_like(x0)))
    zf = mapping.to_prior(op.adjoint(kspace))
    return Problem(prior, op, kspace, image, mapping, pm, zf)


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR of magnitudes, peak = max |reference|."""
    a, b = image.abs(), reference.abs()
    mse = ((a - b) ** 2).mean()
    return float(10 * torch.log10(b.max() ** 2 / mse))
