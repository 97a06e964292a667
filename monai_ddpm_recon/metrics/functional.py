"""PSNR, SSIM and NMSE on magnitude images, with ``fastmri.evaluate``'s conventions.

Conventions (identical to ``fastmri.evaluate``, which the tests compare against):

- ``data_range`` defaults to ``target.max()`` (fastMRI's ``maxval``), not ``max - min``.
- PSNR ``= 10 log10(data_range² / MSE)`` over all pixels of the input (a whole volume gives one value).
- NMSE ``= ||target - pred||² / ||target||²``.
- SSIM: Wang et al. (2004) with a 7x7 uniform window, ``K1 = 0.01``, ``K2 = 0.03``, sample covariance, the
  border of 3 pixels cropped (``skimage.metrics.structural_similarity`` defaults), averaged over the slices of a
  volume with one ``data_range`` for the whole volume.

Inputs: torch tensors or numpy arrays of shape ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)``; complex inputs are
replaced by their magnitude. Computation is in float64 on the input's device and is differentiable.
With ``per_item=True`` a batch ``(N, ...)`` gives ``N`` values, each with its own default ``data_range``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SSIM_WIN_SIZE = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def as_magnitude(name: str, x) -> torch.Tensor:
    """Convert numpy/torch input to a float64 tensor ``(N, H, W)``; complex input becomes its magnitude."""
    if isinstance(x, np.ndarray) or np.isscalar(x):
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(x)))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}.")
    if torch.is_complex(x):
        x = x.abs()
    x = x.to(torch.float64)
    if x.ndim == 2:
        x = x[None]
    elif x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected (H, W), (N, H, W) or (N, 1, H, W).")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN/Inf values; expected finite values.")
    return x


def _pair(target, pred) -> tuple[torch.Tensor, torch.Tensor]:
    t = as_magnitude("target", target)
    p = as_magnitude("pred", pred).to(t.device)
    if t.shape != p.shape:
        raise ValueError(f"pred has shape {tuple(p.shape)} but target has shape {tuple(t.shape)}; expected equal.")
    return t, p


def _data_range(t: torch.Tensor, data_range, per_item: bool) -> torch.Tensor:
    """``(N, 1, 1)`` (per item) or ``(1, 1, 1)`` tensor of data ranges; default: max of the target."""
    if data_range is None:
        dr = t.amax(dim=(1, 2), keepdim=True) if per_item else t.amax().reshape(1, 1, 1)
    else:
        dr = torch.as_tensor(data_range, dtype=torch.float64, device=t.device).reshape(-1, 1, 1)
    if not bool((dr > 0).all()):
        raise ValueError(
            "data_range must be > 0 (the default is target.max(); an all-zero target needs an explicit data_range)."
        )
    return dr


def psnr(target, pred, data_range: float | None = None, per_item: bool = False) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range² / MSE)``.

    Args:
        target: reference magnitude image(s) ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)``.
        pred: reconstruction, same shape.
        data_range: peak value; ``None`` uses ``target.max()`` (per item when ``per_item``).
        per_item: return one value per leading item instead of one for the whole input.

    Returns:
        float64 tensor: scalar, or ``(N,)`` with ``per_item``. ``inf`` if ``pred == target``.
    """
    t, p = _pair(target, pred)
    dims = (1, 2) if per_item else (0, 1, 2)
    mse = ((t - p) ** 2).mean(dim=dims)
    dr = _data_range(t, data_range, per_item).reshape(-1)
    if not per_item:
        if dr.numel() != 1:
            raise ValueError(f"data_range must be a scalar unless per_item=True, got {dr.numel()} values.")
        dr = dr.reshape(())
    return 10 * torch.log10(dr**2 / mse)


def nmse(target, pred, per_item: bool = False) -> torch.Tensor:
    """Normalised mean squared error ``||target - pred||² / ||target||²`` (scalar, or ``(N,)`` with ``per_item``)."""
    t, p = _pair(target, pred)
    dims = (1, 2) if per_item else (0, 1, 2)
    return ((t - p) ** 2).sum(dim=dims) / (t**2).sum(dim=dims)


def ssim_map(t: torch.Tensor, p: torch.Tensor, data_range: torch.Tensor) -> torch.Tensor:
    """SSIM map ``(N, H - 6, W - 6)`` of float64 ``(N, H, W)`` images (valid region of the 7x7 window)."""
    win = SSIM_WIN_SIZE
    if min(t.shape[-2:]) < win:
        raise ValueError(f"images must be at least {win}x{win} for SSIM, got {tuple(t.shape[-2:])}.")
    stack = torch.stack([t, p, t * t, p * p, t * p], dim=1)  # (N, 5, H, W)
    means = F.avg_pool2d(stack, kernel_size=win, stride=1)
    ux, uy, uxx, uyy, uxy = means.unbind(dim=1)
    n = win * win
    cov_norm = n / (n - 1)  # sample covariance, as skimage's default
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))


def ssim(target, pred, data_range: float | None = None, per_item: bool = False) -> torch.Tensor:
    """Structural similarity (Wang et al., 2004) with fastMRI/skimage defaults.

    Args:
        target: reference magnitude image(s) ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)``; ``H, W >= 7``.
        pred: reconstruction, same shape.
        data_range: dynamic range; ``None`` uses ``target.max()`` (of the whole input, or per item with ``per_item``).
        per_item: return one value per item instead of the mean over slices.

    Returns:
        float64 tensor: scalar (mean over slices, as ``fastmri.evaluate.ssim``) or ``(N,)``.
    """
    t, p = _pair(target, pred)
    dr = _data_range(t, data_range, per_item)
    per_slice = ssim_map(t, p, dr).mean(dim=(1, 2))
    return per_slice if per_item else per_slice.mean()


__all__ = ["as_magnitude", "nmse", "psnr", "ssim", "ssim_map"]
