"""Reconstruction solvers: ``solver(kspace, operator) -> image``. Where operators and priors meet."""

from __future__ import annotations

from .bart import BartPicsSolver
from .base import ReconInfo, Solver
from .baselines import SenseSolver, ZeroFilledMode, ZeroFilledSolver
from .cs import L1WaveletSolver, TotalVariationSolver
from .diffusion import ConditioningRule, DiffusionSolver, GuidanceDivergedError
from .frequency_replacement import CoilRule, FrequencyReplacement, FrequencyReplacementSolver, NoiseSpace
from .loss_guidance import DPSSolver, GuidanceGradient, LossGuidance, LossGuidanceSolver, PosteriorSampling, StepRule
from .mapping import SCALE_PERCENTILE, PhaseMode, PriorMapping
from .proximal import DecomposedDiffusionSolver, DiffPIRSolver, ProximalDataConsistency, ProximalSpace, ProximalWeight
from .samplers import DDIMSampler, DDSSampler, DiffPIRSampler, Resampling, Sampler
from .sampling import NonFiniteIterateError, sample_loop
from .score_based import (
    AnnealedLangevinSolver,
    DataGradient,
    LangevinSampler,
    Predictor,
    SBIMSampler,
    SBIMSolver,
    ScoreDataTerm,
)
from .tuning import TuneResult, tune_lambda

__all__ = [
    "AnnealedLangevinSolver",
    "BartPicsSolver",
    "CoilRule",
    "ConditioningRule",
    "DDIMSampler",
    "DDSSampler",
    "DPSSolver",
    "DataGradient",
    "DecomposedDiffusionSolver",
    "DiffPIRSampler",
    "DiffPIRSolver",
    "DiffusionSolver",
    "FrequencyReplacement",
    "FrequencyReplacementSolver",
    "GuidanceDivergedError",
    "GuidanceGradient",
    "L1WaveletSolver",
    "LangevinSampler",
    "LossGuidance",
    "LossGuidanceSolver",
    "NoiseSpace",
    "NonFiniteIterateError",
    "PhaseMode",
    "PosteriorSampling",
    "Predictor",
    "PriorMapping",
    "ProximalDataConsistency",
    "ProximalSpace",
    "ProximalWeight",
    "ReconInfo",
    "Resampling",
    "SBIMSampler",
    "SBIMSolver",
    "SCALE_PERCENTILE",
    "Sampler",
    "ScoreDataTerm",
    "StepRule",
    "SenseSolver",
    "Solver",
    "TotalVariationSolver",
    "TuneResult",
    "ZeroFilledMode",
    "ZeroFilledSolver",
    "sample_loop",
    "tune_lambda",
]
