"""Frequency replacement (Peer, "Conditioning of DDPMs on Accelerated MRI", ETH Zurich semester thesis, 2023, §"Frequency Replacement"; Song
et al., ICLR 2022; RePaint/ILVR style).

After each prior step to time ``t'`` the sampled k-space of the iterate is replaced by the measured k-space forward-noised
to the same ``t'``:

    x_{t'} ← x̂_{t'} + A⁺ (φ(t') ∘ (s_{t'} − A x̂_{t'})),   s_{t'} = A(forward-noised data at t'),

done in physical units through the :class:`~.mapping.PriorMapping` (an affine map ``image = L x + c``; for 1-channel
priors ``L x = s/2 · φ_phase · x`` and ``c = s/2 · φ_phase``), so the noised data are

    s_{t'} = sqrt(ᾱ) y + (1 − sqrt(ᾱ)) A c + sqrt(1 − ᾱ) n,

with the noise ``n`` drawn (:class:`NoiseSpace`)

- ``image``: ``n = A(L ε)``, ``ε`` white in the prior's image space (Peer 2023, eq. "s_t in image space");
- ``kspace``: directly in k-space, complex white with per real/imaginary part variance ``1/2`` (1-channel priors; the
  variance of ``F ε`` for real white ``ε``, Peer 2023's experimentally found factor (1 − ᾱ)/2, verified in the tests)
  or ``1`` (2-channel priors, complex ``ε``), times ``|L|²``, pushed through ``A Fᴴ`` (single coil: ``M n``).

At the last step (``t' = -1``) ``s = y``: plain replacement with the measured data.

Optional scheduled Gaussian low-pass ``φ(t)`` (Peer 2023 §"Variance in Predictions and Filtered Diffusion", after ILVR,
Choi et al. 2021): ``φ(t)(k) = exp(−|k|² / (2 σ(t)²))`` on the normalised frequency grid (``|k| ≤ 0.5·√2``) with
``σ(t)`` geometric from ``filter_sigma[0]`` at ``t = T−1`` to ``filter_sigma[1]`` at ``t = 0``, so low frequencies
condition the sample early and high frequencies only late. (The thesis gives its schedule of filter widths only as a
figure; this geometric schedule is our choice.)

Multi-coil rule (:class:`CoilRule`):

- ``sense``: per-coil replacement, then SENSE combination with the coil maps: ``x ← x + Aᴴ φ∘(s − A x)``
  (``Σ_c |S_c|² = 1``). Single coil: exactly the replacement. No inner iterations.
- ``cg``: least-squares projection ``x ← x + (AᴴA)⁺ Aᴴ φ∘(s − A x)`` by conjugate gradients (``cg_iterations``);
  the corrected image minimises ``‖A x − s‖`` with the smallest change. Single coil: exactly the replacement.

For 1-channel priors the corrected image is mapped back with :meth:`~.mapping.PriorMapping.to_prior` (the real part
along the smooth phase); the imaginary part left by the replacement is the part the magnitude prior cannot represent.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..operators.base import LinearOperator
from ..operators.fft import ifft2c
from ..priors.base import Prior
from ..utils.enums import StrEnum
from ..utils.validation import check_int
from .diffusion import DiffusionSolver, Measurement, least_squares_correction
from .mapping import SCALE_PERCENTILE, PhaseMode, PriorMapping
from .samplers import DDIMSampler, Resampling
from .sampling import Conditioning, StepContext, draw_noise
from .vp_ve import abar_at


class NoiseSpace(StrEnum):
    """Where the measured k-space is forward-noised."""

    IMAGE = "image"
    KSPACE = "kspace"


class CoilRule(StrEnum):
    """How the replacement is done with several coils (see the module docstring)."""

    SENSE = "sense"
    CG = "cg"


def gaussian_lowpass(image_size: tuple[int, int], sigma: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``exp(−|k|²/(2σ²))`` on the centred normalised frequency grid (``k ∈ [−0.5, 0.5)`` per axis), real ``(1, 1, H, W)``."""
    h, w = image_size
    ky = (torch.arange(h, dtype=torch.float64) - h // 2) / h
    kx = (torch.arange(w, dtype=torch.float64) - w // 2) / w
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    return torch.exp(-k2 / (2 * float(sigma) ** 2)).to(dtype)[None, None]


def filter_sigma_schedule(t: int, num_train_timesteps: int, sigma_start: float, sigma_end: float) -> float:
    """Geometric schedule ``σ(t) = σ_end (σ_start/σ_end)^{t/(T−1)}``; ``t = -1`` (clean) gives ``σ_end``."""
    frac = max(t, 0) / max(num_train_timesteps - 1, 1)
    return float(sigma_end * (sigma_start / sigma_end) ** frac)


def kspace_noise_var_per_part(channels: int) -> float:
    """Per real/imaginary part variance of ``F ε`` (orthonormal FFT) for the prior's white noise ``ε``:
    1/2 for real images (Peer 2023's factor), 1 for complex (2-channel) images."""
    return 0.5 if channels == 1 else 1.0


class FrequencyReplacement:
    """Frequency-replacement rule (see the module docstring).

    Args:
        noise_space: :class:`NoiseSpace` (``image`` or ``kspace``).
        filter_sigma: ``None`` (no filter) or ``(σ_start, σ_end)`` of the scheduled Gaussian low-pass, both > 0.
        coil_rule: :class:`CoilRule` for multi-coil operators.
        cg_iterations: CG iterations of ``coil_rule="cg"``.
    """

    def __init__(self, noise_space: NoiseSpace | str = NoiseSpace.IMAGE, filter_sigma: Sequence[float] | None = None,
                 coil_rule: CoilRule | str = CoilRule.SENSE, cg_iterations: int = 10) -> None:
        self.noise_space = NoiseSpace.parse(noise_space, "noise_space")
        self.coil_rule = CoilRule.parse(coil_rule, "coil_rule")
        self.cg_iterations = check_int("cg_iterations", cg_iterations)
        if filter_sigma is not None:
            fs = tuple(float(v) for v in filter_sigma)
            if len(fs) != 2 or not all(v > 0 and v < float("inf") for v in fs):
                raise ValueError(f"filter_sigma must be None or two finite numbers > 0 (start, end), got {filter_sigma!r}.")
            filter_sigma = fs
        self.filter_sigma = filter_sigma

    def describe(self) -> str:
        return f"noise_space={self.noise_space.value}, filter_sigma={self.filter_sigma}, coil_rule={self.coil_rule.value}"

    def noised_kspace(
        self,
        prior: Prior,
        kspace: torch.Tensor,
        operator: LinearOperator,
        mapping: PriorMapping,
        t: int,
        generator: torch.Generator | None,
        offset_kspace: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The measured k-space forward-noised to time ``t`` (``t = -1``: the data themselves), ``(N, C, H, W)``.

        ``offset_kspace`` is ``A c`` with ``c = image(0)`` of the mapping (computed when not given)."""
        if t < 0:
            return kspace
        like = torch.zeros(1, dtype=kspace.real.dtype, device=kspace.device)
        a = abar_at(prior, t, like).reshape(())
        shape = (kspace.shape[0], prior.channels, *operator.image_shape)
        if offset_kspace is None:
            offset_kspace = operator.forward(_offset(prior, kspace, operator, mapping))
        if self.noise_space == NoiseSpace.IMAGE:
            eps = draw_noise(torch.empty(shape, dtype=kspace.real.dtype, device=kspace.device), generator)
            noise = operator.forward(mapping.to_image(eps, dtype=kspace.dtype)) - offset_kspace
        else:
            # |L|: the physical magnitude of one prior unit (s/2 for magnitude priors, s for real/imag priors)
            gain = mapping.scale.to(kspace.real.dtype) * (0.5 if prior.channels == 1 else 1.0)
            std = (kspace_noise_var_per_part(prior.channels) ** 0.5) * gain
            parts = torch.randn((2, shape[0], 1, *shape[-2:]), generator=generator, dtype=kspace.real.dtype)
            n = torch.complex(parts[0], parts[1]).to(kspace.device) * std
            noise = operator.forward(ifft2c(n))
        return a.sqrt() * kspace + (1 - a.sqrt()) * offset_kspace + (1 - a).sqrt() * noise

    def correction(self, operator: LinearOperator, residual: torch.Tensor) -> torch.Tensor:
        """Image-domain correction for a k-space residual by the coil rule."""
        if self.coil_rule == CoilRule.CG and operator.num_coils > 1:
            return least_squares_correction(operator, residual, max_iter=self.cg_iterations)
        return operator.adjoint(residual)

    def bind(self, m: Measurement) -> Conditioning:
        prior, kspace, operator, mapping = m.prior, m.kspace, m.operator, m.mapping
        T = prior.num_train_timesteps
        offset_kspace = operator.forward(_offset(prior, kspace, operator, mapping))
        lowpass = {}

        def rule(ctx: StepContext) -> torch.Tensor:
            image = mapping.to_image(ctx.x_prev, dtype=kspace.dtype)
            target = self.noised_kspace(prior, kspace, operator, mapping, ctx.t_prev, m.generator, offset_kspace)
            residual = target - operator.forward(image)
            if self.filter_sigma is not None:
                if ctx.t_prev not in lowpass:
                    sigma = filter_sigma_schedule(ctx.t_prev, T, *self.filter_sigma)
                    lowpass[ctx.t_prev] = gaussian_lowpass(tuple(operator.image_shape), sigma, residual.real.dtype).to(residual.device)
                residual = residual * lowpass[ctx.t_prev]
            return mapping.to_prior(image + self.correction(operator, residual)).to(ctx.x_prev.dtype)

        return Conditioning(on_proposal=rule)


def _offset(prior: Prior, kspace: torch.Tensor, operator: LinearOperator, mapping: PriorMapping) -> torch.Tensor:
    """``image(0)`` of the mapping: the physical image of the prior's zero."""
    shape = (kspace.shape[0], prior.channels, *operator.image_shape)
    return mapping.to_image(torch.zeros(shape, dtype=kspace.real.dtype, device=kspace.device), dtype=kspace.dtype)


class FrequencyReplacementSolver(DiffusionSolver):
    """Preset: :class:`FrequencyReplacement` on a :class:`~.samplers.DDIMSampler` (Peer 2023; Song et al., 2022).

    Args:
        prior: diffusion prior (1 or 2 channels).
        noise_space, filter_sigma, coil_rule, cg_iterations: see :class:`FrequencyReplacement`.
        num_steps, eta, resampling, jump_length, resamplings, clip_x0: see :class:`~.samplers.DDIMSampler`.
        final_data_consistency: replace the sampled k-space by the measured data once more at the end and return the
            complex image (default ``True``).
        Other arguments: see :class:`~.diffusion.DiffusionSolver`.
    """

    def __init__(
        self,
        prior,
        noise_space: NoiseSpace | str = NoiseSpace.IMAGE,
        filter_sigma: Sequence[float] | None = None,
        coil_rule: CoilRule | str = CoilRule.SENSE,
        cg_iterations: int = 10,
        num_steps: int | None = 100,
        eta: float = 1.0,
        resampling: Resampling | str = Resampling.NONE,
        jump_length: int = 10,
        resamplings: int = 1,
        num_samples: int = 1,
        phase_mode: PhaseMode | str = PhaseMode.SMOOTH,
        final_data_consistency: bool = True,
        clip_x0: bool = True,
        seed: int | None = 0,
        progress: bool = False,
        scale_percentile: float = SCALE_PERCENTILE,
    ) -> None:
        super().__init__(
            prior, DDIMSampler(num_steps, eta, resampling, jump_length, resamplings, clip_x0),
            FrequencyReplacement(noise_space, filter_sigma, coil_rule, cg_iterations), num_samples, phase_mode,
            final_data_consistency, seed, progress, scale_percentile,
        )


__all__ = [
    "CoilRule",
    "FrequencyReplacement",
    "FrequencyReplacementSolver",
    "NoiseSpace",
    "filter_sigma_schedule",
    "gaussian_lowpass",
    "kspace_noise_var_per_part",
]
