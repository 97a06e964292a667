"""The base of every diffusion reconstruction solver: checks, prior mapping, schedule, batching of posterior samples.

A :class:`DiffusionSolver` turns an unconditional :class:`~..priors.base.DiffusionPrior` into
``solver(kspace, operator) -> image`` (seed 000, "DDPMs as Priors"). It owns everything that is the same for all
conditioning rules:

- input checks (k-space vs operator, operator image shape vs ``prior.image_size``, prior channel count);
- the :class:`~.mapping.PriorMapping` between physical units and the prior's [-1, 1] range (scale, smooth phase);
- the timestep schedule (DDPM / strided DDIM, short- or long-grained resampling) run by the one
  :func:`~.sampling.sample_loop`;
- ``num_samples = K`` posterior samples per slice, drawn as ONE batch of ``B·K`` (mean returned, pixelwise std in
  ``info.std``);
- seeding through a ``torch.Generator``, timing, NFE count, and NaN/Inf → :class:`GuidanceDivergedError`.

Subclasses implement only :meth:`DiffusionSolver._make_condition` (the conditioning rule, see
:class:`~.sampling.StepContext`).
"""

from __future__ import annotations

import time

import torch

from ..operators.base import LinearOperator
from ..operators.fourier import MaskedFourier
from ..operators.sense import SenseOperator
from ..utils.enums import StrEnum
from .base import ReconInfo
from .baselines import check_kspace
from .mapping import PhaseMode, PriorMapping
from .sampling import (
    ConditionFn,
    DDIMStepper,
    NonFiniteIterateError,
    Op,
    count_denoise,
    ddim_timesteps,
    ddpm_timesteps,
    long_grained_schedule,
    repaint_schedule,
    sample_loop,
)

_PRIOR_MEMBERS = ("eps", "abar", "alphas_cumprod", "num_train_timesteps", "channels", "image_size")


