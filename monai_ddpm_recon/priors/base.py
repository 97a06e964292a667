"""The prior protocol solvers depend on, and the DDPM algebra shared by every ε-prediction prior.

Conventions (Ho et al., 2020): ``x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε``, images are real float tensors
``(B, channels, H, W)`` in the intensity range [-1, 1]; ``t`` is an int or a ``(B,)`` long tensor in
``[0, T - 1]``. A prior knows nothing about k-space.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from ..utils.enums import StrEnum


class Schedule(StrEnum):
    """Noise schedules, with MONAI's scheduler names as values."""

    LINEAR = "linear_beta"
    SCALED_LINEAR = "scaled_linear_beta"
    COSINE = "cosine"


@runtime_checkable
class Prior(Protocol):
    """What solvers may ask of a diffusion prior."""

    num_train_timesteps: int
    channels: int
    image_size: tuple[int, int]

    @property
    def alphas_cumprod(self) -> torch.Tensor: ...

    def abar(self, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor: ...

    def eps(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor: ...

    def x0(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor: ...

    def score(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor: ...


def make_betas(schedule: Schedule | str, num_train_timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """β_t of a MONAI noise schedule, float32 ``(T,)`` on CPU (built by MONAI's ``DDPMScheduler``)."""
    from monai.networks.schedulers import DDPMScheduler

    schedule = Schedule.parse(schedule, "schedule")
    kwargs = {} if schedule == Schedule.COSINE else {"beta_start": beta_start, "beta_end": beta_end}
    sched = DDPMScheduler(num_train_timesteps=num_train_timesteps, schedule=schedule.value, **kwargs)
    return sched.betas.clone()


class DiffusionPrior:
    """Base class: everything a prior offers, derived from its ε-prediction and its noise schedule.

    Subclasses implement :meth:`eps`. ``score`` is the score of the VP-perturbed density,
    ``∇ log p_t(x_t) = -ε(x_t, t) / sqrt(1 - ᾱ_t)``; ``x0`` is the Tweedie estimate
    ``(x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t)``.

    Args:
        image_size: ``(H, W)`` of the images the prior models.
        channels: 1 (magnitude) or 2 (real, imaginary).
        num_train_timesteps: ``T``.
        schedule: :class:`Schedule` member or MONAI schedule name.
        beta_start, beta_end: β range of linear schedules.
    """

    def __init__(
        self,
        image_size: tuple[int, int],
        channels: int = 1,
        num_train_timesteps: int = 1000,
        schedule: Schedule | str = Schedule.LINEAR,
        beta_start: float = 1e-4,
        beta_end: float = 2e-2,
    ) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 (magnitude) or 2 (real/imaginary), got {channels!r}.")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.channels = int(channels)
        self.num_train_timesteps = int(num_train_timesteps)
        self.schedule = Schedule.parse(schedule, "schedule")
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)
        self._betas = make_betas(self.schedule, self.num_train_timesteps, beta_start, beta_end).double()
        self._alphas_cumprod = torch.cumprod(1.0 - self._betas, dim=0)

    # --- schedule ------------------------------------------------------------------------------------------
    @property
    def betas(self) -> torch.Tensor:
        """β_t, float64 ``(T,)`` on CPU."""
        return self._betas

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """ᾱ_t, float64 ``(T,)`` on CPU."""
        return self._alphas_cumprod

    def scheduler_kwargs(self) -> dict:
        """Keyword arguments that rebuild this schedule in a MONAI scheduler (DDPM or DDIM)."""
        kw = {"num_train_timesteps": self.num_train_timesteps, "schedule": self.schedule.value}
        if self.schedule != Schedule.COSINE:
            kw.update(beta_start=self.beta_start, beta_end=self.beta_end)
        return kw

    def abar(self, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """ᾱ_t broadcast to ``like``: shape ``(B, 1, 1, 1)``, dtype/device of ``like``."""
        t = torch.as_tensor(t, dtype=torch.long).reshape(-1)
        if bool((t < 0).any()) or bool((t >= self.num_train_timesteps).any()):
            raise ValueError(f"t must lie in [0, {self.num_train_timesteps - 1}], got {t.tolist()}.")
        a = self._alphas_cumprod[t.cpu()].to(device=like.device, dtype=like.dtype)
        return a.reshape(-1, 1, 1, 1)

    def supports_size(self, size: tuple[int, int]) -> bool:
        """Whether this prior models images of ``size`` ``(H, W)``: only its own ``image_size`` for a whole-image
        prior (patch priors accept any size)."""
        return tuple(int(s) for s in size) == tuple(self.image_size)

    # --- model -----------------------------------------------------------------------------------------------
    def eps(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Predicted noise ``ε(x_t, t)``, same shape as ``x_t`` ``(B, channels, H, W)``."""
        raise NotImplementedError

    def x0(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Tweedie estimate of ``x_0`` (not clipped)."""
        a = self.abar(t, x_t)
        return (x_t - (1 - a).sqrt() * self.eps(x_t, t)) / a.sqrt()

    def score(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """``∇_x log p_t(x_t) = -ε(x_t, t) / sqrt(1 - ᾱ_t)``."""
        a = self.abar(t, x_t)
        return -self.eps(x_t, t) / (1 - a).sqrt()

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Forward process ``x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε``."""
        a = self.abar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def check_input(self, x_t: torch.Tensor) -> None:
        """Raise if ``x_t`` is not ``(B, channels, H, W)`` real with this prior's image size."""
        expected = (self.channels, *self.image_size)
        if x_t.ndim != 4 or tuple(x_t.shape[1:]) != expected:
            raise ValueError(
                f"x_t has shape {tuple(x_t.shape)}; this prior expects (B, {self.channels}, "
                f"{self.image_size[0]}, {self.image_size[1]}). Resize the images (or the operator) to "
                f"{self.image_size}, or use a prior trained at that size."
            )
        if torch.is_complex(x_t):
            raise TypeError("x_t must be real; complex images enter a prior as magnitude or as 2 channels (real, imag).")


def prior_supports_size(prior, size: tuple[int, int]) -> bool:
    """``prior.supports_size(size)`` when the prior defines it, else ``size == prior.image_size``."""
    fn = getattr(prior, "supports_size", None)
    if callable(fn):
        return bool(fn(size))
    return tuple(int(s) for s in size) == tuple(int(s) for s in prior.image_size)
