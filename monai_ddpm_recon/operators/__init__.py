"""Physics: data-consistency operators, coil maps and sampling masks. Knows nothing about priors."""

from __future__ import annotations

from .base import LinearOperator, mask_acceleration, prepare_mask
from .coils import birdcage_maps, espirit_maps
from .fft import fft2c, ifft2c
from .fourier import MaskedFourier
from .masks import MaskType, effective_acceleration, make_mask
from .noise import estimate_noise_std
from .sense import SenseOperator

__all__ = [
    "LinearOperator",
    "MaskedFourier",
    "SenseOperator",
    "MaskType",
    "birdcage_maps",
    "espirit_maps",
    "effective_acceleration",
    "estimate_noise_std",
    "fft2c",
    "ifft2c",
    "make_mask",
    "mask_acceleration",
    "prepare_mask",
]
