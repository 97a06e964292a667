"""Coil sensitivity maps: simulated birdcage maps and ESPIRiT calibration (both through sigpy)."""

from __future__ import annotations

import numpy as np
import torch

from ..utils.validation import check_finite


def birdcage_maps(num_coils: int, image_shape: tuple[int, int], r: float = 1.5, normalize: bool = True) -> torch.Tensor:
    """Simulated birdcage coil maps (``sigpy.mri.birdcage_maps``).

    Args:
        num_coils: number of coils ``C >= 1``.
        image_shape: ``(H, W)``.
        r: relative coil radius (sigpy's ``r``); larger gives flatter maps.
        normalize: scale so that ``Σ_c |S_c|² = 1`` at every pixel (then SENSE-combining ``Sᴴ`` inverts ``S``).

    Returns:
        complex64 tensor ``(1, C, H, W)``.
    """
    import sigpy.mri

    if int(num_coils) < 1:
        raise ValueError(f"num_coils must be >= 1, got {num_coils!r}.")
    maps = sigpy.mri.birdcage_maps((int(num_coils), *[int(s) for s in image_shape]), r=r).astype(np.complex64)
    if normalize:
        maps = maps / np.sqrt((np.abs(maps) ** 2).sum(axis=0, keepdims=True))
    return torch.from_numpy(maps)[None]


MIN_CALIB_WIDTH = 16


def espirit_maps(
    kspace: torch.Tensor | np.ndarray,
    calib_width: int = 24,
    thresh: float = 0.02,
    crop: float = 0.95,
    max_iter: int = 100,
    show_pbar: bool = False,
) -> torch.Tensor:
    """ESPIRiT coil maps (Uecker et al., 2014) via ``sigpy.mri.app.EspiritCalib``.

    Args:
        kspace: multi-coil k-space ``(C, H, W)`` or ``(1, C, H, W)``, complex, centred (DC at ``(H//2, W//2)``)
            with a fully sampled central ``calib_width`` block.
        calib_width: calibration region width; at least 16 (sigpy returned all-zero maps below that here).
        thresh, crop, max_iter: ESPIRiT parameters (sigpy's defaults are 0.02, 0.95, 100).

    Returns:
        complex64 tensor ``(1, C, H, W)``.

    Raises:
        ValueError: if ``calib_width < 16``, the k-space is not finite, or calibration returned all-zero maps.
    """
    from sigpy.mri.app import EspiritCalib

    if int(calib_width) < MIN_CALIB_WIDTH:
        raise ValueError(
            f"calib_width must be >= {MIN_CALIB_WIDTH} (sigpy's ESPIRiT returns all-zero maps for narrower "
            f"calibration regions), got {calib_width!r}."
        )
    k = kspace.detach().cpu().numpy() if isinstance(kspace, torch.Tensor) else np.asarray(kspace)
    if not np.iscomplexobj(k):
        raise TypeError(f"kspace must be complex, got dtype {k.dtype}.")
    if k.ndim == 4 and k.shape[0] == 1:
        k = k[0]
    if k.ndim != 3:
        raise ValueError(f"kspace has shape {k.shape}; expected (C, H, W) or (1, C, H, W).")
    check_finite("kspace", torch.from_numpy(np.ascontiguousarray(k)))
    if min(k.shape[-2:]) < calib_width:
        raise ValueError(f"calib_width={calib_width} exceeds the k-space size {k.shape[-2:]}.")
    maps = EspiritCalib(
        k.astype(np.complex64), calib_width=int(calib_width), thresh=thresh, crop=crop, max_iter=max_iter,
        show_pbar=show_pbar,
    ).run()
    maps = np.asarray(maps, dtype=np.complex64)
    if not np.any(np.abs(maps) > 0):
        raise ValueError(
            "ESPIRiT returned all-zero maps: the calibration region is probably not fully sampled or too small "
            f"(calib_width={calib_width})."
        )
    return torch.from_numpy(maps)[None]
