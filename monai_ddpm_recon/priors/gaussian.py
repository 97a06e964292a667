"""An analytic prior: a stationary Gaussian image distribution with a closed-form optimal ε-network.

Used to test solvers without training. The data are ``x_0 ~ N(μ, Σ)`` with ``Σ = Fᴴ diag(P) F`` (stationary, diagonal in
the centred orthonormal Fourier basis ``F``; ``P`` is a radial, hence Hermitian-symmetric, power spectrum, so samples are
real). Then ``x_t ~ N(sqrt(ᾱ_t) μ, Σ_t)`` with ``Σ_t = Fᴴ diag(ᾱ_t P + 1 - ᾱ_t) F`` and the MMSE noise estimate is exact:

    ε*(x_t, t) = E[ε | x_t] = sqrt(1 - ᾱ_t) Σ_t⁻¹ (x_t - sqrt(ᾱ_t) μ).

For a linear measurement ``y = A x + n`` with complex noise ``n ~ CN(0, σ² I)`` and real ``x`` the posterior is Gaussian:
precision ``Σ⁻¹ + (2/σ²) Re(AᴴA)``, mean solved by conjugate gradients in :meth:`GaussianPrior.posterior_mean`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..operators.fft import fft2c, ifft2c
from .base import DiffusionPrior, Schedule


def radial_power_spectrum(image_size: tuple[int, int], correlation_length: float = 3.0, floor: float = 1e-3) -> torch.Tensor:
    """A smooth radial power spectrum ``P(k) ∝ exp(-(|k| ℓ)²/2) + floor`` on the centred frequency grid, float64 ``(H, W)``.

    Normalised to mean 1, so the pixel variance of the field is 1·(std scale)² (orthonormal FFT).
    """
    h, w = image_size
    ky = (torch.arange(h, dtype=torch.float64) - h // 2) / h
    kx = (torch.arange(w, dtype=torch.float64) - w // 2) / w
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    p = torch.exp(-0.5 * k2 * (2 * torch.pi * correlation_length) ** 2) + floor
    return p / p.mean()


class GaussianPrior(DiffusionPrior):
    """Stationary Gaussian prior with the exact ε-network (no training).

    Args:
        image_size: ``(H, W)``.
        mean: scalar or ``(H, W)`` mean image μ.
        power_spectrum: ``(H, W)`` non-negative, Hermitian-symmetric on the centred grid (e.g. :func:`radial_power_spectrum`);
            pixel variance is ``mean(P)``.
        std: multiplies the field: ``Σ = std² Fᴴ diag(P) F``.
        schedule, num_train_timesteps, beta_start, beta_end: see :class:`DiffusionPrior`.

    Images are ``(B, 1, H, W)`` real (float32 or float64); ``channels`` is 1.
    """

    def __init__(
        self,
        image_size: tuple[int, int],
        mean: float | torch.Tensor = 0.0,
        power_spectrum: torch.Tensor | None = None,
        std: float = 0.3,
        num_train_timesteps: int = 1000,
        schedule: Schedule | str = Schedule.LINEAR,
        beta_start: float = 1e-4,
        beta_end: float = 2e-2,
    ) -> None:
        super().__init__(image_size, 1, num_train_timesteps, schedule, beta_start, beta_end)
        p = radial_power_spectrum(self.image_size) if power_spectrum is None else torch.as_tensor(power_spectrum, dtype=torch.float64)
        if tuple(p.shape) != self.image_size or bool((p < 0).any()):
            raise ValueError(f"power_spectrum must be non-negative with shape {self.image_size}, got {tuple(p.shape)}.")
        self.power = p * float(std) ** 2
        self.mean = torch.as_tensor(mean, dtype=torch.float64).expand(self.image_size).clone()
        self.nfe = 0

    def _apply_spectral(self, x: torch.Tensor, filt: torch.Tensor) -> torch.Tensor:
        """``Fᴴ diag(filt) F x`` for real ``x`` (B, 1, H, W); ``filt`` (B|1, 1, H, W) or (H, W)."""
        return ifft2c(fft2c(x.to(torch.complex128)) * filt).real.to(x.dtype)

    def eps(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Exact MMSE noise estimate ``sqrt(1-ᾱ_t) Σ_t⁻¹ (x_t - sqrt(ᾱ_t) μ)``."""
        self.check_input(x_t)
        self.nfe += 1
        a = self.abar(t, x_t.double())
        mu = self.mean.to(x_t.device)
        filt = 1.0 / (a * self.power.to(x_t.device) + (1 - a))
        centred = x_t.double() - a.sqrt() * mu
        return ((1 - a).sqrt() * self._apply_spectral(centred, filt)).to(x_t.dtype)

    def sample(self, num: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Draw ``num`` exact samples ``(num, 1, H, W)`` from N(μ, Σ)."""
        w = torch.randn((num, 1, *self.image_size), generator=generator, dtype=torch.float64)
        return (self.mean + self._apply_spectral(w, self.power.sqrt())).to(dtype)

    def covariance_apply(self, x: torch.Tensor) -> torch.Tensor:
        """``Σ x``."""
        return self._apply_spectral(x, self.power.to(x.device))

    def posterior_mean(
        self,
        y: torch.Tensor,
        forward: Callable[[torch.Tensor], torch.Tensor],
        adjoint: Callable[[torch.Tensor], torch.Tensor],
        noise_var: float,
        offset: torch.Tensor | None = None,
        max_iter: int = 500,
        tol: float = 1e-10,
    ) -> torch.Tensor:
        """Exact posterior mean of real ``x ~ N(μ, Σ)`` given ``y = forward(x) + offset + n``, ``n ~ CN(0, noise_var I)``.

        ``forward`` maps real ``(B, 1, H, W)`` float64 to complex measurements, ``adjoint`` its adjoint (complex output;
        the real part is taken). Solves ``(I + (2/σ²) Σ Re(AᴴA)) (x - μ) = (2/σ²) Σ Re(Aᴴ(y - offset - Aμ))`` by CG in the
        Σ⁻¹-weighted form, which keeps the system symmetric positive definite:
        ``(Σ⁻¹ + (2/σ²) Re AᴴA) d = (2/σ²) Re Aᴴ r``.
        """
        c = 2.0 / float(noise_var)
        mu = self.mean.expand(y.shape[0], 1, *self.image_size).to(torch.float64)
        r = y if offset is None else y - offset
        rhs = c * adjoint(r - forward(mu)).real
        inv_p = 1.0 / self.power

        def apply(v: torch.Tensor) -> torch.Tensor:
            return self._apply_spectral(v, inv_p) + c * adjoint(forward(v)).real

        d = torch.zeros_like(rhs)
        res = rhs - apply(d)
        p = res.clone()
        rs = (res * res).sum()
        for _ in range(max_iter):
            ap = apply(p)
            alpha = rs / (p * ap).sum()
            d = d + alpha * p
            res = res - alpha * ap
            rs_new = (res * res).sum()
            if rs_new.sqrt() < tol * rhs.norm():
                break
            p = res + (rs_new / rs) * p
            rs = rs_new
        return mu + d
