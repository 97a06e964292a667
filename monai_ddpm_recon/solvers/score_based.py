"""Score-based samplers on the DDPM prior: guided annealed Langevin dynamics and guided SBIM with a Langevin corrector.

After Dimos, "Compressed Sensing MRI using Score-based Implicit Model" (NTUA thesis, 2022, slides, 17–19, 55, 63–69). Both samplers work in VE coordinates on the VP prior through :mod:`.vp_ve`
(``x^VE = x^VP / sqrt(ᾱ_t)``, ``σ_t = sqrt(1/ᾱ_t - 1)``, ``s(x^VE, σ_t) = -ε(sqrt(ᾱ_t) x^VE, t) / σ_t``) and run on the
shared :func:`~.sampling.sample_loop`, whose iterate stays in VP coordinates; a :class:`~.sampling.Denoise` op
``(t, t_prev)`` is one network evaluation at level ``t`` whose result is expressed at ``t_prev`` (``t_prev == t`` is a
corrector step that stays on its level, ``t_prev = -1`` the clean image, where VE and VP coincide).

**Guided annealed Langevin** (Song & Ermon, 2019; Jalal et al., "Robust Compressed Sensing MRI with Deep Generative
Priors", NeurIPS 2021), for noise levels ``σ_1 > … > σ_L`` and ``M`` steps per level::

    x ← x + (α_i/2) (s(x, σ_i) + g(x, σ_i)) + sqrt(α_i) z,   α_i = ε σ_i² / σ_L²,   z ~ N(0, I).

**Guided SBIM with Langevin corrector** (slide 69), over timesteps ``t_N > … > t_0``::

    x_{t-1} ← x_t + c_t (σ_t - σ_{t-1}) (s(x_t, σ_t) + g(x_t, σ_t))          (predictor)
    M times: x_{t-1} ← x_{t-1} + (α/2)(s(x_{t-1}, σ_{t-1}) + g) + sqrt(α) z   (corrector, α = ε σ_{t-1}² / σ_L²)
    return x_0 + σ_0² s(x_0, σ_0)                                            (final denoising step, unguided)

Corrections to the slides' algebra (documented, tested):

1. *Predictor factor.* DDIM with η = 0 written in VE coordinates is exactly
   ``x_{t-1} = x_0̂ + σ_{t-1} ε = x_t - (σ_t - σ_{t-1}) ε = x_t + σ_t (σ_t - σ_{t-1}) s^VE(x_t, σ_t)``, so the factor
   in front of the VE score is ``c_t = σ_t``. The slides' ``σ_t / sqrt(1 + σ_t²)`` is right only if ``s_θ`` is the
   *VP* score ``-ε/sqrt(1-ᾱ_t) = sqrt(1 + σ_t²) s^VE`` (slide 63 substitutes ``ε = -sqrt(1-ᾱ_t) s_θ``, slide 64 then
   feeds the network the VE input): with a VE score network, as on the slides, it shrinks every step by
   ``sqrt(1 + σ_t²)`` (×157 at the first step of a linear 1000-step schedule). The middle line of slide 65 also drops
   a ``sqrt(·)`` (``σ_{t-1} σ_t²`` should read ``σ_{t-1} σ_t``); the slide's last line follows from the correct one.
   ``predictor="ddim"`` (default) uses ``c_t = σ_t``; ``predictor="slides"`` keeps the slides' factor literally.
2. *Corrector step.* Slide 69 line 4 sets ``α = ε σ_t² / σ_L²`` but the corrector runs at level ``t-1`` (its score
   is ``s(x_{t-1}, t-1)``); annealed Langevin's rule ``α_i ∝ σ_i²`` uses the level's own σ, so we use ``σ_{t-1}``.
3. *Start.* ``x_T ~ N(0, I)`` holds in VP coordinates; in VE coordinates the start is ``N(0, (1 + σ_T²) I)``.
4. *Data term in real coordinates.* The prior's score is a gradient with respect to the real image channels, so the
   data term must be too: for ``y = A u + w``, ``w ~ CN(0, σ_y² I)``, ``∇_x log p(y|x) = (2/σ_y²) Jᵀ Aᴴ(y - A u(x))``
   (``Jᵀ`` the real adjoint of ``J = ∂u/∂x``). The slides' ``Aᴴ(y - Ax)/σ_y²`` is the Wirtinger derivative ``∂/∂x̄``,
   half the real gradient. With the real gradient the guided drift vanishes exactly at the posterior mean and the
   samplers target the exact posterior (tested on the Gaussian prior).

**Data term** ``g`` (:class:`DataGradient`), computed through :class:`~.mapping.PriorMapping` in normalised units:
k-space is divided by the mapping's ``scale`` (``y_n = y / scale``), the prior-range iterate maps to the normalised
complex image ``u(x) = to_image(x) / scale`` (``(x + 1)/2 · phase`` for a magnitude prior, ``x_re + i x_im`` for a
2-channel prior) and ``d(x) = 2 Jᵀ Aᴴ (y_n - A u(x))`` with ``J = ∂u/∂x``; ``σ_y`` is the k-space noise std in these
normalised units (physical noise std / scale).

- ``likelihood``: ``g = d / σ_y²`` (slide 55, exact likelihood score);
- ``annealed`` (default): ``g = d / (σ_y² + κ σ_t²)``, Jalal et al. 2021's annealed measurement noise ``γ_t`` with
  ``γ_t² = κ σ_t²`` the k-space variance that the VE noise of the iterate adds (``κ = E|J z|²`` per pixel: 1/4 for a
  magnitude prior, 2 for a real/imaginary prior; exact for single-coil). Equal to ``likelihood`` once ``σ_t ≪ σ_y``,
  and stable at the large σ where ``likelihood``'s steps ``α_i/σ_y²`` explode;
- ``normalized``: ``g = λ ‖s‖ / ‖d‖ · d`` per batch item (csgm-mri-langevin's rescaling of the data gradient to the
  score's norm, ``λ = data_weight``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..operators.base import LinearOperator
from ..priors.base import DiffusionPrior, Prior
from ..utils.enums import StrEnum
from ..utils.validation import check_int, check_positive
from .diffusion import DiffusionSolver, Measurement
from .mapping import PhaseMode, PriorMapping
from .sampling import Conditioning, Denoise, StepContext, ddim_timesteps, draw_noise
from .vp_ve import abar_at, check_timesteps, geometric_timesteps, sigma_at, ve_score_from_eps


class DataGradient(StrEnum):
    """The data term added to the prior score (see the module docstring)."""

    LIKELIHOOD = "likelihood"
    ANNEALED = "annealed"
    NORMALIZED = "normalized"


class Predictor(StrEnum):
    """SBIM predictor factor in front of the VE score: ``ddim`` (σ_t, exact DDIM η=0) or ``slides`` (σ_t/sqrt(1+σ_t²))."""

    DDIM = "ddim"
    SLIDES = "slides"


class LevelSpacing(StrEnum):
    """How Langevin noise levels are spread: ``linear`` in t (as DDIM's timesteps) or ``geometric`` in σ (NCSN)."""

    LINEAR = "linear"
    GEOMETRIC = "geometric"


def check_epsilon(epsilon: float) -> float:
    return check_positive("epsilon", epsilon)


def check_sigma_y(sigma_y: float) -> float:
    """σ_y > 0; ``inf`` is allowed (data weight 0: unconditional sampling)."""
    v = float(sigma_y)
    if not v > 0:  # also rejects NaN
        raise ValueError(f"sigma_y must be > 0 (the k-space noise std in normalised units; inf = no data term), got {sigma_y!r}.")
    return v


# ---------------------------------------------------------------------------------------------------------------
# steppers (the unconditional part of each update; the data term is added by the conditioning rule)
# ---------------------------------------------------------------------------------------------------------------
class LangevinStepper:
    """One annealed Langevin step at level ``σ_t`` per op ``(t, t_prev)``, result expressed at ``t_prev``:
    ``x^VE ← x^VE + (α/2) s(x^VE, σ_t) + sqrt(α) z`` with ``α = ε σ_t² / σ_L²``.

    Args:
        epsilon: ε > 0.
        sigma_min: σ_L > 0, the smallest noise level of the run.
    """

    def __init__(self, epsilon: float, sigma_min: float) -> None:
        self.epsilon = check_epsilon(epsilon)
        self.sigma_min = check_positive("sigma_min", sigma_min)

    def step_size(self, sigma: torch.Tensor) -> torch.Tensor:
        """α = ε σ² / σ_L²."""
        return self.epsilon * sigma**2 / self.sigma_min**2

    def gradient_coefficient(self, prior: DiffusionPrior, t: int, t_prev: int, like: torch.Tensor) -> torch.Tensor:
        """Factor multiplying the data term in VE coordinates: α/2."""
        return self.step_size(sigma_at(prior, t, like)) / 2

    def __call__(self, prior, x_t, t, t_prev, eps, x0, generator):
        a_t = abar_at(prior, t, x_t)
        sigma = sigma_at(prior, t, x_t)
        alpha = self.step_size(sigma)
        x_ve = x_t / a_t.sqrt() + (alpha / 2) * ve_score_from_eps(eps, sigma) + alpha.sqrt() * draw_noise(x_t, generator)
        return x_ve * abar_at(prior, t_prev, x_t).sqrt()


class SBIMStepper:
    """SBIM predictor / Langevin corrector / final denoising step, told apart by the op:

    - ``t_prev < t`` (``t_prev >= 0``): predictor ``x^VE + c_t (σ_t - σ_{t_prev}) s``, ``c_t`` from ``predictor``;
    - ``t_prev == t``: Langevin corrector at ``σ_t`` (step ``ε σ_t² / σ_L²``; needs ``epsilon`` and ``sigma_min``);
    - ``t_prev == -1``: final denoising step ``x^VE + σ_t² s`` (Tweedie; slide 69 line 8).

    With ``predictor="ddim"`` the predictor and the final step equal :class:`~.sampling.DDIMStepper` (η = 0, no
    clipping) exactly.
    """

    def __init__(
        self, predictor: Predictor | str = Predictor.DDIM, epsilon: float | None = None, sigma_min: float | None = None
    ) -> None:
        self.predictor = Predictor.parse(predictor, "predictor")
        self.corrector = None if epsilon is None else LangevinStepper(epsilon, sigma_min if sigma_min is not None else 1.0)

    def gradient_coefficient(self, prior: DiffusionPrior, t: int, t_prev: int, like: torch.Tensor) -> torch.Tensor:
        """Factor multiplying the data term in VE coordinates (0 for the unguided final denoising step)."""
        if t_prev == t:
            return self._corrector().gradient_coefficient(prior, t, t_prev, like)
        if t_prev < 0:
            return torch.zeros((1, 1, 1, 1), dtype=like.dtype, device=like.device)
        sigma, sigma_prev = sigma_at(prior, t, like), sigma_at(prior, t_prev, like)
        factor = sigma if self.predictor == Predictor.DDIM else sigma / (1 + sigma**2).sqrt()
        return factor * (sigma - sigma_prev)

    def _corrector(self) -> LangevinStepper:
        if self.corrector is None:
            raise ValueError("a corrector step (t_prev == t) needs SBIMStepper(epsilon=..., sigma_min=...).")
        return self.corrector

    def __call__(self, prior, x_t, t, t_prev, eps, x0, generator):
        if t_prev == t:
            return self._corrector()(prior, x_t, t, t_prev, eps, x0, generator)
        if t_prev > t:
            raise ValueError(f"SBIM steps go down in noise; got t={t} -> t_prev={t_prev}.")
        a_t = abar_at(prior, t, x_t)
        sigma = sigma_at(prior, t, x_t)
        score = ve_score_from_eps(eps, sigma)
        if t_prev < 0:
            return x_t / a_t.sqrt() + sigma**2 * score
        x_ve = x_t / a_t.sqrt() + self.gradient_coefficient(prior, t, t_prev, x_t) * score
        return x_ve * abar_at(prior, t_prev, x_t).sqrt()


# ---------------------------------------------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------------------------------------------
def langevin_schedule(timesteps: Sequence[int], steps_per_level: int) -> list[Denoise]:
    """``steps_per_level`` Langevin steps at each level; the last step of a level hands over to the next level
    (``t_prev`` = next timestep, ``-1`` after the last). ``len = L·M`` network evaluations."""
    m = check_int("steps_per_level", steps_per_level, 1)
    times = [int(t) for t in timesteps]
    ops: list[Denoise] = []
    for i, t in enumerate(times):
        nxt = times[i + 1] if i + 1 < len(times) else -1
        ops.extend([Denoise(t, t)] * (m - 1) + [Denoise(t, nxt)])
    return ops


def sbim_schedule(timesteps: Sequence[int], corrector_steps: int = 0, final_denoise: bool = True) -> list[Denoise]:
    """Slide 69: a predictor step ``t_k → t_{k-1}`` followed by ``corrector_steps`` Langevin steps at ``t_{k-1}``, and
    the final denoising step ``t_0 → -1``. ``(N)(1 + M) + 1`` network evaluations for ``N + 1`` timesteps."""
    m = check_int("corrector_steps", corrector_steps, 0)
    times = [int(t) for t in timesteps]
    ops: list[Denoise] = []
    for t, tp in zip(times, times[1:]):
        ops.append(Denoise(t, tp))
        ops.extend([Denoise(tp, tp)] * m)
    if final_denoise:
        ops.append(Denoise(times[-1], -1))
    return ops


# ---------------------------------------------------------------------------------------------------------------
# the data term
# ---------------------------------------------------------------------------------------------------------------
def mapping_jacobian_adjoint(mapping: PriorMapping, w: torch.Tensor) -> torch.Tensor:
    """``Jᵀ w`` for ``u(x) = mapping.to_image(x) / scale`` and complex ``w`` ``(N, 1, H, W)``, in the real inner product
    ``<a, b> = Re Σ conj(a) b``: ``Re(conj(phase) w) / 2`` (1 channel) or ``[Re w, Im w]`` (2 channels)."""
    if mapping.channels == 1:
        aligned = w if mapping.phase is None else w * mapping.phase.conj().to(w.dtype)
        return aligned.real / 2
    return torch.cat([w.real, w.imag], dim=1)


class DataTerm:
    """``d(x) = 2 Jᵀ Aᴴ(y_n - A u(x))`` and the weighted data term ``g`` of :class:`DataGradient`.

    Args:
        operator: the forward model.
        kspace: ``(B, C, H, W)`` complex measured k-space (physical units).
        mapping: the :class:`PriorMapping` of this call.
        mode: :class:`DataGradient`.
        sigma_y: k-space noise std in normalised units (``inf``: no data term).
        data_weight: λ of the ``normalized`` mode.
    """

    def __init__(self, operator: LinearOperator, kspace: torch.Tensor, mapping: PriorMapping,
                 mode: DataGradient | str, sigma_y: float, data_weight: float = 1.0) -> None:
        self.operator = operator
        self.mapping = mapping
        self.y = kspace / mapping.scale.to(kspace.real.dtype)
        self.mode = DataGradient.parse(mode, "data_gradient")
        self.sigma_y = check_sigma_y(sigma_y)
        self.data_weight = check_positive("data_weight", data_weight)
        self.kappa = 0.25 if mapping.channels == 1 else 2.0

    def residual_gradient(self, x_ve: torch.Tensor) -> torch.Tensor:
        """``d(x) = 2 Jᵀ Aᴴ(y_n - A u(x))`` = ``-∇_x ‖y_n - A u(x)‖²``, real like ``x_ve``."""
        u = self.mapping.to_image(x_ve, self.y.dtype) / self.mapping.scale.to(self.y.dtype)
        r = self.y - self.operator.forward(u)
        return 2 * mapping_jacobian_adjoint(self.mapping, self.operator.adjoint(r)).to(x_ve.dtype)

    def __call__(self, x_ve: torch.Tensor, score: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The data term ``g`` at the VE iterate ``x_ve`` (level ``sigma``), given the prior score there."""
        d = self.residual_gradient(x_ve)
        if self.mode == DataGradient.LIKELIHOOD:
            return d / self.sigma_y**2
        if self.mode == DataGradient.ANNEALED:
            return d / (self.sigma_y**2 + self.kappa * sigma**2)
        s_norm = score.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
        d_norm = d.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
        return self.data_weight * s_norm / d_norm.clamp_min(torch.finfo(d.dtype).tiny) * d


class ScoreDataTerm:
    """Conditioning rule of the score-based samplers: adds ``coefficient · g(x_t)`` (in VE coordinates, at the step's
    input ``x_t``, as in slides 55 and 69) to the stepper's unconditional proposal; ``coefficient`` is the sampler's
    stepper's ``gradient_coefficient`` (α/2 for Langevin steps, ``c_t (σ_t − σ_{t'})`` for SBIM predictor steps).

    Args:
        sigma_y: k-space noise std in normalised units (> 0; ``inf`` = unconditional).
        data_gradient: :class:`DataGradient` (``annealed`` default, ``likelihood``, ``normalized``).
        data_weight: λ of ``normalized``.
    """

    def __init__(self, sigma_y: float = 0.01, data_gradient: DataGradient | str = DataGradient.ANNEALED,
                 data_weight: float = 1.0) -> None:
        self.sigma_y = check_sigma_y(sigma_y)
        self.data_gradient = DataGradient.parse(data_gradient, "data_gradient")
        self.data_weight = check_positive("data_weight", data_weight)

    def describe(self) -> str:
        return (f"sigma_y={self.sigma_y:g}, data_gradient={self.data_gradient.value}; reduce epsilon, or use "
                "data_gradient='annealed'/'normalized'")

    def report(self) -> dict:
        return {"data_gradient": self.data_gradient.value, "sigma_y": self.sigma_y}

    def bind(self, m: Measurement) -> Conditioning:
        data = DataTerm(m.operator, m.kspace, m.mapping, self.data_gradient, self.sigma_y, self.data_weight)
        stepper, prior = m.stepper, m.prior
        if data.mode != DataGradient.NORMALIZED and data.sigma_y == float("inf"):
            return Conditioning()

        def rule(ctx: StepContext) -> torch.Tensor:
            coef = stepper.gradient_coefficient(prior, ctx.t, ctx.t_prev, ctx.x_prev)
            if not bool((coef != 0).any()):
                return ctx.x_prev
            x_t = ctx.x_t.detach()
            sigma = sigma_at(prior, ctx.t, x_t)
            x_ve = x_t / abar_at(prior, ctx.t, x_t).sqrt()
            g = data(x_ve, ve_score_from_eps(ctx.eps.detach(), sigma), sigma)
            return ctx.x_prev + abar_at(prior, ctx.t_prev, x_t).sqrt() * coef * g

        return Conditioning(on_proposal=rule)


# ---------------------------------------------------------------------------------------------------------------
# samplers and presets
# ---------------------------------------------------------------------------------------------------------------
def _sigma_min(prior: Prior, levels: list[int]) -> float:
    return float(sigma_at(prior, levels[-1], torch.zeros((), dtype=torch.float64)))


class LangevinSampler:
    """Annealed Langevin dynamics (Song & Ermon, NeurIPS 2019): ``steps_per_level`` steps at each noise level.

    Args:
        num_levels: number of noise levels L (spread over ``[0, T-1]`` by ``level_spacing``); ignored if ``timesteps``.
        steps_per_level: M >= 1.
        epsilon: ε > 0 (see :class:`AnnealedLangevinSolver`).
        level_spacing: :class:`LevelSpacing`.
        timesteps: explicit strictly decreasing noise-level subset (DDPM timesteps).
    """

    def __init__(self, num_levels: int = 50, steps_per_level: int = 3, epsilon: float = 1e-4,
                 level_spacing: LevelSpacing | str = LevelSpacing.GEOMETRIC,
                 timesteps: Sequence[int] | None = None) -> None:
        self.num_levels = check_int("num_levels", num_levels)
        self.steps_per_level = check_int("steps_per_level", steps_per_level)
        self.epsilon = check_epsilon(epsilon)
        self.level_spacing = LevelSpacing.parse(level_spacing, "level_spacing")
        self.explicit = None if timesteps is None else list(timesteps)

    def timesteps(self, prior: Prior) -> list[int]:
        T = prior.num_train_timesteps
        times = self.explicit
        if times is None:
            n = self.num_levels
            times = ddim_timesteps(T, n) if self.level_spacing == LevelSpacing.LINEAR else geometric_timesteps(prior, n)
        return check_timesteps("timesteps", times, T)

    def schedule(self, prior: Prior) -> list[Denoise]:
        return langevin_schedule(self.timesteps(prior), self.steps_per_level)

    def stepper(self, prior: Prior) -> LangevinStepper:
        return LangevinStepper(self.epsilon, _sigma_min(prior, self.timesteps(prior)))

    def final_time(self, prior: Prior) -> int:
        return -1

    def describe(self) -> str:
        return f"Langevin(levels={self.num_levels}, steps_per_level={self.steps_per_level}, epsilon={self.epsilon:g})"


class SBIMSampler:
    """Score-based implicit model (slide 69): predictor steps with optional Langevin corrector and final denoising step.

    Args:
        num_steps: number of noise levels (timesteps spread as DDIM's); ignored if ``timesteps`` is given.
        corrector_steps: M >= 0 Langevin corrector steps after each predictor step.
        epsilon: ε > 0 of the corrector.
        predictor: :class:`Predictor` (``ddim`` default, ``slides`` literal).
        final_denoise: apply the final (unguided) denoising step ``x_0 + σ_0² s(x_0, σ_0)``.
        timesteps: explicit strictly decreasing timesteps ``t_N > … > t_0``.
    """

    def __init__(self, num_steps: int = 50, corrector_steps: int = 0, epsilon: float = 1e-4,
                 predictor: Predictor | str = Predictor.DDIM, final_denoise: bool = True,
                 timesteps: Sequence[int] | None = None) -> None:
        self.num_steps = check_int("num_steps", num_steps)
        self.corrector_steps = check_int("corrector_steps", corrector_steps, 0)
        self.epsilon = check_epsilon(epsilon)
        self.predictor = Predictor.parse(predictor, "predictor")
        self.final_denoise = bool(final_denoise)
        self.explicit = None if timesteps is None else list(timesteps)

    def timesteps(self, prior: Prior) -> list[int]:
        T = prior.num_train_timesteps
        times = check_timesteps("timesteps", self.explicit if self.explicit is not None else ddim_timesteps(T, self.num_steps), T)
        if len(times) < 2 and not self.final_denoise:
            raise ValueError("SBIM needs at least 2 timesteps (num_steps >= 2) when final_denoise=False.")
        return times

    def schedule(self, prior: Prior) -> list[Denoise]:
        return sbim_schedule(self.timesteps(prior), self.corrector_steps, self.final_denoise)

    def stepper(self, prior: Prior) -> SBIMStepper:
        return SBIMStepper(self.predictor, self.epsilon, _sigma_min(prior, self.timesteps(prior)))

    def final_time(self, prior: Prior) -> int:
        return -1 if self.final_denoise else self.timesteps(prior)[-1]

    def describe(self) -> str:
        return (f"SBIM(steps={self.num_steps}, corrector_steps={self.corrector_steps}, epsilon={self.epsilon:g}, "
                f"predictor={self.predictor.value})")


class _ScoreBasedPreset(DiffusionSolver):
    """Report the noise levels and the data term in ``info.extra`` (shared by both presets)."""

    def __call__(self, kspace: torch.Tensor, operator: LinearOperator) -> torch.Tensor:
        image = super().__call__(kspace, operator)
        self.info.extra.update(timesteps=self.timesteps(), epsilon=self.sampler.epsilon)
        return image

    @property
    def epsilon(self) -> float:
        return self.sampler.epsilon


class AnnealedLangevinSolver(_ScoreBasedPreset):
    """Preset: guided annealed Langevin dynamics (Jalal et al., NeurIPS 2021; slides 19 and 55) on a DDPM prior.

    ``x ← x + (α_i/2)(s(x, σ_i) + g(x, σ_i)) + sqrt(α_i) z`` with ``α_i = ε σ_i²/σ_L²``, ``M`` steps per level, in VE
    coordinates via :mod:`.vp_ve`; ``g`` is the data term of :class:`DataGradient` (module docstring). ``L·M`` network
    evaluations. A :class:`LangevinSampler` with the :class:`ScoreDataTerm` rule.

    Args:
        prior: ε-prediction prior (its image size must match the operator).
        num_levels, steps_per_level, level_spacing, timesteps: see :class:`LangevinSampler`.
        epsilon: ε > 0; the step at the smallest level is ε itself. The default 1e-4 is ``σ_0²`` of the linear
            1000-step schedule (``ε/σ_L² = 1``: each step removes half of the excess noise at its level). The chain
            must anneal fast enough: ``(1 - ε/(2σ_L²))^M`` has to beat the level ratio ``σ_i/σ_{i+1}``; too small an ε
            leaves noise in the result (measured with the demo prior, 33 levels × 3 steps, R = 8: ε = 5e-5 diverged
            to -9 dB PSNR, ε = 1e-4 gave 20.2 dB), too large (``ε/σ_L² ≳ 2``) is unstable.
        sigma_y, data_gradient, data_weight: see :class:`ScoreDataTerm`.
        final_data_consistency: make the result consistent with the measured k-space (default ``True``: without it the
            sampler fell below zero-filled on benchmark cases).
        num_samples, phase_mode, seed, progress: see :class:`~.diffusion.DiffusionSolver`.

    Raises:
        ValueError: σ_y <= 0, ε <= 0, an empty noise-level subset, bad counts.
        GuidanceDivergedError: the iterate became NaN/Inf (names the step, its time and ε, σ_y).
    """

    def __init__(self, prior, num_levels: int = 50, steps_per_level: int = 3, epsilon: float = 1e-4,
                 sigma_y: float = 0.01, data_gradient: DataGradient | str = DataGradient.ANNEALED,
                 data_weight: float = 1.0, level_spacing: LevelSpacing | str = LevelSpacing.GEOMETRIC,
                 timesteps: Sequence[int] | None = None, num_samples: int = 1,
                 phase_mode: PhaseMode | str = PhaseMode.SMOOTH, final_data_consistency: bool = True,
                 seed: int | None = 0, progress: bool = True) -> None:
        super().__init__(prior, LangevinSampler(num_levels, steps_per_level, epsilon, level_spacing, timesteps),
                         ScoreDataTerm(sigma_y, data_gradient, data_weight), num_samples, phase_mode,
                         final_data_consistency, seed, progress)


class SBIMSolver(_ScoreBasedPreset):
    """Preset: guided Score-based Implicit Model with optional Langevin corrector and final denoising step (slide 69).

    Predictor ``x_{t-1} = x_t + c_t (σ_t - σ_{t-1})(s(x_t) + g(x_t))`` (``c_t = σ_t`` for ``predictor="ddim"``, the
    exact DDIM η=0 step; ``σ_t/sqrt(1+σ_t²)`` for ``"slides"``, see the module docstring), then ``corrector_steps``
    Langevin steps ``x ← x + (α/2)(s + g) + sqrt(α) z`` at the new level with ``α = ε σ²/σ_L²``, and finally
    ``x_0 + σ_0² s(x_0, σ_0)``. ``N(1 + M) + 1`` network evaluations for ``N + 1`` timesteps. An :class:`SBIMSampler`
    with the :class:`ScoreDataTerm` rule.

    Args:
        prior: ε-prediction prior.
        num_steps, corrector_steps, epsilon, predictor, final_denoise, timesteps: see :class:`SBIMSampler`.
        sigma_y, data_gradient, data_weight: see :class:`ScoreDataTerm`.
        final_data_consistency: as :class:`AnnealedLangevinSolver` (default ``True``).
        num_samples, phase_mode, seed, progress: see :class:`~.diffusion.DiffusionSolver`.

    Raises:
        ValueError: σ_y <= 0, ε <= 0, an empty noise-level subset, bad counts.
        GuidanceDivergedError: the iterate became NaN/Inf (names the step, its time and ε, σ_y).
    """

    def __init__(self, prior, num_steps: int = 50, corrector_steps: int = 0, epsilon: float = 1e-4,
                 sigma_y: float = 0.01, data_gradient: DataGradient | str = DataGradient.ANNEALED,
                 data_weight: float = 1.0, predictor: Predictor | str = Predictor.DDIM, final_denoise: bool = True,
                 timesteps: Sequence[int] | None = None, num_samples: int = 1,
                 phase_mode: PhaseMode | str = PhaseMode.SMOOTH, final_data_consistency: bool = True,
                 seed: int | None = 0, progress: bool = True) -> None:
        super().__init__(prior, SBIMSampler(num_steps, corrector_steps, epsilon, predictor, final_denoise, timesteps),
                         ScoreDataTerm(sigma_y, data_gradient, data_weight), num_samples, phase_mode,
                         final_data_consistency, seed, progress)


__all__ = [
    "AnnealedLangevinSolver",
    "DataGradient",
    "DataTerm",
    "LangevinSampler",
    "LangevinStepper",
    "LevelSpacing",
    "Predictor",
    "SBIMSampler",
    "SBIMSolver",
    "SBIMStepper",
    "ScoreDataTerm",
    "langevin_schedule",
    "mapping_jacobian_adjoint",
    "sbim_schedule",
]
