"""Bundle workflows: inference (reconstruct + write outputs) and the benchmark (MONAI SupervisedEvaluator)."""

from __future__ import annotations

from .bundle_paths import find_bundle_root
from .cases import Case, CaseSpec, load_cases
from .evaluate import BenchmarkWorkflow
from .reconstruct import ReconstructionWorkflow, load_prior, resolve_device
from .runner import SolverNetwork, batches, prepare_case_batch, run_evaluator, score_cases, stack_cases
from .registry import SolverName, build_solver, needs_prior, solver_class
from .settings import default_solver_kwargs

__all__ = [
    "BenchmarkWorkflow",
    "Case",
    "CaseSpec",
    "ReconstructionWorkflow",
    "SolverName",
    "SolverNetwork",
    "batches",
    "build_solver",
    "default_solver_kwargs",
    "find_bundle_root",
    "load_cases",
    "load_prior",
    "needs_prior",
    "prepare_case_batch",
    "resolve_device",
    "run_evaluator",
    "score_cases",
    "solver_class",
    "stack_cases",
]
