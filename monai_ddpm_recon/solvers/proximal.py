"""Proximal data consistency on the Tweedie estimate (DDS, DiffPIR), and its two presets.

At every reverse step the clean-image estimate x̂0 is replaced by the solution of a regularised least-squares problem
before the sampler re-noises it:

    v̂ = argmin_v ‖A u(v) − y_n‖² + ρ_t ‖v − v̂0‖²,

solved by a few conjugate-gradient iterations warm-started at ``v̂0`` (the Krylov-subspace view of DDS). Units are the
:class:`~.mapping.PriorMapping`'s normalised image: ``y_n = y / scale``, and for a magnitude prior ``v = (x + 1)/2``
real with ``u(v) = v · φ`` (φ the smooth phase: the solve stays on the prior's real-along-φ manifold), for a
real/imaginary prior ``v = u = x_re + i x_im`` complex. The corrected ``x̂0`` goes to the sampler's stepper.

The weight ρ_t (:class:`ProximalWeight`):

- ``constant``: ``ρ_t = rho`` (DDS, Chung, Lee & Ye, ICLR 2024: ``γ = 1/ρ``, a few CG steps, DDS re-noising);
- ``diffpir``: ``ρ_t = λ σ_y² / σ̄_t²`` (DiffPIR, Zhu et al., CVPR 2023), ``σ̄_t = sqrt(1 − ᾱ_t)/sqrt(ᾱ_t)`` the
  noise std of the iterate in the same normalised image units and ``σ_y`` the k-space noise std there: data dominate at
  high noise, the prior at low noise. With noisy k-space ``σ_y`` should follow the noise level (``sigma_y="auto"``
  estimates it per slice, so a λ tuned at one SNR carries over better: ``benchmarks/results/noise_level.md``); for
  noiseless data it is a regularisation knob.

References:
    Chung, Lee, Ye, "Decomposed Diffusion Sampler for Accelerating Large-Scale Inverse Problems", ICLR 2024.
    Zhu et al., "Denoising Diffusion Models for Plug-and-Play Image Restoration", CVPR Workshops 2023.
    Chung, Sim, Ye, "Come-Closer-Diffuse-Faster: Accelerating Conditional Diffusion Models for Inverse Problems
    through Stochastic Contraction", CVPR 2022 (warm start).
    Hestenes & Stiefel, "Methods of conjugate gradients for solving linear systems", 1952.
"""

from __future__ import annotations

import torch

from ..operators.noise import estimate_noise_std
from ..utils.enums import StrEnum
from ..utils.validation import check_int, check_positive
from .diffusion import DiffusionSolver, Measurement, conjugate_gradient
from .mapping import SCALE_PERCENTILE, PhaseMode
from .samplers import DDSSampler, DiffPIRSampler, Spacing
from .sampling import Conditioning, StepContext
from .vp_ve import abar_at


#: ``sigma_y`` value that estimates the noise level from the measured k-space
SIGMA_Y_AUTO = "auto"


class ProximalWeight(StrEnum):
    """How the proximal weight ρ_t depends on the step (see the module docstring)."""

    CONSTANT = "constant"
    DIFFPIR = "diffpir"


class ProximalSpace(StrEnum):
    """Where a magnitude prior's proximal problem is solved.

    - ``prior``: over the prior's manifold, ``u = v · φ`` with real ``v`` (the real-along-φ constraint enters the
      least-squares fit);
    - ``image``: over the complex image ``u`` without constraint, then projected onto the manifold
      (``v = Re(conj(φ) u)``). Better conditioned when ρ is small; an error in the estimated phase φ is not fitted.

    - ``auto`` (default): ``prior`` when the phase is known exactly (``phase_mode="none"``: a real image), ``image``
      when it is estimated. Measured on the tuning slices (R = 8, 8 coils, 50 NFE): with a smooth phase, ``prior``
      20.0 dB vs ``image`` 25.1 dB (fitting the data exactly along a slightly wrong phase amplifies the mismatch);
      phase-free with ``phase_mode="none"``, ``prior`` 25.8 dB vs ``image`` 25.3 dB.

    For 2-channel priors all are the same complex problem.
    """

    AUTO = "auto"
    PRIOR = "prior"
    IMAGE = "image"


