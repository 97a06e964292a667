"""Map the bundle's user-level knobs (``--num_steps``, ``--guidance_scale``, ``--tv_lambda``) to solver arguments."""

from __future__ import annotations

from .registry import SolverName


def default_solver_kwargs(
    num_steps: int | None = None,
    guidance_scale: float | None = None,
    tv_lambda: float | None = None,
) -> dict:
    """Per-solver constructor arguments; ``None`` leaves a solver's own default.

    ``num_steps`` sets the reverse steps (= network evaluations) of loss guidance, frequency replacement and SBIM, and
    the number of noise levels of annealed Langevin (which then makes ``steps_per_level`` evaluations per level).
    """
    kwargs: dict[SolverName, dict] = {name: {} for name in SolverName}
    if num_steps is not None:
        for name in (SolverName.LOSS_GUIDANCE, SolverName.FREQUENCY_REPLACEMENT, SolverName.SBIM):
            kwargs[name]["num_steps"] = int(num_steps)
        kwargs[SolverName.LANGEVIN]["num_levels"] = int(num_steps)
    if guidance_scale is not None:
        kwargs[SolverName.LOSS_GUIDANCE]["guidance"] = float(guidance_scale)
    if tv_lambda is not None:
        kwargs[SolverName.TV]["lam"] = float(tv_lambda)
    return {k.value: v for k, v in kwargs.items() if v}
