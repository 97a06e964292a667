"""Samplers on the DDPM time axis: each owns its timestep schedule and its stepper.

A sampler answers three questions for :class:`~.diffusion.DiffusionSolver`: which operations to walk
(:meth:`schedule`, see :mod:`.sampling`), how to propose ``x_{t_prev}`` from ``(x_t, ε, x̂0)`` (:meth:`stepper`), and at
which time the last operation leaves the iterate (:meth:`final_time`, ``-1`` = the clean image). It knows nothing of
k-space; the conditioning rule (:mod:`.rules`) adds the data.

- :class:`DDIMSampler`: strided DDIM with stochasticity η (Song et al., ICLR 2021) or all ``T`` DDPM ancestral steps
  (Ho et al., NeurIPS 2020), optionally with short-grained (RePaint, Lugmayr et al., CVPR 2022) or long-grained
  resampling (Peer, "Conditioning of DDPMs on Accelerated MRI", ETH Zurich semester thesis, 2023, §6).
- :class:`DiffPIRSampler`: strided steps with DiffPIR's ζ re-noising (Zhu et al., CVPR 2023).
- :class:`DDSSampler`: strided steps with DDS's η re-noising on the network's ε (Chung et al., ICLR 2024).
- Score-based samplers (annealed Langevin, SBIM) live in :mod:`.score_based`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..priors.base import Prior
from ..utils.enums import StrEnum
from ..utils.validation import check_int, check_unit_interval
from .sampling import (
    DDIMStepper,
    DiffPIRStepper,
    Op,
    Renoise,
    Stepper,
    ddim_timesteps,
    ddpm_timesteps,
    long_grained_schedule,
    repaint_schedule,
)


class Resampling(StrEnum):
    """Resampling scheme (Peer 2023, Fig. "Sampling Strategies").

    - ``none``: one pass of the reverse process.
    - ``short``: short-grained (RePaint, Lugmayr et al. 2022): every segment of ``jump_length`` steps is run
      ``resamplings`` times, re-noising back to its start in between.
    - ``long``: long-grained: finish the reverse process, re-noise the clean result with the forward process to the
      timestep ``(resamplings - 1)·jump_length`` steps before the end and run again, then ``(resamplings - 2)·jump_length``
      steps before the end, …, ``jump_length`` steps before the end (each restart shorter by ``jump_length`` steps).
    """

    NONE = "none"
    SHORT = "short"
    LONG = "long"


class Spacing(StrEnum):
    """How strided timesteps are spread over ``[0, T-1]``.

    - ``uniform``: evenly (DDIM, Song et al. 2021);
    - ``quadratic``: ``t_i = T - 1 - T sqrt(i / (n - 1))``, large steps at high noise and small ones near the clean
      image (DiffPIR's "quad" skip type, Zhu et al. 2023).
    """

    UNIFORM = "uniform"
    QUADRATIC = "quadratic"


@runtime_checkable
class Sampler(Protocol):
    """What :class:`~.diffusion.DiffusionSolver` asks of a sampler."""

    def schedule(self, prior: Prior) -> list[Op]: ...

    def stepper(self, prior: Prior) -> Stepper: ...

    def final_time(self, prior: Prior) -> int: ...


def strided_timesteps(
    prior: Prior, num_steps: int | None, spacing: Spacing | str = Spacing.UNIFORM, t_start: int | None = None
) -> list[int]:
    """``num_steps`` timesteps from ``t_start`` (default ``T - 1``) down to 0 spread by :class:`Spacing`, or all ``T``
    for ``None`` (DDPM)."""
    T = prior.num_train_timesteps
    top = T - 1 if t_start is None else check_t_start(t_start, T)
    if num_steps is not None and num_steps > top + 1:
        where = f"the prior's num_train_timesteps={T}" if t_start is None else f"t_start + 1 = {top + 1}"
        raise ValueError(f"num_steps={num_steps} exceeds {where}.")
    if num_steps is None:
        return ddpm_timesteps(top + 1)
    if Spacing.parse(spacing, "spacing") == Spacing.UNIFORM or num_steps < 3:
        return ddim_timesteps(top + 1, num_steps)
    n = num_steps
    times = [max(0, min(top, round(top - (top + 1) * (i / (n - 1)) ** 0.5))) for i in range(n)]
    for i in range(1, n):  # strictly decreasing where rounding collides, leaving room for the steps still to come
        times[i] = min(max(times[i], n - 1 - i), times[i - 1] - 1)
    return times


def check_t_start(t_start, num_train_timesteps: int) -> int:
    """Require an integer ``t_start`` in ``[0, T - 1]``."""
    t = check_int("t_start", t_start, minimum=0)
    if t > num_train_timesteps - 1:
        raise ValueError(f"t_start must be an integer in [0, {num_train_timesteps - 1}] (the prior's T - 1), got {t_start!r}.")
    return t


def warm_start(ops: list[Op], t_start: int | None) -> list[Op]:
    """Prepend ``Renoise(-1, t_start)``: the sampling loop then starts from an initial clean estimate forward-diffused
    to ``t_start`` instead of from pure noise at ``T - 1`` (Come-Closer-Diffuse-Faster, Chung, Sim & Ye, CVPR 2022)."""
    return ops if t_start is None else [Renoise(-1, int(t_start)), *ops]


def _start(sampler) -> str:
    return "" if sampler.t_start is None else f", t_start={sampler.t_start}"


class DDIMSampler:
    """Strided DDIM / DDPM ancestral sampling with optional resampling.

    Args:
        num_steps: reverse steps of the strided DDIM schedule (``None``: all ``T`` steps, DDPM ancestral sampling).
        eta: DDIM stochasticity η in [0, 1] (1 with ``num_steps=None`` is DDPM; 0 is deterministic DDIM).
        resampling: :class:`Resampling` scheme; ``jump_length`` (j) and ``resamplings`` (r) configure it.
        clip_x0: clip x̂0 to [-1, 1] in the stepper (as MONAI's schedulers do by default).
        spacing: :class:`Spacing` of the strided timesteps (``uniform``, DDIM's, by default); ignored for
            ``num_steps=None``.
        t_start: start the reverse process at this timestep from the solver's initial estimate forward-diffused to it
            (:func:`warm_start`), instead of from pure noise at ``T - 1`` (``None``); the ``num_steps`` steps are
            then spread over ``[0, t_start]``.

    Raises:
        ValueError: a count below 1, η outside [0, 1], an unknown resampling scheme; at :meth:`schedule`, a schedule
            longer than the prior's ``T`` or long-grained restarts that do not fit.
    """

    def __init__(
        self,
        num_steps: int | None = 100,
        eta: float = 1.0,
        resampling: Resampling | str = Resampling.NONE,
        jump_length: int = 10,
        resamplings: int = 1,
        clip_x0: bool = True,
        spacing: Spacing | str = Spacing.UNIFORM,
        t_start: int | None = None,
    ) -> None:
        self.num_steps = None if num_steps is None else check_int("num_steps", num_steps)
        self.eta = check_unit_interval("eta", eta)
        self.resampling = Resampling.parse(resampling, "resampling")
        self.jump_length = check_int("jump_length", jump_length)
        self.resamplings = check_int("resamplings", resamplings)
        self.clip_x0 = bool(clip_x0)
        self.spacing = Spacing.parse(spacing, "spacing")
        self.t_start = None if t_start is None else check_int("t_start", t_start, minimum=0)

    def timesteps(self, prior: Prior) -> list[int]:
        """The reverse-process timesteps (descending), before resampling."""
        return strided_timesteps(prior, self.num_steps, self.spacing, self.t_start)

    def schedule(self, prior: Prior) -> list[Op]:
        times = self.timesteps(prior)
        if self.resampling == Resampling.SHORT:
            return warm_start(repaint_schedule(times, self.jump_length, self.resamplings), self.t_start)
        if self.resampling == Resampling.LONG:
            n, j, r = len(times), self.jump_length, self.resamplings
            if (r - 1) * j > n - 1:
                raise ValueError(
                    f"long-grained resampling with jump_length={j} and resamplings={r} needs (r-1)*j <= {n - 1} "
                    f"(the schedule has {n} steps); lower jump_length or resamplings, or raise num_steps."
                )
            return warm_start(long_grained_schedule(times, [times[n - k * j] for k in range(r - 1, 0, -1)]), self.t_start)
        return warm_start(repaint_schedule(times, 1, 1), self.t_start)

    def stepper(self, prior: Prior) -> DDIMStepper:
        # strided DDIM with η and all-T DDPM (η = 1 reproduces ancestral sampling) share one update rule
        return DDIMStepper(eta=self.eta, clip_x0=self.clip_x0)

    def final_time(self, prior: Prior) -> int:
        return -1

    def describe(self) -> str:
        steps = "all" if self.num_steps is None else self.num_steps
        spacing = "" if self.spacing == Spacing.UNIFORM else f", spacing={self.spacing.value}"
        return f"DDIM(steps={steps}, eta={self.eta:g}{spacing}, resampling={self.resampling.value}{_start(self)})"


class DiffPIRSampler:
    """DiffPIR's sampler (Zhu et al., CVPR 2023): strided timesteps, each step re-noises the (data-corrected) x̂0 with
    a fraction ζ of fresh noise (:class:`~.sampling.DiffPIRStepper`).

    Args:
        num_steps: reverse steps (network evaluations).
        zeta: ζ in [0, 1] (1: fresh noise only, the DiffPIR default for MRI-like problems).
        clip_x0: clip x̂0 to [-1, 1] before re-noising.
        spacing: :class:`Spacing` of the timesteps (``quadratic``, DiffPIR's default).
        t_start: start the reverse process at this timestep from the solver's initial estimate forward-diffused to it
            (:func:`warm_start`), instead of from pure noise at ``T - 1`` (``None``); the ``num_steps`` steps are
            then spread over ``[0, t_start]``.
    """

    def __init__(self, num_steps: int = 100, zeta: float = 1.0, clip_x0: bool = True,
                 spacing: Spacing | str = Spacing.QUADRATIC, t_start: int | None = None) -> None:
        self.num_steps = check_int("num_steps", num_steps)
        self.zeta = check_unit_interval("zeta", zeta)
        self.clip_x0 = bool(clip_x0)
        self.spacing = Spacing.parse(spacing, "spacing")
        self.t_start = None if t_start is None else check_int("t_start", t_start, minimum=0)

    def timesteps(self, prior: Prior) -> list[int]:
        return strided_timesteps(prior, self.num_steps, self.spacing, self.t_start)

    def schedule(self, prior: Prior) -> list[Op]:
        return warm_start(repaint_schedule(self.timesteps(prior), 1, 1), self.t_start)

    def stepper(self, prior: Prior) -> DiffPIRStepper:
        return DiffPIRStepper(zeta=self.zeta, clip_x0=self.clip_x0)

    def final_time(self, prior: Prior) -> int:
        return -1

    def describe(self) -> str:
        return f"DiffPIR(steps={self.num_steps}, zeta={self.zeta:g}{_start(self)})"


class DDSSampler(DiffPIRSampler):
    """The sampler of DDS (Chung, Lee & Ye, ICLR 2024, Alg. 1 and the authors' code): strided timesteps, each step
    re-noises the (data-corrected) x̂0 as ``sqrt(ᾱ_{t'}) x̂0 + sqrt(1 − ᾱ_{t'}) (η z + sqrt(1 − η²) ε)`` with the
    network's ε (:class:`~.sampling.DiffPIRStepper` with ζ = η² and ``noise_estimate="network"``).

    This η is the fraction of fresh noise in the re-noised iterate (the authors' default 0.85), not Song et al.'s
    DDIM η of :class:`DDIMSampler` (there η = 0.15 adds fresh noise of at most 0.15·sqrt(1 − ᾱ_{t'}) and keeps
    the rest of the network's ε: a nearly deterministic step, with which the DDS preset fell below zero-filled on
    some slices of the peer benchmark).

    Args:
        num_steps: reverse steps (network evaluations).
        eta: DDS's η in [0, 1].
        clip_x0: clip x̂0 to [-1, 1] before re-noising.
        spacing: :class:`Spacing` of the timesteps (``uniform``, as DDS).
        t_start: see :class:`DiffPIRSampler`.
    """

    def __init__(self, num_steps: int = 50, eta: float = 0.85, clip_x0: bool = True,
                 spacing: Spacing | str = Spacing.UNIFORM, t_start: int | None = None) -> None:
        self.eta = check_unit_interval("eta", eta)
        super().__init__(num_steps, self.eta**2, clip_x0, spacing, t_start)

    def stepper(self, prior: Prior) -> DiffPIRStepper:
        return DiffPIRStepper(zeta=self.zeta, clip_x0=self.clip_x0, noise_estimate="network")

    def describe(self) -> str:
        return f"DDS(steps={self.num_steps}, eta={self.eta:g}{_start(self)})"


__all__ = ["DDIMSampler", "DDSSampler", "DiffPIRSampler", "Resampling", "Sampler", "Spacing", "check_t_start", "strided_timesteps", "warm_start"]
