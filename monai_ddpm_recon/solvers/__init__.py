"""Reconstruction solvers: ``solver(kspace, operator) -> image``. Where operators and priors meet."""

from __future__ import annotations

from .base import ReconInfo, Solver

__all__ = ["ReconInfo", "Solver"]
