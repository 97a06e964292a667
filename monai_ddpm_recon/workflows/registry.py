"""Solvers by name, so configs and command lines can pick them (``--solver loss_guidance``)."""

from __future__ import annotations

import importlib
from typing import Any

from ..utils.enums import StrEnum


class SolverName(StrEnum):
    ZERO_FILLED = "zero_filled"
    SENSE = "sense"
    TV = "tv"
    L1_WAVELET = "l1_wavelet"
    LOSS_GUIDANCE = "loss_guidance"
    FREQUENCY_REPLACEMENT = "frequency_replacement"
    LANGEVIN = "langevin"
    SBIM = "sbim"
    DIFFPIR = "diffpir"
    DDS = "dds"
    DPS = "dps"
    DIFFUSION = "diffusion"


_CLASSES: dict[SolverName, tuple[str, str]] = {
    SolverName.ZERO_FILLED: ("monai_ddpm_recon.solvers.baselines", "ZeroFilledSolver"),
    SolverName.SENSE: ("monai_ddpm_recon.solvers.baselines", "SenseSolver"),
    SolverName.TV: ("monai_ddpm_recon.solvers.cs", "TotalVariationSolver"),
    SolverName.L1_WAVELET: ("monai_ddpm_recon.solvers.cs", "L1WaveletSolver"),
    SolverName.LOSS_GUIDANCE: ("monai_ddpm_recon.solvers.loss_guidance", "LossGuidanceSolver"),
    SolverName.FREQUENCY_REPLACEMENT: ("monai_ddpm_recon.solvers.frequency_replacement", "FrequencyReplacementSolver"),
    SolverName.LANGEVIN: ("monai_ddpm_recon.solvers.score_based", "AnnealedLangevinSolver"),
    SolverName.SBIM: ("monai_ddpm_recon.solvers.score_based", "SBIMSolver"),
    SolverName.DIFFPIR: ("monai_ddpm_recon.solvers.proximal", "DiffPIRSolver"),
    SolverName.DDS: ("monai_ddpm_recon.solvers.proximal", "DecomposedDiffusionSolver"),
    SolverName.DPS: ("monai_ddpm_recon.solvers.loss_guidance", "DPSSolver"),
    # a prior + the sampler and rule given as solver arguments (the bundle wires them with `_target_`)
    SolverName.DIFFUSION: ("monai_ddpm_recon.solvers.diffusion", "DiffusionSolver"),
}

DIFFUSION_SOLVERS = frozenset(
    {SolverName.LOSS_GUIDANCE, SolverName.FREQUENCY_REPLACEMENT, SolverName.LANGEVIN, SolverName.SBIM,
     SolverName.DIFFPIR, SolverName.DDS, SolverName.DPS, SolverName.DIFFUSION}
)


def solver_class(name: SolverName | str) -> type:
    """The solver class registered under ``name``."""
    module, cls = _CLASSES[SolverName.parse(name, "solver")]
    return getattr(importlib.import_module(module), cls)


def needs_prior(name: SolverName | str) -> bool:
    return SolverName.parse(name, "solver") in DIFFUSION_SOLVERS


def build_solver(name: SolverName | str, prior: Any = None, **kwargs: Any):
    """Instantiate solver ``name``; diffusion solvers get ``prior`` as their first argument.

    Raises:
        ValueError: unknown name (listing the valid ones), or a diffusion solver without a prior.
    """
    key = SolverName.parse(name, "solver")
    cls = solver_class(key)
    if key in DIFFUSION_SOLVERS:
        if prior is None:
            raise ValueError(f"solver={key.value!r} needs a diffusion prior (prior=None given).")
        return cls(prior, **kwargs)
    return cls(**kwargs)


def build_solvers(names, prior: Any, solver_kwargs: dict, **diffusion_defaults: Any) -> dict:
    """Every solver of ``names`` built, so every argument is checked before any work; solvers keep no per-call state.

    ``solver_kwargs`` maps a :class:`SolverName` to its constructor arguments; diffusion solvers also get
    ``diffusion_defaults`` (e.g. ``progress``, ``seed``) where ``solver_kwargs`` does not set them.
    """
    built = {}
    for name in names:
        kwargs = dict(solver_kwargs.get(name, {}))
        if needs_prior(name):
            for key, value in diffusion_defaults.items():
                kwargs.setdefault(key, value)
        built[name] = build_solver(name, prior if needs_prior(name) else None, **kwargs)
    return built
