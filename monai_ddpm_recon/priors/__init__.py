"""Diffusion priors. Knows nothing about k-space."""

from __future__ import annotations

from .base import DiffusionPrior, Prior, Schedule, make_betas
from .ddpm import DDPMPrior, build_network, default_network_kwargs, sha256_file

__all__ = [
    "DDPMPrior",
    "DiffusionPrior",
    "Prior",
    "Schedule",
    "build_network",
    "default_network_kwargs",
    "make_betas",
    "sha256_file",
]
