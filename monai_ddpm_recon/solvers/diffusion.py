"""A diffusion solver is a prior + a sampler + a conditioning rule: ``solver(kspace, operator) -> image``.

:class:`DiffusionSolver` composes an unconditional :class:`~..priors.base.Prior` (Peer, "Conditioning of DDPMs on
Accelerated MRI", ETH 2023, "DDPMs as Priors"), a sampler (:mod:`.samplers`, :mod:`.score_based`: the schedule and the
stepper) and a conditioning rule (:class:`ConditioningRule`: loss guidance, frequency replacement, score data terms,
proximal data consistency). It owns everything that is the same for all of them:

- input checks (k-space vs operator, operator image shape vs ``prior.image_size``, prior channel count);
- the :class:`~.mapping.PriorMapping` between physical units and the prior's [-1, 1] range (scale, smooth phase);
- ``num_samples = K`` posterior samples per slice, drawn as ONE batch of ``B·K`` (the operator expands itself; mean
  returned, pixelwise std in ``info.std``);
- the one :func:`~.sampling.sample_loop`, seeding through a ``torch.Generator``, timing, NFE count, optional final
  data consistency, and NaN/Inf → :class:`GuidanceDivergedError`.

Presets (``LossGuidanceSolver``, ``DiffPIRSolver``, …) only pick a sampler and a rule with defaults.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from ..operators.base import LinearOperator
from ..priors.base import Prior, prior_supports_size
from ..utils.validation import check_int
from .base import ReconInfo
from .baselines import check_kspace
from .mapping import SCALE_PERCENTILE, PhaseMode, PriorMapping
from .samplers import DDIMSampler, Resampling, Sampler
from .sampling import Conditioning, NonFiniteIterateError, Op, Renoise, Stepper, count_denoise, sample_loop


class GuidanceDivergedError(NonFiniteIterateError):
    """The conditioned iterate became NaN/Inf (usually a too-large guidance factor / step size)."""


def check_prior(prior) -> None:
    """Require a diffusion prior (the :class:`~..priors.base.Prior` protocol) with 1 or 2 channels."""
    if not isinstance(prior, Prior):
        raise TypeError(
            f"prior must implement the Prior protocol (eps, x0, score, abar, alphas_cumprod, num_train_timesteps, "
            f"channels, image_size); got {type(prior).__name__}."
        )
    if prior.channels not in (1, 2):
        raise ValueError(
            f"prior.channels={prior.channels!r}; diffusion solvers need a 1-channel (magnitude) or 2-channel "
            "(real, imaginary) prior."
        )


def check_operator_matches_prior(operator, prior) -> tuple[int, int]:
    """The image grid ``(H, W)`` the solver works on: the operator's, if the prior models that size (a patch prior
    models any); else raise and say how to resize."""
    op_shape = tuple(int(s) for s in operator.image_shape)
    prior_shape = tuple(int(s) for s in prior.image_size)
    if not prior_supports_size(prior, op_shape):
        raise ValueError(
            f"operator.image_shape={op_shape} differs from prior.image_size={prior_shape}. The prior only models "
            f"{prior_shape[0]}x{prior_shape[1]} images: crop or zero-pad k-space to {prior_shape} (centre crop of "
            "k-space = low-resolution image; centre crop of ifft2c(k-space) = smaller field of view) and build the "
            "operator (mask, coil maps) on that grid, or use a prior trained at the data's size (or a patch prior, "
            "which models any size)."
        )
    return op_shape


def expand_operator(operator: LinearOperator, batch: int, repeats: int) -> LinearOperator:
    """An operator acting on ``batch·repeats`` images ordered item-major (``b0k0, b0k1, …``), as after
    ``repeat_interleave(repeats, dim=0)``: the operator's own ``expand(repeats)`` where it has one, else a wrapper that
    applies it per sample index."""
    if repeats == 1:
        return operator
    if hasattr(operator, "expand"):
        return operator.expand(repeats)
    return _RepeatedOperator(operator, batch, repeats)


class _RepeatedOperator:
    """Apply a batch-``B`` operator without ``expand`` to ``B·K`` item-major inputs, one sample index ``k`` at a time."""

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
    """``Σ mask`` over the ``(H, W)`` k-space grid per batch item, real ``(B|1, 1, 1, 1)`` (the mask-coverage scaling of
    loss guidance, Peer 2023)."""
    h, w = operator.image_shape
    m = operator.mask
    full = torch.ones((1, 1, h, w), dtype=m.dtype, device=m.device)
    return (m * full).sum(dim=(-2, -1), keepdim=True)


def _inner(a: torch.Tensor, b: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``Re <a, b>`` per batch item, keeping dims (complex tensors are read as real pairs: two kernels, no copies)."""
    if a.is_complex():
        a, b = torch.view_as_real(a), torch.view_as_real(b)
        return (a * b).sum(dim=(*dims, a.ndim - 1), keepdim=True).squeeze(-1)
    return (a * b).sum(dim=dims, keepdim=True)


