"""The one sampling loop every diffusion solver uses.

A *schedule* is a list of operations on the diffusion time axis:

- :class:`Denoise` ``(t, t_prev)``: one reverse step from ``t`` to ``t_prev < t`` (``t_prev = -1`` is the clean image);
- :class:`Renoise` ``(t_from, t_to)``: forward-diffuse the iterate from ``t_from`` back up to ``t_to > t_from`` with
  ``q(x_{t_to} | x_{t_from})`` (RePaint's "jump back", Lugmayr et al., 2022, and long-grained restarts, Peer 2023 §6).

Builders: :func:`ddpm_schedule` (all T ancestral steps), :func:`ddim_schedule` (strided), :func:`repaint_schedule`
(short-grained resampling: each segment of ``jump_length`` steps is run ``resamplings`` times), and
:func:`long_grained_schedule` (finish the reverse process, re-noise the result to a progressively smaller time, run again).

At each :class:`Denoise` the loop asks the prior for ε and forms the Tweedie estimate x̂0; a conditioning rule may
replace x̂0 (:attr:`Conditioning.on_x0`: proximal data consistency, DDS / DiffPIR), a *stepper* proposes ``x_{t_prev}``
from ``(x_t, ε, x̂0)``, and the rule may then move the proposal (:attr:`Conditioning.on_proposal`: loss guidance,
frequency replacement, score data terms). A sampler (:mod:`.samplers`) owns the schedule and the stepper; a rule owns
its data-consistency update; :class:`~.diffusion.DiffusionSolver` composes the two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from tqdm.auto import tqdm

from ..priors.base import DiffusionPrior
from ..utils.validation import check_int, check_unit_interval
from .vp_ve import abar_at


@dataclass(frozen=True)
class Denoise:
    t: int
    t_prev: int


@dataclass(frozen=True)
class Renoise:
    t_from: int
    t_to: int


Op = Denoise | Renoise


def draw_noise(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like ``like``, drawn on the CPU from ``generator`` (so a seed gives the same sample
    on every device) and moved to ``like``'s device."""
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device="cpu").to(like.device)


def _chain(times: Sequence[int]) -> list[Denoise]:
    times = [int(t) for t in times]
    return [Denoise(t, tp) for t, tp in zip(times, times[1:] + [-1])]


def ddpm_timesteps(num_train_timesteps: int) -> list[int]:
    """All ``T`` timesteps ``T-1, …, 0``."""
    return list(range(check_int("num_train_timesteps", num_train_timesteps) - 1, -1, -1))


def ddim_timesteps(num_train_timesteps: int, num_steps: int) -> list[int]:
    """``num_steps`` evenly spread timesteps from ``T - 1`` down to 0 (rounded ``linspace``, as MONAI 1.6's
    ``DDIMScheduler.set_timesteps``), so sampling starts at the noisiest level the prior was trained on."""
    n = check_int("num_steps", num_steps)
    T = check_int("num_train_timesteps", num_train_timesteps)
    if n > T:
        raise ValueError(f"num_steps={n} exceeds num_train_timesteps={T}.")
    if n == 1:
        return [T - 1]
    return [round((T - 1) * k / (n - 1)) for k in range(n - 1, -1, -1)]


def ddpm_schedule(num_train_timesteps: int) -> list[Op]:
    return _chain(ddpm_timesteps(num_train_timesteps))


def ddim_schedule(num_train_timesteps: int, num_steps: int) -> list[Op]:
    return _chain(ddim_timesteps(num_train_timesteps, num_steps))


def repaint_schedule(timesteps: Sequence[int], jump_length: int, resamplings: int) -> list[Op]:
    """Short-grained resampling (Peer 2023, after Lugmayr et al.): every segment of ``jump_length`` reverse steps is run,
    re-noised back to its start, and run again, ``resamplings`` times in all. ``resamplings = 1`` is plain sampling."""
    j = check_int("jump_length", jump_length)
    r = check_int("resamplings", resamplings)
    times = [int(t) for t in timesteps] + [-1]
    ops: list[Op] = []
    for start in range(0, len(times) - 1, j):
        end = min(start + j, len(times) - 1)
        segment = [Denoise(times[i], times[i + 1]) for i in range(start, end)]
        for rep in range(r):
            ops.extend(segment)
            if rep < r - 1:
                ops.append(Renoise(times[end], times[start]))
    return ops


def long_grained_schedule(timesteps: Sequence[int], restart_times: Sequence[int]) -> list[Op]:
    """Long-grained resampling (Peer 2023): run the whole reverse process, then for each ``t_r`` in ``restart_times``
    (strictly decreasing) re-noise the clean result to ``t_r`` with the forward process and run the reverse process from
    there again, over the timesteps ``<= t_r``."""
    times = [int(t) for t in timesteps]
    restarts = [int(t) for t in restart_times]
    if any(b >= a for a, b in zip(restarts, restarts[1:])):
        raise ValueError(f"restart_times must be strictly decreasing, got {restarts}.")
    if restarts and not 0 <= restarts[0] <= times[0]:
        raise ValueError(f"restart_times must lie in [0, {times[0]}], got {restarts}.")
    ops: list[Op] = _chain(times)
    for tr in restarts:
        sub = [t for t in times if t < tr]
        ops.append(Renoise(-1, tr))
        ops.extend(_chain([tr] + sub))
    return ops