class ProximalDataConsistency:
    """Conditioning rule: x̂0 ← argmin ‖A u − y‖² + ρ_t ‖v − v̂0‖² by warm-started CG (see the module docstring).

    Args:
        weight: :class:`ProximalWeight`.
        rho: ρ > 0 of the ``constant`` weight.
        lam: λ > 0 of the ``diffpir`` weight.
        sigma_y: σ_y > 0 of the ``diffpir`` weight (k-space noise std in normalised units), or ``"auto"``: the noise
            std estimated from the measured k-space itself (:func:`~..operators.noise.estimate_noise_std`, divided
            by the mapping's scale), per slice.
        cg_iterations: CG iterations per step (>= 1).
        cg_tol: relative residual at which CG stops early.
        clip_x0: clip the Tweedie estimate to [-1, 1] before the solve.
        space: :class:`ProximalSpace` of a magnitude prior's problem.

    After a call :meth:`report` gives the largest relative CG residual of the run (``cg_residual_max``) and that of the
    last step (``cg_residual_last``), so a solve that stopped short is visible in ``solver.info.extra``.

    Raises:
        ValueError: ρ, λ or σ_y <= 0 (σ_y not ``"auto"``), fewer than 1 CG iteration, an unknown weight.
    """

    def __init__(
        self,
        weight: ProximalWeight | str = ProximalWeight.DIFFPIR,
        rho: float = 0.05,
        lam: float = 1.0,
        sigma_y: float | str = 0.01,
        cg_iterations: int = 5,
        cg_tol: float = 1e-5,
        clip_x0: bool = True,
        space: ProximalSpace | str = ProximalSpace.AUTO,
    ) -> None:
        self.weight = ProximalWeight.parse(weight, "weight")
        self.space = ProximalSpace.parse(space, "space")
        self.rho = check_positive("rho", rho)
        self.lam = check_positive("lam", lam)
        if isinstance(sigma_y, str) and sigma_y != SIGMA_Y_AUTO:
            raise ValueError(f"sigma_y must be a number > 0 or {SIGMA_Y_AUTO!r}, got {sigma_y!r}.")
        self.sigma_y = sigma_y if sigma_y == SIGMA_Y_AUTO else check_positive("sigma_y", sigma_y)
        self.cg_iterations = check_int("cg_iterations", cg_iterations)
        self.cg_tol = check_positive("cg_tol", cg_tol)
        self.clip_x0 = bool(clip_x0)
        self._residuals: list[float] = []
        self._noise: torch.Tensor | None = None

    def describe(self) -> str:
        w = f"rho={self.rho:g}" if self.weight == ProximalWeight.CONSTANT else f"lam={self.lam:g}, sigma_y={self.sigma_y}"
        return f"proximal({self.weight.value}, {w}, cg_iterations={self.cg_iterations}, space={self.space.value})"

    def report(self) -> dict:
        r = self._residuals
        return {
            "proximal_weight": self.weight.value,
            **({"sigma_y": self._noise.reshape(-1).cpu()} if self._noise is not None else {}),
            "cg_iterations": self.cg_iterations,
            "cg_residual_max": max(r) if r else None,
            "cg_residual_last": r[-1] if r else None,
        }

    def rho_at(self, m: Measurement, t: int, like: torch.Tensor) -> torch.Tensor:
        """ρ_t as ``(1, 1, 1, 1)`` (dtype/device of ``like``)."""
        if self.weight == ProximalWeight.CONSTANT:
            return torch.full((1, 1, 1, 1), self.rho, dtype=like.dtype, device=like.device)
        a = abar_at(m.prior, t, like)
        sigma_bar = ((1 - a) / a).sqrt() * (0.5 if m.prior.channels == 1 else 1.0)  # in normalised image units
        sigma_y = self.noise_level(m).to(like.dtype)
        return self.lam * sigma_y**2 / sigma_bar.clamp_min(torch.finfo(like.dtype).tiny) ** 2

    def noise_level(self, m: Measurement) -> torch.Tensor:
        """σ_y in normalised units, ``(N|1, 1, 1, 1)`` real: the fixed value, or the estimate per slice for ``"auto"``."""
        if self.sigma_y != SIGMA_Y_AUTO:
            return torch.full((1, 1, 1, 1), float(self.sigma_y), dtype=torch.float64)
        if self._noise is None:  # once per bound measurement
            sd = estimate_noise_std(m.kspace, m.operator.mask).to(torch.float64)
            self._noise = (sd / m.mapping.scale.reshape(-1).to(torch.float64)).reshape(-1, 1, 1, 1)
        return self._noise

    def bind(self, m: Measurement) -> Conditioning:
        self._residuals = []
        self._noise = None
        operator, mapping = m.operator, m.mapping
        y_n = m.kspace / mapping.scale.to(m.kspace.real.dtype)
        magnitude = m.prior.channels == 1
        phase = mapping.phase.to(m.kspace.dtype) if (magnitude and mapping.phase is not None) else None

        def lift(v: torch.Tensor) -> torch.Tensor:  # normalised image u(v)
            u = v.to(m.kspace.dtype)
            return u * phase if phase is not None else u

        def lower(w: torch.Tensor) -> torch.Tensor:  # adjoint of lift in the real inner product
            return (w * phase.conj() if phase is not None else w).real if magnitude else w

        constrained = magnitude and (
            self.space == ProximalSpace.PRIOR or (self.space == ProximalSpace.AUTO and mapping.phase is None)
        )
        project = magnitude and not constrained  # solved over the complex image, then projected onto the manifold
        if not constrained:  # solve over the complex image; a magnitude prior projects the result afterwards
            solve_lift, solve_lower = (lambda u: u), (lambda w: w)
        else:
            solve_lift, solve_lower = lift, lower
        rhs_data = solve_lower(operator.adjoint(y_n))

        def on_x0(ctx: StepContext) -> torch.Tensor:
            x0 = ctx.x0.detach()
            if self.clip_x0:
                x0 = x0.clamp(-1, 1)
            v0 = (x0 + 1) / 2 if magnitude else torch.complex(x0[:, :1], x0[:, 1:2]).to(m.kspace.dtype)
            rho = self.rho_at(m, ctx.t, v0.real if v0.is_complex() else v0)
            start = lift(v0) if project else v0

            def normal(v: torch.Tensor) -> torch.Tensor:
                return torch.addcmul(solve_lower(operator.normal(solve_lift(v))), rho.to(v.real.dtype), v)

            sol = conjugate_gradient(normal, rhs_data + rho * start, start, self.cg_iterations, self.cg_tol)
            self._residuals.append(float(sol.relative_residual.max()))
            v = lower(sol.x) if project else sol.x
            out = 2 * v - 1 if magnitude else torch.cat([v.real, v.imag], dim=1)
            return out.to(x0.dtype)

        return Conditioning(on_x0=on_x0)


