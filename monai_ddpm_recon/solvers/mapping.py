"""Where physical k-space meets the prior's intensity range: scale and phase, in one place for all diffusion solvers.

A prior models real images in [-1, 1]: either the magnitude (1 channel) or real/imaginary parts (2 channels). MRI images
are complex with a physical scale. :class:`PriorMapping` holds, per batch item,

- ``scale`` (real ``(B, 1, 1, 1)``): the physical magnitude that maps to +1, the maximum (by default,
  :data:`SCALE_PERCENTILE`) of the zero-filled image ``Aᴴ y`` magnitude;
- ``phase`` (complex unit ``(B, 1, H, W)``, 1-channel priors only): a smooth phase estimated from the fully sampled
  calibration region (low-resolution image of the Hann-windowed centre of k-space, combined with ``Aᴴ``), the usual
  smooth-phase model of MRI (e.g. partial-Fourier homodyne and phase-constrained reconstructions).

and maps ``x`` (prior range) ↔ ``image`` (physical, complex):

- 1 channel: ``image = scale · (x + 1)/2 · phase``, ``x = 2 Re(image · conj(phase)) / scale - 1``;
- 2 channels: ``image = scale · (x_re + i x_im)``, ``x = [Re, Im](image) / scale``.
"""

from __future__ import annotations

import torch

from ..data.slices import intensity_scales
from ..operators.base import LinearOperator
from ..operators.fft import fft2c, ifft2c
from ..utils.enums import StrEnum


#: Percentile of ``|Aᴴ y|`` that maps to the prior's +1: the maximum, as in training (every training slice is divided
#: by its own maximum). Undersampling lowers the peaks of ``|Aᴴ y|`` (on the held-out 1 mm slab its 99.5th percentile
#: is 0.70 of the true maximum at R = 4 and 8 with 8 coils, its maximum 0.85), so a lower percentile maps the
#: brightest tissue above +1, where the samplers clip x̂0 and throw the measured data away: DiffPIR with the patch prior
#: lost 7.4 dB at R = 4 and 2.7 dB at R = 8 (8 coils, tuning slices) with the 99.5th percentile used before
#: (``benchmarks/patch_prior.py --stage scale``, ``benchmarks/results/patch_prior/results.md``). A scale set too
#: high only dims the image (a hot pixel does that).
SCALE_PERCENTILE = 100.0


class PhaseMode(StrEnum):
    """How a 1-channel (magnitude) prior meets complex data.

    - ``smooth``: estimate a smooth phase from the calibration region (default).
    - ``none``: assume a real, non-negative image (phase 1); only right for phase-free data.
    """

    SMOOTH = "smooth"
    NONE = "none"


def calibration_window(mask: torch.Tensor, image_shape: tuple[int, int]) -> torch.Tensor:
    """Hann window over the fully sampled centre of a mask, real ``(B|1, 1, H, W)``.

    The calibration width along each axis is the length of the contiguous run of sampled lines through the k-space centre
    (for 1D column masks the rows are fully sampled, and the window along ``H`` uses the same width as along ``W`` so the
    estimated phase is smooth in both directions).
    """
    h, w = image_shape
    m = mask.expand(mask.shape[0], 1, h, w) if mask.shape[-2] == 1 else mask
    windows = []
    for item in m[:, 0]:
        sampled = item > 0
        wc = _run_length(sampled[h // 2, :], w // 2)
        hc = _run_length(sampled[:, w // 2], h // 2) if mask.shape[-2] != 1 else wc
        windows.append(_hann(hc, h, item.dtype)[:, None] * _hann(wc, w, item.dtype)[None, :])
    return torch.stack(windows)[:, None].to(mask.device)


def _run_length(line: torch.Tensor, centre: int) -> int:
    """Width of the symmetric run of ``True`` around ``centre``."""
    if not bool(line[centre]):
        return 1
    left = centre
    while left > 0 and bool(line[left - 1]):
        left -= 1
    right = centre
    while right < line.numel() - 1 and bool(line[right + 1]):
        right += 1
    return 2 * min(centre - left, right - centre) + 1


def _hann(width: int, n: int, dtype: torch.dtype) -> torch.Tensor:
    win = torch.zeros(n, dtype=dtype)
    width = max(1, min(int(width), n))
    start = n // 2 - width // 2
    win[start : start + width] = torch.hann_window(width + 2, periodic=False, dtype=dtype)[1:-1]
    return win


class PriorMapping:
    """Per-item scale and phase between physical complex images and a prior's real [-1, 1] images.

    Args:
        scale: ``(B, 1, 1, 1)`` positive real.
        phase: ``(B, 1, H, W)`` complex with unit modulus, or ``None`` (phase 1).
        channels: the prior's channels (1 or 2).
    """

    def __init__(self, scale: torch.Tensor, phase: torch.Tensor | None, channels: int) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels!r}.")
        if not bool((scale > 0).all()) or not bool(torch.isfinite(scale).all()):
            raise ValueError("scale must be finite and > 0: the zero-filled image is all zero or not finite.")
        self.scale = scale
        self.phase = phase
        self.channels = channels

    @classmethod
    def from_kspace(
        cls,
        kspace: torch.Tensor,
        operator: LinearOperator,
        channels: int = 1,
        phase_mode: PhaseMode | str = PhaseMode.SMOOTH,
        percentile: float = SCALE_PERCENTILE,
    ) -> PriorMapping:
        """Estimate scale (the intensity scale rule on ``|Aᴴ y|``, :func:`~monai_ddpm_recon.data.slices.intensity_scales`) and, for magnitude priors, a smooth phase from the calibration region."""
        phase_mode = PhaseMode.parse(phase_mode, "phase_mode")
        zf = operator.adjoint(kspace)
        scale = intensity_scales(zf, percentile, name="zero-filled image").to(zf.real.dtype).reshape(-1, 1, 1, 1)
        phase = None
        if channels == 1 and phase_mode == PhaseMode.SMOOTH:
            window = calibration_window(operator.mask, operator.image_shape).to(kspace.device)
            low = operator.adjoint(kspace * window.to(kspace.real.dtype))
            phase = torch.exp(1j * torch.angle(low)).to(zf.dtype)
        return cls(scale, phase, channels)

    def expand(self, repeats: int) -> PriorMapping:
        """Repeat every item ``repeats`` times along the batch (for ``repeats`` posterior samples per slice)."""
        rep = lambda t: None if t is None else t.repeat_interleave(repeats, dim=0)  # noqa: E731
        return PriorMapping(rep(self.scale), rep(self.phase), self.channels)

    def to_image(self, x: torch.Tensor, dtype: torch.dtype = torch.complex64) -> torch.Tensor:
        """Prior range ``(N, channels, H, W)`` real → physical complex image ``(N, 1, H, W)`` (differentiable)."""
        if self.channels == 1:
            img = (self.scale * (x + 1) / 2).to(dtype)
            return img if self.phase is None else img * self.phase.to(dtype)
        return (self.scale * torch.complex(x[:, :1], x[:, 1:2])).to(dtype)

    def to_prior(self, image: torch.Tensor) -> torch.Tensor:
        """Physical complex image ``(N, 1, H, W)`` → prior range ``(N, channels, H, W)`` real."""
        if self.channels == 1:
            aligned = image if self.phase is None else image * self.phase.conj()
            return 2 * aligned.real / self.scale - 1
        return torch.cat([image.real, image.imag], dim=1) / self.scale


__all__ = ["SCALE_PERCENTILE", "PhaseMode", "PriorMapping", "calibration_window", "fft2c", "ifft2c"]
