"""Loss guidance (seed 000 §"DDPMs as Priors"; blog 002 "Diffusion Models for Linear Inverse Problems").

After each prior step the iterate takes a gradient step on the data-consistency loss

    x_{t-1} = x_{t-1}^{prior} − g ∇ L,    L(x) = (1 / Σ M) ‖A(image(x)) / s − y / s‖²,

where ``image(x)`` is :meth:`~.mapping.PriorMapping.to_image` (physical units, smooth phase), ``s`` the mapping's scale
(so the loss lives in normalised units and ``g`` does not depend on the scanner's k-space scale) and ``Σ M`` the number
of sampled k-space locations (seed 000's mask-coverage scaling: one ``g`` transfers across accelerations). Like
classifier guidance (Dhariwal & Nichol, 2021) with ``log p(y|x)`` in place of the classifier.

Where the gradient is taken (:class:`GuidanceGradient`):

- ``x_t`` (seed 000's form): ``∇_{x_t} L(x_t)``, the loss evaluated on the iterate before the prior step;
- ``x_prev``: ``∇ L`` at the prior's proposal ``x_{t-1}`` (a gradient step "after the prior step");
- ``x0``: a gradient step on the Tweedie estimate x̂0 (no back-propagation through the network) carried into the
  DDIM update, ``x_{t-1} ← x_{t-1} − g sqrt(ᾱ_{t-1}) ∇L(x̂0)``: the data pull the clean-image estimate, and the noisy
  iterate only by its signal fraction (the other modes pull a noisy iterate towards noise-free data);
- ``tweedie`` (DPS-like, Chung et al., 2023): ``∇_{x_t} L(x̂0(x_t))`` back-propagated through the network.

The first two cost no backward pass through the network.
"""

from __future__ import annotations

import warnings

import torch

from ..operators.base import LinearOperator
from ..utils.enums import StrEnum
from .diffusion import DiffusionSolver, GuidanceDivergedError, Resampling, sampled_count
from .mapping import PhaseMode, PriorMapping
from .sampling import ConditionFn, StepContext, _abar


class GuidanceGradient(StrEnum):
    """Where loss guidance evaluates its gradient (see the module docstring)."""

    X_T = "x_t"
    X_PREV = "x_prev"
    X0 = "x0"
    TWEEDIE = "tweedie"


def data_loss(
    x: torch.Tensor, kspace: torch.Tensor, operator: LinearOperator, mapping: PriorMapping, coverage: torch.Tensor
) -> torch.Tensor:
    """Sum over the batch of ``(1/ΣM_b) ‖(A image(x_b) − y_b) / s_b‖²`` (each item's gradient is its own loss's).

    Args:
        x: ``(N, channels, H, W)`` real, prior range.
        kspace: ``(N, C, H, W)`` complex.
        coverage: ``Σ M`` per item, ``(N|1, 1, 1, 1)``.
    """
    residual = (operator.forward(mapping.to_image(x, dtype=kspace.dtype)) - kspace) / mapping.scale.to(kspace.real.dtype)
    per_item = (residual.abs() ** 2).sum(dim=(1, 2, 3), keepdim=True) / coverage.to(residual.real.dtype)
    return per_item.sum()


#: |x| (prior units, where data live in [-1, 1]) beyond which a guided iterate is declared diverged.
RUNAWAY_BOUND = 1e4


def stability_limit(coverage: torch.Tensor, channels: int) -> float:
    """Largest stable ``g`` for a gradient step on the iterate: ``4·ΣM`` (1 channel: image = s/2·(x+1)·φ) or ``ΣM``
    (2 channels: image = s·(x_re + i x_im)), for operators with ``‖AᴴA‖ ≤ 1`` (binary masks, ``Σ|S|² = 1``).
    The smallest over the batch."""
    return float(coverage.min()) * (4.0 if channels == 1 else 1.0)


