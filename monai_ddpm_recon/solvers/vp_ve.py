"""The VP ↔ VE bridge: run score-based (variance-exploding) samplers on a DDPM (variance-preserving) ε-prior.

After Kawar et al., "Denoising Diffusion Restoration Models", 2022, App. B. A DDPM perturbs
``x_t^VP = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) z``; a score model (NCSN, Song & Ermon 2019) perturbs
``x^VE = x_0 + σ z``. Dividing the VP sample by ``sqrt(ᾱ_t)`` gives a VE sample:

    x_t^VE = x_t^VP / sqrt(ᾱ_t),    σ_t = sqrt(1/ᾱ_t - 1),    ᾱ_t = 1 / (1 + σ_t²).

**The VE score from the ε-network.** Let ``p_t^VP`` be the density of ``x_t^VP`` and ``q_σ`` that of ``x^VE`` with
``σ = σ_t``. Since ``x^VE = x^VP / sqrt(ᾱ_t)`` (a change of variables with constant Jacobian),
``q_σ(x) = ᾱ_t^{d/2} p_t^VP(sqrt(ᾱ_t) x)``, so

    ∇_x log q_σ(x) = sqrt(ᾱ_t) (∇ log p_t^VP)(sqrt(ᾱ_t) x) = -sqrt(ᾱ_t) ε(sqrt(ᾱ_t) x, t) / sqrt(1 - ᾱ_t)
                   = -ε(sqrt(ᾱ_t) x, t) / σ_t,

using the DDPM score ``∇ log p_t^VP = -ε / sqrt(1 - ᾱ_t)`` (slide 59, eq. 1) and
``sqrt(1 - ᾱ_t) / sqrt(ᾱ_t) = σ_t``. This is the NCSN target ``-(x̃ - x)/σ² = -z/σ`` (slide 20). Note the VP score
evaluated at the VP point is ``sqrt(1 + σ_t²)`` times larger than the VE score: ``s^VP = sqrt(1 + σ_t²) s^VE``.

Helpers here are pure functions of a :class:`~..priors.base.DiffusionPrior` (its ``alphas_cumprod`` and ``eps``);
they know nothing of k-space. Times: integer DDPM timesteps ``t ∈ [0, T-1]``; ``t = -1`` denotes the clean image
(``ᾱ = 1``, ``σ = 0``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..priors.base import DiffusionPrior
from ..utils.enums import StrEnum


class SigmaRounding(StrEnum):
    """How :func:`sigma_to_timestep` maps a continuous σ to the DDPM time axis.

    - ``nearest``: the integer timestep whose σ_t is nearest in log σ (usable with the ε-network directly);
    - ``interpolate``: a fractional timestep, linear in log σ between the two neighbouring integer timesteps.
    """

    NEAREST = "nearest"
    INTERPOLATE = "interpolate"


def ve_sigmas(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """σ_t = sqrt(1/ᾱ_t - 1) for every timestep, same shape and dtype as ``alphas_cumprod`` (increasing in t)."""
    a = torch.as_tensor(alphas_cumprod)
    if bool((a <= 0).any()) or bool((a > 1).any()):
        raise ValueError("alphas_cumprod must lie in (0, 1].")
    return (1.0 / a - 1.0).clamp_min(0).sqrt()


def abar_from_sigma(sigma: torch.Tensor | float) -> torch.Tensor:
    """ᾱ = 1 / (1 + σ²) (slide 62, eq. 6)."""
    s = torch.as_tensor(sigma)
    return 1.0 / (1.0 + s**2)


def abar_at(prior: DiffusionPrior, t: int, like: torch.Tensor) -> torch.Tensor:
    """ᾱ_t as ``(1, 1, 1, 1)`` (dtype/device of ``like``); ``t = -1`` gives 1 (the clean image)."""
    if int(t) < 0:
        return torch.ones((1, 1, 1, 1), dtype=like.dtype, device=like.device)
    return prior.abar(int(t), like)


def sigma_at(prior: DiffusionPrior, t: int, like: torch.Tensor) -> torch.Tensor:
    """σ_t = sqrt(1/ᾱ_t - 1) as ``(1, 1, 1, 1)`` (dtype/device of ``like``); ``t = -1`` gives 0."""
    return (1.0 / abar_at(prior, t, like) - 1.0).clamp_min(0).sqrt()


def vp_to_ve(x_vp: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """``x^VE = x^VP / sqrt(ᾱ_t)`` (slide 62, eq. 4); ``abar`` broadcastable to ``x_vp``."""
    return x_vp / abar.sqrt()


def ve_to_vp(x_ve: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """``x^VP = sqrt(ᾱ_t) x^VE``."""
    return x_ve * abar.sqrt()


def ve_score_from_eps(eps: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``s^VE = -ε / σ_t`` where ``ε = ε(sqrt(ᾱ_t) x^VE, t)`` (see the module docstring); ``sigma > 0``."""
    return -eps / sigma


