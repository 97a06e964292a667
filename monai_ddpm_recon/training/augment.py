"""Training-time augmentation of ``[0, 1]`` magnitude slices: left-right flips, small rotations, intensity scaling."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class RandomSliceAugment:
    """Random flip / rotation / intensity scaling of a ``(C, H, W)`` float image in ``[0, 1]``.

    Intensity is scaled by ``s ~ U(intensity_range)`` with ``max(intensity_range) <= 1`` so the image stays in
    ``[0, 1]`` (the prior's convention puts the slice maximum at 1; mild down-scaling makes it tolerant of
    reconstructions normalised by a slightly larger value).

    Args:
        flip_prob: probability of a left-right flip.
        max_rotation_deg: rotation angle drawn from ``U(-max, max)`` degrees (bilinear, zero padding).
        intensity_range: ``(low, high)`` multiplicative scaling, ``0 < low <= high <= 1``.
        generator: optional ``torch.Generator`` for reproducibility.
    """

    def __init__(
        self,
        flip_prob: float = 0.5,
        max_rotation_deg: float = 10.0,
        intensity_range: tuple[float, float] = (0.9, 1.0),
        generator: torch.Generator | None = None,
    ) -> None:
        lo, hi = float(intensity_range[0]), float(intensity_range[1])
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"intensity_range must satisfy 0 < low <= high <= 1, got {intensity_range!r}.")
        if not 0 <= flip_prob <= 1:
            raise ValueError(f"flip_prob must lie in [0, 1], got {flip_prob!r}.")
        self.flip_prob = float(flip_prob)
        self.max_rotation = math.radians(float(max_rotation_deg))
        self.intensity_range = (lo, hi)
        self.generator = generator

    def _u(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if self._u() < self.flip_prob:
            img = img.flip(-1)
        if self.max_rotation > 0:
            a = (2 * self._u() - 1) * self.max_rotation
            c, s = math.cos(a), math.sin(a)
            theta = torch.tensor([[c, -s, 0.0], [s, c, 0.0]], dtype=img.dtype)[None]
            grid = F.affine_grid(theta, [1, *img.shape], align_corners=False)
            img = F.grid_sample(img[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
        lo, hi = self.intensity_range
        img = img * (lo + (hi - lo) * self._u())
        return img.clamp(0, 1)
