"""Reconstruction solvers: ``solver(kspace, operator) -> image``. Where operators and priors meet."""

from __future__ import annotations

from .bart import BartPicsSolver
from .base import ReconInfo, Solver
from .baselines import SenseSolver, ZeroFilledMode, ZeroFilledSolver
from .cs import L1WaveletSolver, TotalVariationSolver
from .diffusion import DiffusionSolver, GuidanceDivergedError, Resampling
from .frequency_replacement import CoilRule, FrequencyReplacementSolver, NoiseSpace
from .loss_guidance import GuidanceGradient, LossGuidanceSolver
from .mapping import PhaseMode, PriorMapping
from .sampling import NonFiniteIterateError, sample_loop
from .score_based import AnnealedLangevinSolver, DataGradient, Predictor, SBIMSolver
from .tuning import TuneResult, tune_lambda

__all__ = [
    "AnnealedLangevinSolver",
    "BartPicsSolver",
    "CoilRule",
    "DataGradient",
    "DiffusionSolver",
    "FrequencyReplacementSolver",
    "GuidanceDivergedError",
    "GuidanceGradient",
    "L1WaveletSolver",
    "LossGuidanceSolver",
    "NoiseSpace",
    "NonFiniteIterateError",
    "PhaseMode",
    "Predictor",
    "PriorMapping",
    "ReconInfo",
    "Resampling",
    "SBIMSolver",
    "SenseSolver",
    "Solver",
    "TotalVariationSolver",
    "TuneResult",
    "ZeroFilledMode",
    "ZeroFilledSolver",
    "sample_loop",
    "tune_lambda",
]