def ve_score(prior: DiffusionPrior, x_ve: torch.Tensor, t: int) -> torch.Tensor:
    """Score of the VE-perturbed density at ``σ_t``: ``∇ log q_{σ_t}(x^VE) = -ε(sqrt(ᾱ_t) x^VE, t) / σ_t``.

    Args:
        prior: an ε-prediction prior.
        x_ve: ``(B, channels, H, W)`` real, in VE coordinates.
        t: integer timestep in ``[0, T-1]``.

    Returns:
        ``(B, channels, H, W)``, same dtype as ``x_ve``. One network evaluation.
    """
    if not 0 <= int(t) < prior.num_train_timesteps:
        raise ValueError(f"t must lie in [0, {prior.num_train_timesteps - 1}], got {t!r}.")
    a = abar_at(prior, t, x_ve)
    return ve_score_from_eps(prior.eps(ve_to_vp(x_ve, a), int(t)), sigma_at(prior, t, x_ve))


def sigma_to_timestep(
    prior: DiffusionPrior, sigma: float, rounding: SigmaRounding | str = SigmaRounding.NEAREST
) -> int | float:
    """The DDPM time of a continuous VE noise level σ (σ_t is increasing in t).

    ``nearest`` returns the integer ``t`` minimising ``|log σ_t - log σ|``; σ outside ``[σ_0, σ_{T-1}]`` snaps to the
    end. ``interpolate`` returns a float ``t`` linear in log σ between neighbours and raises outside the range.

    Raises:
        ValueError: ``sigma`` not finite and > 0, or (``interpolate``) outside the prior's σ range.
    """
    rounding = SigmaRounding.parse(rounding, "rounding")
    if not (isinstance(sigma, (int, float)) or torch.is_tensor(sigma)) or not math.isfinite(float(sigma)) or sigma <= 0:
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}.")
    log_s = ve_sigmas(prior.alphas_cumprod).double().log()
    target = math.log(float(sigma))
    if rounding == SigmaRounding.NEAREST:
        return int((log_s - target).abs().argmin())
    lo, hi = float(log_s[0]), float(log_s[-1])
    if not lo - 1e-12 <= target <= hi + 1e-12:
        raise ValueError(f"sigma={sigma!r} lies outside the prior's range [{math.exp(lo):.4g}, {math.exp(hi):.4g}].")
    i = int(torch.searchsorted(log_s, torch.tensor(target, dtype=torch.float64)).clamp(1, len(log_s) - 1))
    frac = (target - float(log_s[i - 1])) / (float(log_s[i]) - float(log_s[i - 1]))
    return (i - 1) + min(max(frac, 0.0), 1.0)


def geometric_timesteps(
    prior: DiffusionPrior, num_levels: int, sigma_max: float | None = None, sigma_min: float | None = None
) -> list[int]:
    """NCSN-style noise levels (Song & Ermon, 2019): ``num_levels`` σ's in geometric progression from ``sigma_max``
    down to ``sigma_min`` (default: the prior's ``σ_{T-1}`` and ``σ_0``), each snapped to the nearest DDPM timestep.

    Returns:
        strictly decreasing integer timesteps; levels that snap to the same timestep are merged, so fewer than
        ``num_levels`` may come back when the prior's time grid is coarser than the requested spacing.
    """
    if isinstance(num_levels, bool) or int(num_levels) != num_levels or int(num_levels) < 1:
        raise ValueError(f"num_levels must be an integer >= 1, got {num_levels!r}.")
    sig = ve_sigmas(prior.alphas_cumprod)
    s_max = float(sig[-1]) if sigma_max is None else float(sigma_max)
    s_min = float(sig[0]) if sigma_min is None else float(sigma_min)
    if not (s_max > 0 and s_min > 0 and s_max >= s_min):
        raise ValueError(f"need sigma_max >= sigma_min > 0, got sigma_max={sigma_max!r}, sigma_min={sigma_min!r}.")
    n = int(num_levels)
    levels = [s_max * (s_min / s_max) ** (k / (n - 1)) for k in range(n)] if n > 1 else [s_max]
    out: list[int] = []
    for s in levels:
        t = sigma_to_timestep(prior, s)
        if not out or t < out[-1]:
            out.append(t)
    return out


def check_timesteps(name: str, timesteps: Sequence[int], num_train_timesteps: int) -> list[int]:
    """Require a non-empty, strictly decreasing list of integer timesteps in ``[0, T-1]``."""
    try:
        times = [int(t) for t in timesteps]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of integer timesteps, got {timesteps!r}.") from None
    if len(times) == 0:
        raise ValueError(f"{name} is empty: the sampler needs at least one noise level.")
    if any(t != float(s) for t, s in zip(times, timesteps)):
        raise ValueError(f"{name} must hold integers, got {list(timesteps)!r}.")
    if any(not 0 <= t < num_train_timesteps for t in times):
        raise ValueError(f"{name} must lie in [0, {num_train_timesteps - 1}], got {times}.")
    if any(b >= a for a, b in zip(times, times[1:])):
        raise ValueError(f"{name} must be strictly decreasing (noisiest first), got {times}.")
    return times


__all__ = [
    "SigmaRounding",
    "abar_at",
    "abar_from_sigma",
    "check_timesteps",
    "geometric_timesteps",
    "sigma_at",
    "sigma_to_timestep",
    "ve_score",
    "ve_score_from_eps",
    "ve_sigmas",
    "ve_to_vp",
    "vp_to_ve",
]
