"""Diffusion priors. Knows nothing about k-space."""

from __future__ import annotations

from .base import DiffusionPrior, Prior, Schedule, make_betas

__all__ = ["DiffusionPrior", "Prior", "Schedule", "make_betas"]
