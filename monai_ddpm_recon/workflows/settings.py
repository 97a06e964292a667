"""Map the bundle's user-level knobs (``--num_steps``, ``--guidance_scale``, ``--tv_lambda``) to solver arguments."""

from __future__ import annotations

from ..utils.validation import check_bool
from .registry import SolverName

SCORE_EVALS_PER_LEVEL = 3


# presets whose final data-consistency step is on by default
FINAL_DC_PRESETS = (SolverName.LOSS_GUIDANCE, SolverName.DDS, SolverName.LANGEVIN, SolverName.SBIM)


def default_solver_kwargs(
    num_steps: int | None = None,
    guidance_scale: float | None = None,
    tv_lambda: float | None = None,
    sampler=None,
    rule=None,
    final_data_consistency: bool | None = None,
    snr_db: float | None = None,
) -> dict:
    """Per-solver constructor arguments; ``None`` leaves a solver's own default.

    ``guidance_scale`` multiplies loss guidance's one-step-consistency step (1 = the default ``2·ΣM``).
    ``final_data_consistency`` sets the final least-squares step of the presets that take it by default (loss
    guidance, DDS, annealed Langevin, SBIM); ``None`` keeps their default on noiseless k-space and switches it off when
    ``snr_db`` is set, because with noise the step fits the noise (``benchmarks/results/noise_fit.md``: DDS's residual
    falls below the least-squares floor and it loses 0.2–2.3 dB).
    ``sampler`` and ``rule`` (objects the bundle config builds with ``_target_``) are the parts of the generic
    ``diffusion`` solver: ``DiffusionSolver(prior, sampler, rule)``.

    ``num_steps`` is the budget of network evaluations (NFE) every diffusion solver gets, so they compare at equal
    cost: the DDIM steps of loss guidance and frequency replacement; ``num_steps // 3`` noise levels × 3 Langevin
    steps for annealed Langevin; ``num_steps // 3`` levels × (1 predictor + 2 corrector steps) for SBIM (without
    corrector, SBIM lost 7 dB at R = 4 in ``benchmarks/results/score_based_demo_step700.md``).
    """
    kwargs: dict[SolverName, dict] = {name: {} for name in SolverName}
    if num_steps is not None:
        num_steps = int(num_steps)
        if num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer (network evaluations), got {num_steps}.")
        for name in (SolverName.LOSS_GUIDANCE, SolverName.FREQUENCY_REPLACEMENT, SolverName.DIFFPIR, SolverName.DDS,
                     SolverName.DPS):
            kwargs[name]["num_steps"] = num_steps
        per_level = SCORE_EVALS_PER_LEVEL
        kwargs[SolverName.LANGEVIN].update(num_levels=max(1, num_steps // per_level), steps_per_level=per_level)
        kwargs[SolverName.SBIM].update(num_steps=max(2, num_steps // per_level), corrector_steps=per_level - 1)
    if guidance_scale is not None:
        kwargs[SolverName.LOSS_GUIDANCE]["guidance"] = float(guidance_scale)
    if sampler is not None:
        kwargs[SolverName.DIFFUSION]["sampler"] = sampler
    if rule is not None:
        kwargs[SolverName.DIFFUSION]["rule"] = rule
    if final_data_consistency is None and snr_db is not None:
        final_data_consistency = False
    if final_data_consistency is not None:
        for name in FINAL_DC_PRESETS:
            kwargs[name]["final_data_consistency"] = check_bool("final_data_consistency", final_data_consistency)
    if tv_lambda is not None:
        kwargs[SolverName.TV]["lam"] = float(tv_lambda)
    return {k.value: v for k, v in kwargs.items() if v}