@dataclass
class CGResult:
    """Solution and convergence of :func:`conjugate_gradient`.

    Attributes:
        x: the solution, shaped like the right-hand side.
        relative_residual: ``‖b − M x‖ / ‖b‖`` per batch item, real ``(N,)``.
        iterations: iterations run.
    """

    x: torch.Tensor
    relative_residual: torch.Tensor
    iterations: int


def conjugate_gradient(
    apply, rhs: torch.Tensor, x0: torch.Tensor | None = None, max_iter: int = 20, tol: float = 1e-6
) -> CGResult:
    """Solve ``M x = b`` for a Hermitian positive semi-definite ``M`` by conjugate gradients, independently per batch item.

    MONAI's ``ConjugateGradient`` takes one global step size for the whole batch (so a slice's result depends on the
    other slices in the batch) and reports no residual; here every item has its own step sizes and stops contributing
    once its residual is below ``tol``.

    Args:
        apply: ``x -> M x`` on ``(N, ...)`` tensors (real or complex).
        rhs: ``b``, ``(N, ...)``.
        x0: warm start (zeros if ``None``).
        max_iter: iterations (>= 1).
        tol: stop when every item's ``‖b − M x‖ <= tol ‖b‖``.
    """
    dims = tuple(range(1, rhs.ndim))
    x = torch.zeros_like(rhs) if x0 is None else x0.clone()
    res = rhs - apply(x) if x0 is not None else rhs.clone()
    p = res.clone()
    rs = _inner(res, res, dims)
    b_norm = _inner(rhs, rhs, dims).sqrt()
    tiny = torch.finfo(rs.dtype).tiny
    it = 0
    for it in range(1, int(max_iter) + 1):
        if bool((rs.sqrt() <= tol * b_norm).all()):
            it -= 1
            break
        mp = apply(p)
        denom = _inner(p, mp, dims)
        alpha = torch.where(denom > 0, rs / denom.clamp_min(tiny), torch.zeros_like(rs))
        x = torch.addcmul(x, alpha, p)
        res = torch.addcmul(res, -alpha, mp)
        rs_new = _inner(res, res, dims)
        p = torch.addcmul(res, torch.where(rs > 0, rs_new / rs.clamp_min(tiny), torch.zeros_like(rs)), p)
        rs = rs_new
    rel = (rs.sqrt() / b_norm.clamp_min(tiny)).reshape(-1)
    return CGResult(x, torch.where(b_norm.reshape(-1) > 0, rel, torch.zeros_like(rel)), it)


def least_squares_correction(
    operator: LinearOperator, residual: torch.Tensor, max_iter: int = 20, tol: float = 1e-6
) -> torch.Tensor:
    """``d = (AᴴA)⁺ Aᴴ r``: the minimum-norm image correction that best explains the k-space residual ``r``
    (conjugate gradients on ``AᴴA d = Aᴴ r`` from 0, which stays in the range of ``AᴴA``).

    For a single-coil masked Fourier operator ``AᴴA`` is a projector and CG is exact after one iteration
    (``d = Fᴴ M r``: frequency replacement). Images ``(N, 1, H, W)`` complex.
    """
    return conjugate_gradient(operator.normal, operator.adjoint(residual), None, max_iter, tol).x


@dataclass(frozen=True)
class Measurement:
    """What a rule is bound to in one call, already expanded to the ``B·K`` sampling batch.

    Attributes:
        prior: the prior.
        stepper: the sampler's stepper of this call (rules that weight their update by the step, e.g. score data
            terms, ask it), the same object the sampling loop uses.
        ops: the schedule of this call.
        kspace: ``(N, C, H, W)`` complex measured k-space (physical units).
        operator: the forward model for the ``N`` iterates.
        mapping: the :class:`~.mapping.PriorMapping` of this call.
        generator: the sampling RNG.
        seed: the seed ``generator`` was started from.
    """

    prior: Prior
    stepper: Stepper
    ops: list[Op]
    kspace: torch.Tensor
    operator: LinearOperator
    mapping: PriorMapping
    generator: torch.Generator | None
    seed: int | None = None


#: CG iterations of the warm start's least-squares estimate (stopping early keeps its noise amplification small; the
#: warm-start numbers in README were measured with 10, other values were not compared)
WARM_START_CG_ITERATIONS = 10


