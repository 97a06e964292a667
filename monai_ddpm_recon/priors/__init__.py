"""Diffusion priors. Knows nothing about k-space."""

from __future__ import annotations

from .base import DiffusionPrior, Prior, Schedule, make_betas, prior_supports_size
from .ddpm import DDPMPrior, build_network, default_network_kwargs, sha256_file
from .patch import PatchDDPMPrior, Tiling, coordinate_grid

__all__ = [
    "DDPMPrior",
    "PatchDDPMPrior",
    "Tiling",
    "coordinate_grid",
    "DiffusionPrior",
    "Prior",
    "prior_supports_size",
    "Schedule",
    "build_network",
    "default_network_kwargs",
    "make_betas",
    "sha256_file",
]
