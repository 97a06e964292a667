"""Undersampling masks: 1D Cartesian column masks (fastMRI) and 2D variable-density Poisson-disc (sigpy)."""

from __future__ import annotations

import numpy as np
import torch

from ..utils.enums import StrEnum
from ..utils.validation import check_positive
from .base import mask_acceleration, prepare_mask


class MaskType(StrEnum):
    """Mask families.

    - ``random``: fully sampled centre (``center_fraction`` of the columns) + random columns
      (``fastmri.data.subsample.RandomMaskFunc``), as in the fastMRI challenge (Zbontar et al., 2018).
    - ``equispaced``: fully sampled centre + equispaced columns (``EquispacedMaskFractionFunc``: the spacing is
      adjusted for the centre so that the effective acceleration is close to the nominal one; fastMRI's
      ``EquiSpacedMaskFunc`` keeps spacing ``R`` and so samples ~1.6x more columns than nominal at R=8).
    - ``poisson``: 2D variable-density Poisson-disc with a fully sampled calibration square
      (``sigpy.mri.poisson``).
    """

    RANDOM = "random"
    EQUISPACED = "equispaced"
    POISSON = "poisson"


def make_mask(
    mask_type: MaskType | str,
    image_shape: tuple[int, int],
    acceleration: float,
    center_fraction: float = 0.08,
    seed: int | None = 0,
    calib_size: int = 16,
) -> torch.Tensor:
    """Build a sampling mask.

    Args:
        mask_type: one of :class:`MaskType`.
        image_shape: ``(H, W)``; columns run along ``W`` (phase encoding).
        acceleration: nominal acceleration ``R > 1`` (for 1D masks an integer, as fastMRI requires).
        center_fraction: fraction of fully sampled central columns (1D masks).
        seed: random seed (``None`` for a random draw).
        calib_size: side of the fully sampled calibration square (Poisson masks).

    Returns:
        float32 mask: ``(1, 1, 1, W)`` for 1D masks, ``(1, 1, H, W)`` for Poisson masks, values in {0, 1}.
        Use :func:`effective_acceleration` for the achieved acceleration.
    """
    mask_type = MaskType.parse(mask_type, "mask_type")
    h, w = (int(s) for s in image_shape)
    acc = check_positive("acceleration", acceleration)
    if acc <= 1:
        raise ValueError(f"acceleration must be > 1, got {acceleration!r}.")
    if not 0 < center_fraction < 1:
        raise ValueError(f"center_fraction must lie in (0, 1), got {center_fraction!r}.")
    if mask_type == MaskType.POISSON:
        import sigpy.mri

        rng_state = np.random.get_state()
        try:
            m = sigpy.mri.poisson((h, w), acc, calib=(calib_size, calib_size), dtype=np.float32, seed=seed)
        finally:
            np.random.set_state(rng_state)
        return torch.from_numpy(np.ascontiguousarray(m.real.astype(np.float32))).reshape(1, 1, h, w)

    from fastmri.data.subsample import EquispacedMaskFractionFunc, RandomMaskFunc

    if float(acc) != int(acc):
        raise ValueError(f"acceleration must be an integer for 1D {mask_type.value} masks, got {acceleration!r}.")
    cls = RandomMaskFunc if mask_type == MaskType.RANDOM else EquispacedMaskFractionFunc
    func = cls(center_fractions=[float(center_fraction)], accelerations=[int(acc)], seed=seed)
    mask, _ = func((1, h, w, 2), seed=seed)
    return mask.reshape(1, 1, 1, w).to(torch.float32)


def effective_acceleration(mask, image_shape: tuple[int, int]) -> float:
    """Achieved acceleration ``(H·W) / #sampled`` of a mask (mean over its batch)."""
    return float(mask_acceleration(prepare_mask(mask), tuple(image_shape)).mean())