class DecomposedDiffusionSolver(DiffusionSolver):
    """Preset DDS (Chung, Lee & Ye, ICLR 2024): :class:`ProximalDataConsistency` with a constant weight and a few CG
    steps on the DDS sampler (:class:`~.samplers.DDSSampler`: re-noising with a fraction η of fresh noise and the
    network's ε, η = 0.85 as in the authors' code), and a final data-consistency step.

    Defaults changed after the peer benchmark (``benchmarks/results/peer_deepinv/``): the preset used Song et al.'s
    DDIM η = 0.15 (a nearly deterministic step that keeps ~99 % of the network's ε, not the paper's η) and returned the
    clipped x̂0 without a final data-consistency step; it fell below zero-filled on some slices at R = 8 and 12.

    Args:
        prior: diffusion prior (1 or 2 channels).
        rho: constant proximal weight ρ > 0 (DDS's ``1/γ``).
        cg_iterations: CG iterations per step.
        num_steps: network evaluations.
        eta: DDS's η in [0, 1] (fresh-noise fraction, :class:`~.samplers.DDSSampler`).
        final_data_consistency: ``x + A⁺(y − A x)`` after sampling (on by default: the partial CG solves leave the
            sample slightly off the data, +0.1–0.3 dB on noiseless data). It fits noise on the sampled entries: with
            noisy k-space pass ``False`` (measured at 30 / 20 dB SNR: −0.18 / −2.29 dB,
            ``benchmarks/results/noise_fit.md``).
        clip_x0: clip x̂0 in the rule and the stepper.
        t_start: warm start (:class:`~.samplers.DiffPIRSampler`): begin at this timestep from the least-squares image
            forward-diffused to it; ``None`` (default) starts from pure noise.
        Other arguments: see :class:`~.diffusion.DiffusionSolver`.
    """

    def __init__(self, prior, rho: float = 0.05, cg_iterations: int = 5, num_steps: int = 50, eta: float = 0.85,
                 num_samples: int = 1, phase_mode: PhaseMode | str = PhaseMode.SMOOTH,
                 final_data_consistency: bool = True, clip_x0: bool = True, seed: int | None = 0,
                 progress: bool = False, scale_percentile: float = SCALE_PERCENTILE, t_start: int | None = None) -> None:
        super().__init__(
            prior, DDSSampler(num_steps, eta, clip_x0=clip_x0, t_start=t_start),
            ProximalDataConsistency(ProximalWeight.CONSTANT, rho=rho, cg_iterations=cg_iterations, clip_x0=clip_x0),
            num_samples, phase_mode, final_data_consistency, seed, progress, scale_percentile,
        )