def count_denoise(ops: Sequence[Op]) -> int:
    """Number of reverse steps (= network evaluations) of a schedule."""
    return sum(isinstance(op, Denoise) for op in ops)


def renoise(
    prior: DiffusionPrior, x: torch.Tensor, t_from: int, t_to: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Sample ``q(x_{t_to} | x_{t_from}) = N(sqrt(ᾱ_to/ᾱ_from) x, (1 - ᾱ_to/ᾱ_from) I)`` (``t_from = -1``: ᾱ = 1)."""
    if not t_to > t_from:
        raise ValueError(f"renoise needs t_to > t_from, got t_from={t_from}, t_to={t_to}.")
    ratio = abar_at(prior, t_to, x) / abar_at(prior, t_from, x)
    return ratio.sqrt() * x + (1 - ratio).sqrt() * draw_noise(x, generator)


class Stepper(Protocol):
    """Proposes the unconditional ``x_{t_prev}`` from ``x_t`` and the prior's predictions."""

    def __call__(
        self, prior: DiffusionPrior, x_t: torch.Tensor, t: int, t_prev: int, eps: torch.Tensor, x0: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor: ...


class DDIMStepper:
    """Generalised DDIM update (Song et al., 2021, eq. 12) between any ``t > t_prev``:

    ``x_{t'} = sqrt(ᾱ_{t'}) x̂0 + sqrt(1 - ᾱ_{t'} - σ²) ε + σ z``,
    ``σ = η sqrt((1 - ᾱ_{t'}) / (1 - ᾱ_t)) sqrt(1 - ᾱ_t / ᾱ_{t'})``.

    With ``η = 1`` and ``t' = t - 1`` this is DDPM ancestral sampling with variance β̃_t (Ho et al., 2020);
    ``η = 0`` is deterministic DDIM. Matches MONAI's ``DDIMScheduler.step`` / ``DDPMScheduler.step`` (tested).

    Args:
        eta: stochasticity η in [0, 1].
        clip_x0: clip x̂0 to [-1, 1] (as MONAI's schedulers do by default) before the update; ε absorbs the clipped
            amount (``ε ← ε − sqrt(ᾱ_t/(1-ᾱ_t)) (clip(x̂0) − x̂0)``), which for the Tweedie x̂0 is MONAI's "ε recomputed
            from the clipped x̂0", and which leaves a rule's correction of x̂0 (DDS) in the update.
    """

    def __init__(self, eta: float = 0.0, clip_x0: bool = True) -> None:
        self.eta = check_unit_interval("eta", eta)
        self.clip_x0 = bool(clip_x0)

    def __call__(self, prior, x_t, t, t_prev, eps, x0, generator):
        a_t = abar_at(prior, t, x_t)
        a_prev = abar_at(prior, t_prev, x_t)
        if self.clip_x0:
            clipped = x0.clamp(-1, 1)
            eps = eps - (a_t / (1 - a_t)).sqrt() * (clipped - x0)
            x0 = clipped
        sigma = self.eta * ((1 - a_prev) / (1 - a_t)).sqrt() * (1 - a_t / a_prev).sqrt()
        mean = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp_min(0).sqrt() * eps
        if self.eta > 0 and t_prev >= 0:
            return mean + sigma * draw_noise(x_t, generator)
        return mean


class DiffPIRStepper:
    """Re-noising step from a (data-corrected) x̂0 with a fraction ζ of fresh noise (DiffPIR, Zhu et al., CVPR 2023,
    Alg. 1; DDS, Chung et al., ICLR 2024, Alg. 1 with ζ = η²):

    ``x_{t'} = sqrt(ᾱ_{t'}) x̂0 + sqrt(1 − ᾱ_{t'}) (sqrt(1 − ζ) e + sqrt(ζ) z)``,

    where the noise estimate ``e`` is DiffPIR's effective ``ε̂ = (x_t − sqrt(ᾱ_t) x̂0) / sqrt(1 − ᾱ_t)`` (recomputed
    from the corrected x̂0) or, for DDS, the network's ε. ``ζ = 1`` re-noises with fresh noise only; ``ζ = 0`` is
    deterministic (DDIM η = 0 with ``e``).

    Args:
        zeta: ζ in [0, 1].
        clip_x0: clip x̂0 to [-1, 1] before the update.
        noise_estimate: ``"effective"`` (ε̂, DiffPIR) or ``"network"`` (ε, DDS).
    """

    def __init__(self, zeta: float = 1.0, clip_x0: bool = True, noise_estimate: str = "effective") -> None:
        self.zeta = check_unit_interval("zeta", zeta)
        self.clip_x0 = bool(clip_x0)
        if noise_estimate not in ("effective", "network"):
            raise ValueError(f"noise_estimate must be 'effective' or 'network', got {noise_estimate!r}.")
        self.noise_estimate = noise_estimate

    def __call__(self, prior, x_t, t, t_prev, eps, x0, generator):
        if self.clip_x0:
            x0 = x0.clamp(-1, 1)
        if t_prev < 0:
            return x0
        a_t = abar_at(prior, t, x_t)
        a_prev = abar_at(prior, t_prev, x_t)
        eps_hat = (x_t - a_t.sqrt() * x0) / (1 - a_t).sqrt() if self.noise_estimate == "effective" else eps
        noise = draw_noise(x_t, generator) if self.zeta > 0 else torch.zeros_like(x_t)
        mix = (1 - self.zeta) ** 0.5 * eps_hat + self.zeta**0.5 * noise
        return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * mix


@dataclass
class StepContext:
    """What a conditioning rule sees at one reverse step.

    Attributes:
        x_t: iterate at time ``t`` ``(N, channels, H, W)``; requires grad when the rule asked for it.
        t, t_prev: the step's times (``t_prev = -1``: clean image).
        eps, x0: the prior's ε and Tweedie x̂0 at ``(x_t, t)`` (functions of ``x_t`` in the autograd graph if grad is on).
        x_prev: the stepper's proposal for ``x_{t_prev}`` (detached); ``None`` while ``on_x0`` runs.
        index: position of this step in the schedule's reverse steps.
        generator: the sampling RNG (for rules that add noise).
    """

    x_t: torch.Tensor
    t: int
    t_prev: int
    eps: torch.Tensor
    x0: torch.Tensor
    x_prev: torch.Tensor | None
    index: int
    generator: torch.Generator | None


ConditionFn = Callable[[StepContext], torch.Tensor]


@dataclass(frozen=True)
class Conditioning:
    """A conditioning rule bound to one problem: where it acts in each reverse step.

    Attributes:
        on_x0: ``ctx -> x̂0'`` replaces the Tweedie estimate before the stepper (proximal data consistency).
        on_proposal: ``ctx -> x_{t_prev}`` replaces the stepper's proposal (guidance, replacement, score data terms).
        needs_grad: evaluate the prior with autograd on ``x_t`` (for gradients through x̂0, DPS).
    """

    on_x0: ConditionFn | None = None
    on_proposal: ConditionFn | None = None
    needs_grad: bool = False


class NonFiniteIterateError(FloatingPointError):
    """Raised when the sampling iterate turns NaN/Inf."""


def sample_loop(
    prior: DiffusionPrior,
    ops: Sequence[Op],
    x_init: torch.Tensor,
    condition: Conditioning | ConditionFn | None = None,
    stepper: Stepper | None = None,
    needs_grad: bool = False,
    generator: torch.Generator | None = None,
    progress: bool = True,
    desc: str = "sampling",
) -> torch.Tensor:
    """Walk ``ops`` from ``x_init`` (the iterate at the first op's time) and return the final iterate.

    Args:
        prior: the diffusion prior (ε-prediction).
        ops: schedule from one of the builders above.
        x_init: ``(N, channels, H, W)`` real.
        condition: a bound rule (:class:`Conditioning`), a plain ``ctx -> conditioned x_prev`` callable (acting on the
            proposal), or ``None`` (unconditional sampling).
        stepper: proposal update (default :class:`DDIMStepper` with η = 0).
        needs_grad: evaluate the prior with autograd on ``x_t`` (also switched on by ``condition.needs_grad``).
        generator: RNG for all noise drawn by the loop (noise is drawn on CPU, so results match across devices).
        progress: show a tqdm bar.

    Raises:
        NonFiniteIterateError: naming the step and time when the iterate becomes NaN/Inf.
    """
    stepper = stepper or DDIMStepper()
    if condition is not None and not isinstance(condition, Conditioning):
        condition = Conditioning(on_proposal=condition)
    condition = condition or Conditioning()
    needs_grad = bool(needs_grad or condition.needs_grad)
    x = x_init
    index = 0
    bar = tqdm(ops, desc=desc, disable=not progress, leave=False)
    for op in bar:
        if isinstance(op, Renoise):
            x = renoise(prior, x, op.t_from, op.t_to, generator)
            continue
        with torch.set_grad_enabled(needs_grad):
            x_t = x.detach().requires_grad_(needs_grad)
            eps = prior.eps(x_t, op.t)
            a_t = prior.abar(op.t, x_t)
            x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        x0_step = x0.detach()
        if condition.on_x0 is not None:
            x0_step = condition.on_x0(StepContext(x_t, op.t, op.t_prev, eps, x0, None, index, generator)).detach()
        x_prev = stepper(prior, x_t.detach(), op.t, op.t_prev, eps.detach(), x0_step, generator)
        if condition.on_proposal is not None:
            x_prev = condition.on_proposal(StepContext(x_t, op.t, op.t_prev, eps, x0, x_prev, index, generator))
        x = x_prev.detach()
        if not bool(torch.isfinite(x).all()):
            raise NonFiniteIterateError(f"the sampling iterate became NaN/Inf at step {index} (t={op.t} -> {op.t_prev}).")
        index += 1
    return x
