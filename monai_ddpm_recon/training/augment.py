"""Training-time augmentation of ``[0, 1]`` magnitude slices: left-right flips, small rotations, zoom, shifts,
intensity scaling."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def affine_resample(
    img: torch.Tensor, angle: float = 0.0, zoom: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)
) -> torch.Tensor:
    """Rotate (radians), zoom (``> 1`` enlarges the anatomy) and shift a ``(C, H, W)`` image in one bilinear resampling.

    ``shift`` is ``(x, y)`` as a fraction of the image side (positive moves the content left / up); outside the
    image is zero. The identity returns ``img`` itself, without resampling.
    """
    if angle == 0 and zoom == 1 and shift[0] == 0 and shift[1] == 0:
        return img
    # affine_grid maps output to input coordinates in [-1, 1] (the side spans 2): dividing by the zoom enlarges
    c, s = math.cos(angle) / zoom, math.sin(angle) / zoom
    theta = torch.tensor([[c, -s, 2 * shift[0]], [s, c, 2 * shift[1]]], dtype=img.dtype)[None]
    grid = F.affine_grid(theta, [1, *img.shape], align_corners=False)
    return F.grid_sample(img[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]


class RandomSliceAugment:
    """Random flip / rotation / zoom / shift / intensity scaling of a ``(C, H, W)`` float image in ``[0, 1]``.

    The geometric part is one affine resampling (bilinear, zero padding), so zoom and rotation cost a single
    interpolation; with a tiny training set (a few brains) zoom and shift are what keep the network from
    memorising slice positions.

    Intensity is scaled by ``s ~ U(intensity_range)`` with ``max(intensity_range) <= 1`` so the image stays in
    ``[0, 1]`` (the prior's convention puts the slice maximum at 1; mild down-scaling makes it tolerant of
    reconstructions normalised by a slightly larger value).

    Args:
        flip_prob: probability of a left-right flip.
        max_rotation_deg: rotation angle drawn from ``U(-max, max)`` degrees (bilinear, zero padding).
        intensity_range: ``(low, high)`` multiplicative scaling, ``0 < low <= high <= 1``.
        zoom_range: ``(low, high)`` isotropic zoom factor drawn uniformly (``> 1`` enlarges the anatomy).
        max_shift: translation drawn from ``U(-max, max)`` per axis, as a fraction of the image side.
        generator: optional ``torch.Generator`` for reproducibility.
    """

    def __init__(
        self,
        flip_prob: float = 0.5,
        max_rotation_deg: float = 10.0,
        intensity_range: tuple[float, float] = (0.9, 1.0),
        zoom_range: tuple[float, float] = (1.0, 1.0),
        max_shift: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        lo, hi = float(intensity_range[0]), float(intensity_range[1])
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"intensity_range must satisfy 0 < low <= high <= 1, got {intensity_range!r}.")
        if not 0 <= flip_prob <= 1:
            raise ValueError(f"flip_prob must lie in [0, 1], got {flip_prob!r}.")
        zlo, zhi = float(zoom_range[0]), float(zoom_range[1])
        if not 0 < zlo <= zhi:
            raise ValueError(f"zoom_range must satisfy 0 < low <= high, got {zoom_range!r}.")
        if not 0 <= max_shift < 0.5:
            raise ValueError(f"max_shift must lie in [0, 0.5), got {max_shift!r}.")
        self.zoom_range = (zlo, zhi)
        self.max_shift = float(max_shift)
        self.flip_prob = float(flip_prob)
        self.max_rotation = math.radians(float(max_rotation_deg))
        self.intensity_range = (lo, hi)
        self.generator = generator

    def _u(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if self._u() < self.flip_prob:
            img = img.flip(-1)
        a = (2 * self._u() - 1) * self.max_rotation if self.max_rotation > 0 else 0.0
        zlo, zhi = self.zoom_range
        zoom = zlo + (zhi - zlo) * self._u() if zhi > zlo else zlo
        shift = tuple((2 * self._u() - 1) * self.max_shift for _ in range(2)) if self.max_shift > 0 else (0.0, 0.0)
        img = affine_resample(img, a, zoom, shift)
        lo, hi = self.intensity_range
        img = img * (lo + (hi - lo) * self._u())
        return img.clamp(0, 1)