class DiffPIRSolver(DiffusionSolver):
    """Preset DiffPIR (Zhu et al., CVPR 2023): :class:`ProximalDataConsistency` with ``ρ_t = λ σ_y²/σ̄_t²`` on a
    :class:`~.samplers.DiffPIRSampler` with ζ re-noising.

    Args:
        prior: diffusion prior (1 or 2 channels).
        lam: λ > 0.
        sigma_y: σ_y > 0, k-space noise std in normalised units, or ``"auto"`` (estimated from the k-space,
            :class:`ProximalDataConsistency`).
        zeta: ζ in [0, 1].
        cg_iterations: CG iterations per step (CG also stops at a relative residual of 1e-5). On noiseless 1 mm
            data 30 ends most solves early: 100 gained +1.17 / +0.87 dB at R = 4 / 8 with 8 coils and the patch prior
            (``benchmarks/results/patch_prior/cg100``) at about twice the time; the default has not been re-tuned.
        num_steps: network evaluations.
        clip_x0: clip x̂0 in the rule and the stepper.
        spacing: timestep :class:`~.samplers.Spacing` (``quadratic`` default).
        space: :class:`ProximalSpace` of the proximal problem for magnitude priors.
        t_start: warm start (:class:`~.samplers.DiffPIRSampler`): begin at this timestep from the least-squares image
            forward-diffused to it (Chung, Sim & Ye, CVPR 2022), so every step is spent at the noise levels where the
            data leave the image undetermined; ``None`` starts from pure noise at ``T - 1``.
        Other arguments: see :class:`~.diffusion.DiffusionSolver`.
    """

    def __init__(self, prior, lam: float = 0.01, sigma_y: float | str = 0.01, zeta: float = 1.0, cg_iterations: int = 30,
                 num_steps: int = 50, num_samples: int = 1, phase_mode: PhaseMode | str = PhaseMode.SMOOTH,
                 final_data_consistency: bool = False, clip_x0: bool = True, seed: int | None = 0,
                 progress: bool = False, scale_percentile: float = SCALE_PERCENTILE, spacing: Spacing | str = Spacing.QUADRATIC,
                 space: ProximalSpace | str = ProximalSpace.AUTO, t_start: int | None = None) -> None:
        super().__init__(
            prior, DiffPIRSampler(num_steps, zeta, clip_x0, spacing, t_start),
            ProximalDataConsistency(ProximalWeight.DIFFPIR, lam=lam, sigma_y=sigma_y, cg_iterations=cg_iterations,
                                    clip_x0=clip_x0, space=space),
            num_samples, phase_mode, final_data_consistency, seed, progress, scale_percentile,
        )


__all__ = ["DecomposedDiffusionSolver", "DiffPIRSolver", "ProximalDataConsistency", "ProximalSpace", "ProximalWeight"]