def initial_estimate(m: Measurement) -> torch.Tensor:
    """The clean estimate a warm-started schedule (:func:`~.samplers.warm_start`) forward-diffuses: the least-squares
    image ``argmin ‖A x − y‖²`` by a few CG iterations from zero (the zero-filled image for a single coil), in the prior's
    range and clipped to [-1, 1], ``(N, channels, H, W)`` real."""
    image = conjugate_gradient(m.operator.normal, m.operator.adjoint(m.kspace), None, WARM_START_CG_ITERATIONS).x
    return m.mapping.to_prior(image).clamp(-1, 1)


@runtime_checkable
class ConditioningRule(Protocol):
    """A data-consistency rule: bound to a :class:`Measurement`, it says where it acts in each reverse step."""

    def bind(self, measurement: Measurement) -> Conditioning: ...


class DiffusionSolver:
    """``solver(kspace, operator) -> image (B, 1, H, W) complex``: a prior, a sampler and a conditioning rule.

    Args:
        prior: a :class:`~..priors.base.Prior` (1 channel: magnitude with smooth phase; 2 channels: real/imag).
        sampler: a :class:`~.samplers.Sampler` (default :class:`~.samplers.DDIMSampler` with 100 steps, η = 1).
        rule: a :class:`ConditioningRule`, or ``None`` for unconditional sampling.
        num_samples: posterior samples K per slice, sampled as one batch; the mean is returned and the pixelwise
            standard deviation of the K images (magnitude for 1-channel priors) is stored in ``info.std``.
        phase_mode: :class:`~.mapping.PhaseMode` for 1-channel priors.
        final_data_consistency: after sampling, make the image consistent with the measured k-space
            (``x + A⁺(y − A x)`` by CG, exact replacement for single coil; the image then leaves the prior's phase model).
        seed: seed of the ``torch.Generator`` that draws all noise (``None``: a fresh random seed each call).
        progress: show a progress bar.
        scale_percentile: percentile of the zero-filled magnitude that maps to the prior's +1
            (:meth:`~.mapping.PriorMapping.from_kspace`; default :data:`~.mapping.SCALE_PERCENTILE`, the maximum: a
            lower one maps bright tissue above +1, where x̂0 is clipped).

    After each call ``self.info`` is a :class:`~.base.ReconInfo` with ``nfe`` (network evaluations, each on the whole
    ``B·K`` batch), ``iterations`` (schedule operations), ``wall_time_s``, ``std`` and ``extra`` (``scale``, ``seed``,
    ``schedule_length``, ``grad_nfe`` = evaluations that also back-propagated through the network, and the rule's own
    report, e.g. the CG residuals of proximal data consistency).
    """

    def __init__(
        self,
        prior,
        sampler: Sampler | None = None,
        rule: ConditioningRule | None = None,
        num_samples: int = 1,
        phase_mode: PhaseMode | str = PhaseMode.SMOOTH,
        final_data_consistency: bool = False,
        seed: int | None = 0,
        progress: bool = False,
        scale_percentile: float = SCALE_PERCENTILE,
    ) -> None:
        check_prior(prior)
        self.prior = prior
        self.sampler = DDIMSampler() if sampler is None else sampler
        if not isinstance(self.sampler, Sampler):
            raise TypeError(f"sampler must be a Sampler (schedule, stepper, final_time); got {type(sampler).__name__}.")
        if rule is not None and not isinstance(rule, ConditioningRule):
            raise TypeError(f"rule must be a ConditioningRule (with bind) or None; got {type(rule).__name__}.")
        self.rule = rule
        self.num_samples = check_int("num_samples", num_samples)
        self.phase_mode = PhaseMode.parse(phase_mode, "phase_mode")
        self.final_data_consistency = bool(final_data_consistency)
        if seed is not None and (isinstance(seed, bool) or not float(seed).is_integer()):
            raise ValueError(f"seed must be an integer or None, got {seed!r}.")
        self.seed = None if seed is None else int(seed)
        self.progress = bool(progress)
        if not (isinstance(scale_percentile, (int, float)) and 0 < scale_percentile <= 100):
            raise ValueError(f"scale_percentile must be in (0, 100], got {scale_percentile!r}.")
        self.scale_percentile = float(scale_percentile)
        self.info = ReconInfo()
        self.schedule()  # validate the sampler against the prior now, not at the first call

    # --- what the sampler says for this prior ----------------------------------------------------------------------
    def timesteps(self) -> list[int]:
        """The sampler's reverse-process timesteps (descending), before resampling."""
        return self.sampler.timesteps(self.prior)

    def schedule(self) -> list[Op]:
        """The full list of schedule operations (see :mod:`.sampling`)."""
        return self.sampler.schedule(self.prior)

    def stepper(self):
        return self.sampler.stepper(self.prior)

    def describe(self) -> str:
        """Sampler and rule parameters, for error messages and logs."""
        parts = [getattr(self.sampler, "describe", lambda: type(self.sampler).__name__)()]
        if self.rule is not None:
            parts.append(getattr(self.rule, "describe", lambda: type(self.rule).__name__)())
        return ", ".join(parts)

    # --- call ------------------------------------------------------------------------------------------------
    def _prepare(self, kspace: torch.Tensor, operator: LinearOperator) -> tuple[Measurement, torch.Tensor, PriorMapping]:
        """Checks, mapping, RNG, ``B·K`` expansion and the initial noise of one call."""
        check_kspace(kspace, operator)
        image_shape = check_operator_matches_prior(operator, self.prior)
        real_dtype = torch.float64 if kspace.dtype == torch.complex128 else torch.float32
        B, K = kspace.shape[0], self.num_samples
        mapping = PriorMapping.from_kspace(kspace, operator, self.prior.channels, self.phase_mode, self.scale_percentile)
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2**62, (1,)).item())
        generator = torch.Generator().manual_seed(seed)
        measurement = Measurement(
            self.prior, self.stepper(), self.schedule(), kspace.repeat_interleave(K, dim=0) if K > 1 else kspace,
            expand_operator(operator, B, K), mapping.expand(K) if K > 1 else mapping, generator, seed,
        )
        shape = (B * K, self.prior.channels, *image_shape)
        x_init = torch.randn(shape, generator=generator, dtype=real_dtype).to(kspace.device)
        first = measurement.ops[0] if measurement.ops else None
        if isinstance(first, Renoise) and first.t_from < 0:  # a warm-started schedule begins from a clean estimate
            x_init = initial_estimate(measurement).to(real_dtype)
        return measurement, x_init, mapping

    def __call__(self, kspace: torch.Tensor, operator: LinearOperator) -> torch.Tensor:
        """Reconstruct ``(B, 1, H, W)`` complex images from ``kspace`` ``(B, C, H, W)`` complex."""
        start = time.perf_counter()
        m, x_init, mapping = self._prepare(kspace, operator)
        B, K = kspace.shape[0], self.num_samples
        condition = self.rule.bind(m) if self.rule is not None else None
        try:
            x = sample_loop(
                self.prior, m.ops, x_init, condition, m.stepper, generator=m.generator, progress=self.progress,
                desc=type(self).__name__,
            )
        except GuidanceDivergedError:
            raise
        except NonFiniteIterateError as err:
            raise GuidanceDivergedError(
                f"{type(self).__name__}: {err} ({self.describe()}); lower the guidance factor / step size."
            ) from err

        final_t = self.sampler.final_time(self.prior)
        if final_t >= 0:  # the schedule stops at a noise level: report the signal estimate (VE coordinates)
            x = x / self.prior.abar(final_t, x).sqrt()
        images = m.mapping.to_image(x.detach(), dtype=kspace.dtype)
        if self.final_data_consistency:
            images = images + least_squares_correction(m.operator, m.kspace - m.operator.forward(images))
        if not bool(torch.isfinite(images).all()):
            raise GuidanceDivergedError(f"{type(self).__name__} produced NaN/Inf ({self.describe()}).")
        images = images.reshape(B, K, *images.shape[1:])
        mean = images.mean(dim=1)
        spread = images.abs() if self.prior.channels == 1 else images
        std = spread.std(dim=1, unbiased=True).abs() if K > 1 else None
        nfe = count_denoise(m.ops)
        grad = bool(condition is not None and condition.needs_grad)
        self.info = ReconInfo(
            nfe=nfe,
            iterations=len(m.ops),
            wall_time_s=time.perf_counter() - start,
            std=std,
            extra={
                "scale": mapping.scale.reshape(-1).detach().cpu(),
                "seed": m.seed,
                "num_samples": K,
                "schedule_length": len(m.ops),
                "grad_nfe": nfe if grad else 0,
                **(self.rule.report() if self.rule is not None and hasattr(self.rule, "report") else {}),
            },
        )
        return mean


def unconditional_reference(solver: DiffusionSolver, kspace: torch.Tensor, operator: LinearOperator) -> torch.Tensor:
    """What ``solver`` returns with the conditioning switched off (same seed, schedule, mapping, no final data
    consistency): for tests and for the ``g = 0`` reproducibility check. ``(B, 1, H, W)`` complex (mean over K samples)."""
    plain = DiffusionSolver(
        solver.prior, solver.sampler, None, solver.num_samples, solver.phase_mode, False,
        solver.seed if solver.seed is not None else 0, False, solver.scale_percentile,
    )
    return plain(kspace, operator)


__all__ = [
    "CGResult",
    "ConditioningRule",
    "DiffusionSolver",
    "GuidanceDivergedError",
    "Measurement",
    "Resampling",
    "check_operator_matches_prior",
    "check_prior",
    "conjugate_gradient",
    "expand_operator",
    "initial_estimate",
    "least_squares_correction",
    "sampled_count",
    "unconditional_reference",
]