class Resampling(StrEnum):
    """Resampling scheme of seed 000 (Fig. "Sampling Strategies").

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


class GuidanceDivergedError(NonFiniteIterateError):
    """The conditioned iterate became NaN/Inf (usually a too-large guidance factor / step size)."""


def check_count(name: str, value: int) -> int:
    """Require an integer ``>= 1`` (bool rejected)."""
    if isinstance(value, bool) or not float(value).is_integer() or int(value) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def check_prior(prior) -> None:
    """Require a diffusion prior (duck-typed :class:`~..priors.base.DiffusionPrior`) with 1 or 2 channels."""
    missing = [m for m in _PRIOR_MEMBERS if not hasattr(prior, m)]
    if missing:
        raise TypeError(
            f"prior must be a DiffusionPrior (members {', '.join(_PRIOR_MEMBERS)}); {type(prior).__name__} lacks "
            f"{', '.join(missing)}."
        )
    if prior.channels not in (1, 2):
        raise ValueError(
            f"prior.channels={prior.channels!r}; diffusion solvers need a 1-channel (magnitude) or 2-channel "
            "(real, imaginary) prior."
        )


def check_operator_matches_prior(operator, prior) -> None:
    """Raise if the operator's image grid is not the prior's ``image_size`` (and say how to resize)."""
    op_shape = tuple(int(s) for s in operator.image_shape)
    prior_shape = tuple(int(s) for s in prior.image_size)
    if op_shape != prior_shape:
        raise ValueError(
            f"operator.image_shape={op_shape} differs from prior.image_size={prior_shape}. The prior only models "
            f"{prior_shape[0]}x{prior_shape[1]} images: crop or zero-pad k-space to {prior_shape} (centre crop of "
            "k-space = low-resolution image; centre crop of ifft2c(k-space) = smaller field of view) and build the "
            "operator (mask, coil maps) on that grid, or use a prior trained at the data's size."
        )


def expand_operator(operator: LinearOperator, batch: int, repeats: int) -> LinearOperator:
    """An operator acting on ``batch·repeats`` images ordered item-major (``b0k0, b0k1, …``), as after
    ``repeat_interleave(repeats, dim=0)``.

    Operators whose mask / coil maps are shared by the batch (batch dimension 1) are returned unchanged; known
    operators are rebuilt with repeated masks/maps; any other operator is wrapped (applied per sample index).
    """
    if repeats == 1:
        return operator
    per_item = [operator.mask] + ([operator.sens_maps] if hasattr(operator, "sens_maps") else [])
    if all(t.shape[0] == 1 for t in per_item):
        return operator
    rep = lambda t: t if t.shape[0] == 1 else t.repeat_interleave(repeats, dim=0)  # noqa: E731
    if type(operator) is MaskedFourier:
        return MaskedFourier(rep(operator.mask), operator.image_shape)
    if type(operator) is SenseOperator:
        return SenseOperator(rep(operator.sens_maps), rep(operator.mask))
    return _RepeatedOperator(operator, batch, repeats)


class _RepeatedOperator:
    """Apply a batch-``B`` operator to ``B·K`` item-major inputs, one sample index ``k`` at a time."""

    def __init__(self, operator: LinearOperator, batch: int, repeats: int) -> None:
        self.base, self.batch, self.repeats = operator, batch, repeats

    def _apply(self, fn, x: torch.Tensor) -> torch.Tensor:
        xs = x.reshape(self.batch, self.repeats, *x.shape[1:])
        out = torch.stack([fn(xs[:, k]) for k in range(self.repeats)], dim=1)
        return out.reshape(self.batch * self.repeats, *out.shape[2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._apply(self.base.forward, x)

    __call__ = forward

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._apply(self.base.adjoint, y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return self._apply(self.base.normal, x)

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.base.image_shape

    @property
    def num_coils(self) -> int:
        return self.base.num_coils

    @property
    def mask(self) -> torch.Tensor:
        m = self.base.mask
        return m if m.shape[0] == 1 else m.repeat_interleave(self.repeats, dim=0)


def sampled_count(operator: LinearOperator) -> torch.Tensor:
    """``Σ mask`` over the ``(H, W)`` k-space grid per batch item, real ``(B|1, 1, 1, 1)`` (seed 000's loss scaling)."""
    h, w = operator.image_shape
    m = operator.mask
    full = torch.ones((1, 1, h, w), dtype=m.dtype, device=m.device)
    return (m * full).sum(dim=(-2, -1), keepdim=True)


def least_squares_correction(
    operator: LinearOperator, residual: torch.Tensor, max_iter: int = 20, tol: float = 1e-6
) -> torch.Tensor:
    """``d = (AᴴA)⁺ Aᴴ r``: the minimum-norm image correction that best explains the k-space residual ``r``
    (conjugate gradients on ``AᴴA d = Aᴴ r`` from 0, which stays in the range of ``AᴴA``).

    For a single-coil masked Fourier operator ``AᴴA`` is a projector and CG is exact after one iteration
    (``d = Fᴴ M r``: frequency replacement). Images ``(N, 1, H, W)`` complex.
    """
    rhs = operator.adjoint(residual)
    d = torch.zeros_like(rhs)
    res = rhs.clone()
    p = res.clone()
    dims = (1, 2, 3)
    rs = (res.abs() ** 2).sum(dim=dims, keepdim=True)
    rhs_norm = rs.sqrt()
    for _ in range(int(max_iter)):
        ap = operator.normal(p)
        denom = (p.conj() * ap).real.sum(dim=dims, keepdim=True)
        alpha = torch.where(denom > 0, rs / denom.clamp_min(torch.finfo(denom.dtype).tiny), torch.zeros_like(rs))
        d = d + alpha * p
        res = res - alpha * ap
        rs_new = (res.abs() ** 2).sum(dim=dims, keepdim=True)
        if bool((rs_new.sqrt() <= tol * rhs_norm).all()):
            break
        p = res + torch.where(rs > 0, rs_new / rs.clamp_min(torch.finfo(rs.dtype).tiny), torch.zeros_like(rs)) * p
        rs = rs_new
    return d


class DiffusionSolver:
    """Base of diffusion solvers: ``solver(kspace, operator) -> image (B, 1, H, W) complex``.

    Args:
        prior: a :class:`~..priors.base.DiffusionPrior` (1 channel: magnitude with smooth phase; 2 channels: real/imag).
        num_steps: reverse steps of the strided DDIM schedule (``None``: all ``T`` steps, DDPM ancestral sampling).
        eta: DDIM stochasticity η (1 with ``num_steps=None`` is DDPM; 0 is deterministic DDIM).
        resampling: :class:`Resampling` scheme; ``jump_length`` (j) and ``resamplings`` (r) configure it.
        num_samples: posterior samples K per slice, sampled as one batch; the mean is returned and the pixelwise
            standard deviation of the K images (magnitude for 1-channel priors) is stored in ``info.std``.
        phase_mode: :class:`~.mapping.PhaseMode` for 1-channel priors.
        final_data_consistency: after sampling, make the image consistent with the measured k-space
            (``x + A⁺(y − A x)``, exact replacement for single coil; the image then leaves the prior's phase model).
        clip_x0: clip the Tweedie estimate to [-1, 1] in the stepper.
        seed: seed of the ``torch.Generator`` that draws all noise (``None``: a fresh random seed each call).
        progress: show a progress bar.
        scale_percentile: percentile of the zero-filled magnitude that maps to the prior's +1
            (:meth:`~.mapping.PriorMapping.from_kspace`). Priors trained on images divided by their maximum expect the
            maximum at +1; the zero-filled 99.5th percentile is ~0.82-0.85 of the true maximum on the Colin27
            benchmark slices (100: ~0.85-0.90).

    After each call ``self.info`` is a :class:`~.base.ReconInfo` with ``nfe`` (network evaluations, each on the whole
    ``B·K`` batch), ``iterations`` (schedule operations), ``wall_time_s``, ``std`` and ``extra`` (``scale``, ``seed``,
    ``schedule_length``, ``grad_nfe`` = evaluations that also back-propagated through the network).
    """

    #: whether the rule differentiates through the network (set by subclasses).
    needs_grad: bool = False

    def __init__(
        self,
        prior,
        num_steps: int | None = 100,
        eta: float = 1.0,
        resampling: Resampling | str = Resampling.NONE,
        jump_length: int = 10,
        resamplings: int = 1,
        num_samples: int = 1,
        phase_mode: PhaseMode | str = PhaseMode.SMOOTH,
        final_data_consistency: bool = False,
        clip_x0: bool = True,
        seed: int | None = 0,
        progress: bool = False,
        scale_percentile: float = 99.5,
    ) -> None:
        check_prior(prior)
        self.prior = prior
        self.num_steps = None if num_steps is None else check_count("num_steps", num_steps)
        if self.num_steps is not None and self.num_steps > prior.num_train_timesteps:
            raise ValueError(f"num_steps={num_steps} exceeds the prior's num_train_timesteps={prior.num_train_timesteps}.")
        if not (isinstance(eta, (int, float)) and eta >= 0):
            raise ValueError(f"eta must be a number >= 0, got {eta!r}.")
        self.eta = float(eta)
        self.resampling = Resampling.parse(resampling, "resampling")
        self.jump_length = check_count("jump_length", jump_length)
        self.resamplings = check_count("resamplings", resamplings)
        self.num_samples = check_count("num_samples", num_samples)
        self.phase_mode = PhaseMode.parse(phase_mode, "phase_mode")
        self.final_data_consistency = bool(final_data_consistency)
        self.clip_x0 = bool(clip_x0)
        if seed is not None and (isinstance(seed, bool) or not float(seed).is_integer()):
            raise ValueError(f"seed must be an integer or None, got {seed!r}.")
        self.seed = None if seed is None else int(seed)
        self.progress = bool(progress)
        if not (isinstance(scale_percentile, (int, float)) and 0 < scale_percentile <= 100):
            raise ValueError(f"scale_percentile must be in (0, 100], got {scale_percentile!r}.")
        self.scale_percentile = float(scale_percentile)
        self.info = ReconInfo()
        self.schedule()  # validate the resampling parameters now, not at the first call

    # --- schedule --------------------------------------------------------------------------------------------
    def timesteps(self) -> list[int]:
        """The reverse-process timesteps (descending), before resampling."""
        T = self.prior.num_train_timesteps
        return ddpm_timesteps(T) if self.num_steps is None else ddim_timesteps(T, self.num_steps)

    def schedule(self) -> list[Op]:
        """The full list of schedule operations (see :mod:`.sampling`)."""
        times = self.timesteps()
        if self.resampling == Resampling.SHORT:
            return repaint_schedule(times, self.jump_length, self.resamplings)
        if self.resampling == Resampling.LONG:
            n, j, r = len(times), self.jump_length, self.resamplings
            if (r - 1) * j > n - 1:
                raise ValueError(
                    f"long-grained resampling with jump_length={j} and resamplings={r} needs (r-1)*j <= {n - 1} "
                    f"(the schedule has {n} steps); lower jump_length or resamplings, or raise num_steps."
                )
            restarts = [times[n - k * j] for k in range(r - 1, 0, -1)]
            return long_grained_schedule(times, restarts)
        return repaint_schedule(times, 1, 1)

    def stepper(self) -> DDIMStepper:
        # strided DDIM with η and all-T DDPM (η = 1 reproduces ancestral sampling) share one update rule.
        return DDIMStepper(eta=self.eta, clip_x0=self.clip_x0)

    # --- the rule ----------------------------------------------------------------------------------------------
    def _make_condition(
        self, kspace: torch.Tensor, operator: LinearOperator, mapping: PriorMapping, generator: torch.Generator
    ) -> ConditionFn | None:
        """Return the conditioning rule for this call (``kspace``, ``operator``, ``mapping`` are already expanded to
        the ``B·K`` batch). ``None`` samples unconditionally."""
        raise NotImplementedError

    def _describe(self) -> str:
        """Solver parameters for error messages."""
        return ""

    def _extra_info(self) -> dict:
        """Solver-specific entries of ``info.extra``."""
        return {}

    # --- call ------------------------------------------------------------------------------------------------
    def __call__(self, kspace: torch.Tensor, operator: LinearOperator) -> torch.Tensor:
        """Reconstruct ``(B, 1, H, W)`` complex images from ``kspace`` ``(B, C, H, W)`` complex."""
        start = time.perf_counter()
        check_kspace(kspace, operator)
        check_operator_matches_prior(operator, self.prior)
        real_dtype = torch.float64 if kspace.dtype == torch.complex128 else torch.float32
        B, K = kspace.shape[0], self.num_samples
        mapping = PriorMapping.from_kspace(kspace, operator, self.prior.channels, self.phase_mode, self.scale_percentile)
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2**62, (1,)).item())
        generator = torch.Generator().manual_seed(seed)

        if K > 1:
            kspace_k = kspace.repeat_interleave(K, dim=0)
            operator_k = expand_operator(operator, B, K)
            mapping_k = mapping.expand(K)
        else:
            kspace_k, operator_k, mapping_k = kspace, operator, mapping
        ops = self.schedule()
        shape = (B * K, self.prior.channels, *self.prior.image_size)
        x_init = torch.randn(shape, generator=generator, dtype=real_dtype).to(kspace.device)
        condition = self._make_condition(kspace_k, operator_k, mapping_k, generator)
        try:
            x = sample_loop(
                self.prior, ops, x_init, condition, self.stepper(), needs_grad=self.needs_grad and condition is not None,
                generator=generator, progress=self.progress, desc=type(self).__name__,
            )
        except GuidanceDivergedError:
            raise
        except NonFiniteIterateError as err:
            raise GuidanceDivergedError(
                f"{type(self).__name__}: {err} ({self._describe()}); lower the guidance factor / step size."
            ) from err

        images = mapping_k.to_image(x.detach(), dtype=kspace.dtype)
        if self.final_data_consistency:
            images = images + least_squares_correction(operator_k, kspace_k - operator_k.forward(images))
        if not bool(torch.isfinite(images).all()):
            raise GuidanceDivergedError(f"{type(self).__name__} produced NaN/Inf ({self._describe()}).")
        images = images.reshape(B, K, *images.shape[1:])
        mean = images.mean(dim=1)
        spread = images.abs() if self.prior.channels == 1 else images
        std = spread.std(dim=1, unbiased=True).abs() if K > 1 else None
        nfe = count_denoise(ops)
        self.info = ReconInfo(
            nfe=nfe,
            iterations=len(ops),
            wall_time_s=time.perf_counter() - start,
            std=std,
            extra={
                "scale": mapping.scale.reshape(-1).detach().cpu(),
                "seed": seed,
                "num_samples": K,
                "schedule_length": len(ops),
                "grad_nfe": nfe if (self.needs_grad and condition is not None) else 0,
                **self._extra_info(),
            },
        )
        return mean


