"""The k-space noise level, estimated from the measured data themselves.

Thermal noise in k-space is white, complex Gaussian with the same standard deviation σ at every frequency
(``E|n|² = σ²``), while an image's energy falls off quickly away from the centre. The sampled entries of the outer
k-space band are therefore mostly noise, and the median of their magnitude, which ignores the minority of entries
that still carry signal, estimates σ: ``|n|`` is Rayleigh with scale ``σ/√2``, whose median is ``σ sqrt(ln 2)``.

At high SNR the band still holds some signal (more so for small matrices, whose outer band lies at lower physical
frequencies): the estimate then levels off at the band's signal magnitude instead of falling to σ. Measured on the
bundle's held-out slices (8 coils, R = 8, 16 slices, ``benchmarks/results/noise_level.md``), estimate / true σ at
10 / 20 / 30 / 40 dB SNR: 1.00 / 1.04 / 1.27 / 2.49 at 1 mm (217 x 181), 1.01 / 1.22 / 2.39 / 6.82 at 64².

References:
    Donoho & Johnstone, "Ideal spatial adaptation by wavelet shrinkage", Biometrika 1994 (the median-based estimate).
    Gudbjartsson & Patz, "The Rician distribution of noisy MRI data", MRM 1995 (magnitude statistics of complex noise).
"""

from __future__ import annotations

import math

import torch

from ..utils.validation import check_finite

#: Chebyshev radius (fraction of Nyquist in each direction) beyond which sampled k-space counts as the outer band
OUTER_BAND = 0.7


def estimate_noise_std(kspace: torch.Tensor, mask: torch.Tensor, outer: float = OUTER_BAND) -> torch.Tensor:
    """The complex noise std σ (``E|n|² = σ²``) of measured k-space, per batch item.

    Args:
        kspace: ``(B, C, H, W)`` complex measured k-space (zeros where not sampled), centred.
        mask: sampling mask broadcastable to ``(B, 1, H, W)``, real in [0, 1].
        outer: Chebyshev radius in (0, 1) of the outer band, as a fraction of Nyquist.

    Returns:
        ``(B,)`` real, in the units of ``kspace``.

    Raises:
        ValueError: ``kspace`` not 4-D complex or not finite, ``outer`` outside (0, 1), or no sampled entry in the
            outer band of some item (then the band says nothing about the noise).
    """
    if not (isinstance(kspace, torch.Tensor) and kspace.is_complex() and kspace.ndim == 4):
        raise ValueError(f"kspace must be a complex (B, C, H, W) tensor, got {getattr(kspace, 'shape', type(kspace))}.")
    check_finite("kspace", kspace)
    if not 0 < float(outer) < 1:
        raise ValueError(f"outer must lie in (0, 1), got {outer!r}.")
    B, C, H, W = kspace.shape
    ky = (torch.arange(H, device=kspace.device) - H // 2).abs() / (H / 2)
    kx = (torch.arange(W, device=kspace.device) - W // 2).abs() / (W / 2)
    band = torch.maximum(ky[:, None], kx[None, :]) >= outer
    sampled = (mask.to(kspace.device).real > 0).expand(B, 1, H, W)[:, 0] & band
    out = []
    for b in range(B):
        values = kspace[b][:, sampled[b]].abs().reshape(-1)
        if values.numel() == 0:
            raise ValueError(
                f"no sampled k-space entry lies in the outer band (radius >= {outer:g} of Nyquist) of item {b}; "
                "the noise level cannot be estimated: pass it explicitly."
            )
        out.append(values.median() / math.sqrt(math.log(2)))
    return torch.stack(out).to(kspace.real.dtype)


__all__ = ["OUTER_BAND", "estimate_noise_std"]
