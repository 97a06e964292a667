"""Reconstruction solvers: ``solver(kspace, operator) -> image``. Where operators and priors meet."""

from __future__ import annotations

from .bart import BartPicsSolver
from .base import ReconInfo, Solver
from .baselines import SenseSolver, ZeroFilledMode, ZeroFilledSolver
from .cs import L1WaveletSolver, TotalVariationSolver
from .diffusion import DiffusionSolver
from .frequency_replacement import FrequencyReplacementSolver
from .loss_guidance import GuidanceGradient, LossGuidanceSolver
from .mapping import PhaseMode, PriorMapping
from .sampling import sample_loop
from .score_based import AnnealedLangevinSolver, SBIMSolver
from .tuning import tune_lambda

__all__ = [
    "AnnealedLangevinSolver",
    "BartPicsSolver",
    "DiffusionSolver",
    "FrequencyReplacementSolver",
    "GuidanceGradient",
    "L1WaveletSolver",
    "LossGuidanceSolver",
    "PhaseMode",
    "PriorMapping",
    "ReconInfo",
    "SBIMSolver",
    "SenseSolver",
    "Solver",
    "TotalVariationSolver",
    "ZeroFilledMode",
    "ZeroFilledSolver",
    "sample_loop",
    "tune_lambda",
]