def unconditional_reference(
    solver: DiffusionSolver, kspace: torch.Tensor, operator: LinearOperator
) -> torch.Tensor:
    """What ``solver`` returns with the conditioning switched off (same seed, schedule, mapping): for tests and for
    the ``g = 0`` reproducibility check. Shape ``(B, 1, H, W)`` complex (mean over the K samples)."""
    real_dtype = torch.float64 if kspace.dtype == torch.complex128 else torch.float32
    B, K = kspace.shape[0], solver.num_samples
    mapping = PriorMapping.from_kspace(
        kspace, operator, solver.prior.channels, solver.phase_mode, solver.scale_percentile
    ).expand(K)
    generator = torch.Generator().manual_seed(solver.seed if solver.seed is not None else 0)
    shape = (B * K, solver.prior.channels, *solver.prior.image_size)
    x_init = torch.randn(shape, generator=generator, dtype=real_dtype).to(kspace.device)
    x = sample_loop(solver.prior, solver.schedule(), x_init, None, solver.stepper(), generator=generator, progress=False)
    return mapping.to_image(x, dtype=kspace.dtype).reshape(B, K, 1, *solver.prior.image_size).mean(dim=1)


__all__ = [
    "DiffusionSolver",
    "GuidanceDivergedError",
    "Resampling",
    "check_count",
    "check_operator_matches_prior",
    "check_prior",
    "expand_operator",
    "least_squares_correction",
    "sampled_count",
    "unconditional_reference",
]