class LossGuidanceSolver(DiffusionSolver):
    """Loss-guided DDPM/DDIM sampling (seed 000): a gradient step on the mask-normalised k-space MSE after every prior step.

    Args:
        prior: diffusion prior (1 or 2 channels).
        guidance: guidance factor ``g > 0`` (``0`` is accepted and means "unconditional": the rule runs but does not
            move the iterate, which reproduces unconditional sampling exactly). Per step; with the mask-coverage
            scaling a step ``g`` moves the sampled frequencies of a single-coil iterate by the fraction ``g / (2ΣM)``
            of their residual, so ``g`` must stay below ``4ΣM`` (stable) and ``g ≈ 2ΣM`` is one-step consistency.
        gradient: :class:`GuidanceGradient` (``x0`` (default), ``x_t`` (seed 000), ``x_prev`` or ``tweedie``).
        Other arguments: see :class:`~.diffusion.DiffusionSolver`.

    Raises:
        ValueError: negative / non-finite ``g``, bad schedule parameters.
        GuidanceDivergedError: the iterate became NaN/Inf (message names the step and ``g``).
    """

    def __init__(
        self,
        prior,
        guidance: float = 1000.0,
        gradient: GuidanceGradient | str = GuidanceGradient.X0,
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
        try:
            g = float(guidance)
        except (TypeError, ValueError):
            raise ValueError(f"guidance must be a finite number >= 0, got {guidance!r}.") from None
        if not torch.isfinite(torch.tensor(g)) or g < 0:
            raise ValueError(
                f"guidance must be a finite number >= 0 (g > 0 guides; g = 0 samples unconditionally), got {guidance!r}."
            )
        self.guidance = g
        self.gradient = GuidanceGradient.parse(gradient, "gradient")
        self.needs_grad = self.gradient == GuidanceGradient.TWEEDIE
        super().__init__(
            prior, num_steps, eta, resampling, jump_length, resamplings, num_samples, phase_mode,
            final_data_consistency, clip_x0, seed, progress, scale_percentile,
        )

    def _describe(self) -> str:
        return f"g={self.guidance:g}, gradient={self.gradient.value}"

    def _extra_info(self) -> dict:
        return {"guidance": self.guidance, "guidance_stability_limit": getattr(self, "_limit", None)}

    def _make_condition(self, kspace, operator, mapping, generator) -> ConditionFn:
        coverage = sampled_count(operator).to(kspace.device)
        g = self.guidance
        gradient = self.gradient
        clip = self.clip_x0
        limit = stability_limit(coverage, self.prior.channels)
        self._limit = limit
        if g >= limit:
            warnings.warn(
                f"guidance g={g:g} is at or above the stability limit {limit:g} (4·ΣM for magnitude priors, ΣM for "
                "real/imaginary priors, ΣM = sampled k-space locations): the guided iterate will likely diverge.",
                RuntimeWarning,
                stacklevel=3,
            )

        def rule(ctx: StepContext) -> torch.Tensor:
            if gradient == GuidanceGradient.TWEEDIE:
                loss = data_loss(ctx.x0, kspace, operator, mapping, coverage)
                (grad,) = torch.autograd.grad(loss, ctx.x_t)
            else:
                if gradient == GuidanceGradient.X0:
                    at = ctx.x0.detach().clamp(-1, 1) if clip else ctx.x0.detach()
                else:
                    at = ctx.x_t if gradient == GuidanceGradient.X_T else ctx.x_prev
                with torch.enable_grad():
                    leaf = at.detach().requires_grad_(True)
                    (grad,) = torch.autograd.grad(data_loss(leaf, kspace, operator, mapping, coverage), leaf)
                if gradient == GuidanceGradient.X0:
                    grad = grad * _abar(self.prior, ctx.t_prev, grad).sqrt()
            x_new = ctx.x_prev - g * grad.detach()
            if not bool((x_new.abs() <= RUNAWAY_BOUND).all()):  # also catches NaN/Inf
                raise GuidanceDivergedError(
                    f"LossGuidanceSolver diverged at step {ctx.index} (t={ctx.t} -> {ctx.t_prev}) with g={g:g}: the "
                    f"iterate left the prior's [-1, 1] range by more than {RUNAWAY_BOUND:g} (stability limit for a "
                    f"gradient step: g < {limit:g}); lower g."
                )
            return x_new

        return rule


__all__ = ["GuidanceGradient", "LossGuidanceSolver", "data_loss"]
