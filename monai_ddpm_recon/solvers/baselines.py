"""Non-learned baselines: zero-filled (adjoint / root-sum-of-squares) and SENSE (CG on the normal equations).

Also holds the input checks and the k-space scale rule shared by every classical solver in this package
(:mod:`.cs` and :mod:`.bart` import them from here), so all baselines validate and normalise identically.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..data.slices import intensity_scales
from ..operators.base import LinearOperator
from ..operators.fft import ifft2c
from ..utils.enums import StrEnum
from ..utils.validation import check_complex, check_finite, check_positive
from .base import ReconInfo

#: Percentile of the zero-filled magnitude that the k-space normalisation maps to 1 (see :func:`kspace_scale`).
SCALE_PERCENTILE = 99.0

_OPERATOR_MEMBERS = ("forward", "adjoint", "normal", "image_shape", "num_coils", "mask")


# ---------------------------------------------------------------------------------------------------------------
# shared checks
# ---------------------------------------------------------------------------------------------------------------
def check_operator(operator) -> LinearOperator:
    """Require an object following the operator protocol (duck-typed: :class:`~..operators.LinearOperator`)."""
    missing = [m for m in _OPERATOR_MEMBERS if not hasattr(operator, m)]
    if missing:
        raise TypeError(
            f"operator must follow the LinearOperator protocol ({', '.join(_OPERATOR_MEMBERS)}); "
            f"{type(operator).__name__} lacks {', '.join(missing)}."
        )
    return operator


def check_kspace(kspace: torch.Tensor, operator) -> torch.Tensor:
    """Check ``kspace`` against ``operator``: complex, finite, shape ``(B, operator.num_coils, *operator.image_shape)``.

    Raises:
        TypeError: ``kspace`` is not a complex tensor, or ``operator`` lacks the protocol members.
        ValueError: shape or batch size mismatch with the operator, or NaN/Inf values.
    """
    check_operator(operator)
    check_complex("kspace", kspace)
    expected = (operator.num_coils, *operator.image_shape)
    if kspace.ndim != 4 or tuple(kspace.shape[1:]) != tuple(expected):
        raise ValueError(
            f"kspace has shape {tuple(kspace.shape)} but the operator expects (B, {expected[0]}, {expected[1]}, "
            f"{expected[2]}) (num_coils={operator.num_coils}, image_shape={tuple(operator.image_shape)})."
        )
    for what, t in (("mask", operator.mask), ("sens_maps", getattr(operator, "sens_maps", None))):
        if t is not None and t.shape[0] not in (1, kspace.shape[0]):
            raise ValueError(
                f"kspace has batch size {kspace.shape[0]} but the operator's {what} has batch size {t.shape[0]}."
            )
    check_finite("kspace", kspace)
    return kspace


def check_lambda(name: str, value: float) -> float:
    """Require a finite regularisation weight ``>= 0``."""
    return check_positive(name, value, allow_zero=True)


def check_iterations(name: str, value: int) -> int:
    """Require an integer iteration count ``>= 1``."""
    if isinstance(value, bool) or not float(value).is_integer() or int(value) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def check_result(name: str, image: torch.Tensor) -> torch.Tensor:
    """Raise instead of returning a reconstruction that diverged to NaN/Inf."""
    if not bool(torch.isfinite(image).all()):
        n_bad = int((~torch.isfinite(image)).sum())
        raise RuntimeError(
            f"{name} produced {n_bad} NaN/Inf value(s) (the iteration diverged); check the operator, "
            "the step sizes and the regularisation weight."
        )
    return image


# ---------------------------------------------------------------------------------------------------------------
# the scale rule
# ---------------------------------------------------------------------------------------------------------------
def kspace_scale(kspace: torch.Tensor, operator, percentile: float = SCALE_PERCENTILE) -> torch.Tensor:
    """Per-item k-space scale used to make regularisation weights independent of the k-space units.

    Rule (:func:`~monai_ddpm_recon.data.slices.intensity_scales`): ``s_b = percentile_{99}(|Aᴴ y_b|)``, the 99th percentile of the zero-filled (adjoint, SENSE-combined)
    image magnitude of batch item ``b``. Solvers divide ``y_b`` by ``s_b``, solve
    ``min_x ½‖A x − y_b/s_b‖² + λ R(x)`` and multiply the result by ``s_b``. For any 1-homogeneous regulariser
    (TV, ℓ1-wavelet) this is the exact solution of the problem with weight ``λ s_b`` on the raw data, so a fixed
    ``λ`` means the same thing whatever the scanner's (arbitrary) k-space scale.

    Args:
        kspace: ``(B, C, H, W)`` complex.
        operator: the forward model.
        percentile: robust-max percentile (99 by default; the maximum itself is sensitive to a single hot pixel).

    Returns:
        real tensor ``(B,)`` of scales, on ``kspace``'s device; an all-zero item gets scale 1.
    """
    zf = operator.adjoint(kspace)
    q = intensity_scales(zf, float(percentile), name="zero-filled image")
    return torch.where(q > 0, q, torch.ones_like(q)).to(zf.real.dtype)


# ---------------------------------------------------------------------------------------------------------------
# conversion to numpy for sigpy / BART
# ---------------------------------------------------------------------------------------------------------------
def operator_numpy(operator, batch_size: int, dtype=np.complex64) -> tuple[np.ndarray, np.ndarray]:
    """Convert an operator once to per-item numpy coil maps and sampling weights.

    A ``SenseOperator``-like operator (has ``sens_maps``) gives its maps; a single-coil operator (``num_coils == 1``,
    e.g. ``MaskedFourier``) gives one all-ones map.

    Returns:
        ``maps`` of shape ``(B|1, C, H, W)`` (``dtype``) and ``weights`` of shape ``(B|1, H, W)`` (real, the mask
        broadcast to the image grid). Index with ``[b if len > 1 else 0]``.
    """
    check_operator(operator)
    h, w = operator.image_shape
    maps = getattr(operator, "sens_maps", None)
    if maps is None:
        if operator.num_coils != 1:
            raise TypeError(
                f"operator has num_coils={operator.num_coils} but no sens_maps attribute; multi-coil operators must "
                "expose sens_maps (B|1, C, H, W) like SenseOperator."
            )
        maps_np = np.ones((1, 1, h, w), dtype=dtype)
    else:
        maps_np = maps.detach().cpu().numpy().astype(dtype)
    mask = operator.mask.detach().cpu().to(torch.float64)
    weights = torch.broadcast_to(mask, (mask.shape[0], 1, h, w))[:, 0].numpy()
    real = np.float32 if np.dtype(dtype) == np.complex64 else np.float64
    if maps_np.shape[0] not in (1, batch_size) or weights.shape[0] not in (1, batch_size):
        raise ValueError(f"operator batch sizes {maps_np.shape[0]}/{weights.shape[0]} do not match kspace ({batch_size}).")
    return maps_np, np.ascontiguousarray(weights.astype(real))


def pick(arr: np.ndarray, b: int) -> np.ndarray:
    """Item ``b`` of an array whose batch axis may be broadcast (size 1)."""
    return arr[b if arr.shape[0] > 1 else 0]


def numpy_complex_dtype(kspace: torch.Tensor):
    """numpy complex dtype matching a torch complex tensor."""
    return np.complex128 if kspace.dtype == torch.complex128 else np.complex64


# ---------------------------------------------------------------------------------------------------------------
# zero-filled
# ---------------------------------------------------------------------------------------------------------------
class ZeroFilledMode(StrEnum):
    """How :class:`ZeroFilledSolver` combines channels.

    - ``adjoint``: ``Aᴴ y`` (single-coil: inverse FFT of the zero-filled k-space; multi-coil: SENSE combination
      ``Σ_c S_cᴴ F⁻¹ M y_c``, which keeps the phase and is unbiased where ``Σ|S|² = 1``).
    - ``rss``: root-sum-of-squares ``sqrt(Σ_c |F⁻¹ M y_c|²)`` (needs no maps; magnitude only, returned as a complex
      tensor with zero phase).
    """

    ADJOINT = "adjoint"
    RSS = "rss"


class ZeroFilledSolver:
    """Zero-filled reconstruction: the operator's adjoint (SENSE-combined) or root-sum-of-squares.

    Args:
        mode: a :class:`ZeroFilledMode` (``"adjoint"`` by default).

    Call: ``solver(kspace, operator)`` with ``kspace`` ``(B, C, H, W)`` complex; returns ``(B, 1, H, W)`` with the
    dtype of ``kspace``.
    """

    def __init__(self, mode: ZeroFilledMode | str = ZeroFilledMode.ADJOINT) -> None:
        self.mode = ZeroFilledMode.parse(mode, "mode")
        self.info = ReconInfo()

    def __call__(self, kspace: torch.Tensor, operator: LinearOperator) -> torch.Tensor:
        t0 = time.perf_counter()
        check_kspace(kspace, operator)
        if self.mode == ZeroFilledMode.ADJOINT:
            image = operator.adjoint(kspace)
        else:
            mask = operator.mask.to(device=kspace.device, dtype=kspace.real.dtype)
            coils = ifft2c(mask * kspace)
            image = (coils.abs() ** 2).sum(dim=1, keepdim=True).sqrt().to(kspace.dtype)
        check_result("ZeroFilledSolver", image)
        self.info = ReconInfo(iterations=0, wall_time_s=time.perf_counter() - t0, extra={"mode": str(self.mode)})
        return image

    def __repr__(self) -> str:
        return f"ZeroFilledSolver(mode={str(self.mode)!r})"


# ---------------------------------------------------------------------------------------------------------------
# SENSE
# ---------------------------------------------------------------------------------------------------------------
def conjugate_gradient(
    normal, rhs: torch.Tensor, mu: float, max_iter: int, tol: float
) -> tuple[torch.Tensor, int, torch.Tensor]:
    """Batched CG for ``(Aᴴ A + μ I) x = b`` (Hestenes & Stiefel, 1952), each item with its own step sizes.

    Args:
        normal: ``x -> Aᴴ A x`` on ``(B, 1, H, W)``.
        rhs: ``b`` of shape ``(B, 1, H, W)`` complex.
        mu: Tikhonov weight ``μ >= 0``.
        max_iter: iteration cap.
        tol: stop when every item has ``‖r‖ <= tol ‖b‖``.

    Returns:
        ``(x, iterations, relative_residual (B,))``.
    """
    def op(v):
        return normal(v) + mu * v if mu else normal(v)

    def dot(a, b):  # per-item real part of <a, b>
        return (a.conj() * b).real.flatten(1).sum(dim=1)

    x = torch.zeros_like(rhs)
    r = rhs.clone()
    p = r.clone()
    rr = dot(r, r)
    b_norm = rr.sqrt().clamp_min(torch.finfo(rr.dtype).tiny)
    it = 0
    for it in range(1, max_iter + 1):
        if bool((rr.sqrt() <= tol * b_norm).all()):
            it -= 1
            break
        ap = op(p)
        pap = dot(p, ap)
        active = rr.sqrt() > tol * b_norm
        alpha = torch.where(active & (pap > 0), rr / torch.where(pap > 0, pap, torch.ones_like(pap)), 0.0)
        alpha = alpha.view(-1, 1, 1, 1).to(rhs.dtype)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = dot(r, r)
        beta = torch.where(rr > 0, rr_new / torch.where(rr > 0, rr, torch.ones_like(rr)), 0.0)
        p = r + beta.view(-1, 1, 1, 1).to(rhs.dtype) * p
        rr = rr_new
    return x, it, rr.sqrt() / b_norm


class SenseSolver:
    """SENSE reconstruction (Pruessmann et al., 1999): CG on ``(Aᴴ A + μ I) x = Aᴴ y``.

    The problem is linear, so ``μ`` is unaffected by the k-space scale only relative to ``Aᴴ A`` (whose scale is
    fixed by the maps and mask): no data normalisation is needed. Runs in torch on the device of ``kspace``
    (GPU-capable), batched, each item with its own CG step sizes.

    Args:
        mu: Tikhonov weight ``μ >= 0`` (0: plain least squares).
        max_iter: CG iteration cap (>= 1).
        tol: relative residual ``‖(AᴴA+μI)x − Aᴴy‖ / ‖Aᴴy‖`` at which to stop (>= 0).

    ``info.extra`` holds ``lambda`` (= μ) and the final relative residual per item.
    """

    def __init__(self, mu: float = 0.0, max_iter: int = 50, tol: float = 1e-6) -> None:
        self.mu = check_lambda("mu", mu)
        self.max_iter = check_iterations("max_iter", max_iter)
        self.tol = check_positive("tol", tol, allow_zero=True)
        self.info = ReconInfo()

    def __call__(self, kspace: torch.Tensor, operator: LinearOperator) -> torch.Tensor:
        t0 = time.perf_counter()
        check_kspace(kspace, operator)
        rhs = operator.adjoint(kspace)
        x, iters, resid = conjugate_gradient(operator.normal, rhs, self.mu, self.max_iter, self.tol)
        check_result("SenseSolver", x)
        self.info = ReconInfo(
            iterations=iters,
            wall_time_s=time.perf_counter() - t0,
            extra={"lambda": self.mu, "relative_residual": resid.detach().cpu().tolist()},
        )
        return x

    def __repr__(self) -> str:
        return f"SenseSolver(mu={self.mu}, max_iter={self.max_iter}, tol={self.tol})"
