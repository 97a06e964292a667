"""Centred orthonormal 2D FFTs over the last two axes.

Convention (same as ``fastmri.fft2c`` and ``sigpy.fft(center=True)``): k-space DC sits at index
``(H // 2, W // 2)``; ``fft2c = fftshift ∘ fft2(norm="ortho") ∘ ifftshift``. Every module of the
project uses these two functions, so shifts are never mixed.
"""

from __future__ import annotations

import torch

_DIMS = (-2, -1)


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D FFT of a complex tensor ``(..., H, W)``."""
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=_DIMS), dim=_DIMS, norm="ortho"), dim=_DIMS)


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D inverse FFT of a complex tensor ``(..., H, W)``."""
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(k, dim=_DIMS), dim=_DIMS, norm="ortho"), dim=_DIMS)
