"""Training-time augmentation of ``[0, 1]`` magnitude slices: left-right flips, small rotations, zoom, shifts,
smooth elastic deformation, a smooth multiplicative bias field, intensity scaling."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def affine_resample(
    img: torch.Tensor,
    angle: float = 0.0,
    zoom: float = 1.0,
    shift: tuple[float, float] = (0.0, 0.0),
    displacement: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rotate (radians), zoom (``> 1`` enlarges the anatomy), shift and deform a ``(C, H, W)`` image in one bilinear
    resampling.

    ``shift`` is ``(x, y)`` as a fraction of the image side (positive moves the content left / up); outside the
    image is zero. ``displacement`` is an optional ``(H, W, 2)`` field, ``(x, y)`` as a fraction of the side, added
    to the sampling position of each output pixel. The identity returns ``img`` itself, without resampling.
    """
    if angle == 0 and zoom == 1 and shift[0] == 0 and shift[1] == 0 and displacement is None:
        return img
    # affine_grid maps output to input coordinates in [-1, 1] (the side spans 2): dividing by the zoom enlarges
    c, s = math.cos(angle) / zoom, math.sin(angle) / zoom
    theta = torch.tensor([[c, -s, 2 * shift[0]], [s, c, 2 * shift[1]]], dtype=img.dtype)[None]
    grid = F.affine_grid(theta, [1, *img.shape], align_corners=False)
    if displacement is not None:
        if displacement.shape != (*img.shape[-2:], 2):
            raise ValueError(f"displacement must have shape {(*img.shape[-2:], 2)}, got {tuple(displacement.shape)}.")
        grid = grid + 2 * displacement.to(grid.dtype)[None]
    return F.grid_sample(img[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def smooth_random_field(
    shape: tuple[int, int], channels: int, std: float, control_points: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A smooth random field: i.i.d. ``N(0, std^2)`` values on a ``control_points``-square grid, upsampled bicubically.

    Returns:
        ``(channels, H, W)`` float32 tensor.
    """
    coarse = torch.randn(1, channels, control_points, control_points, generator=generator) * std
    return F.interpolate(coarse, size=shape, mode="bicubic", align_corners=True)[0]


class RandomSliceAugment:
    """Random flip / rotation / zoom / shift / elastic deformation / bias field / intensity scaling of a
    ``(C, H, W)`` float image in ``[0, 1]``.

    The geometric part is one resampling (bilinear, zero padding), so zoom, rotation and deformation cost a single
    interpolation; with a tiny training set (a few brains) zoom and shift are what keep the network from
    memorising slice positions, and the smooth elastic deformation stands in for the anatomical variation between
    subjects that a two-brain training set lacks.

    The bias field multiplies the image by ``exp(b)``, ``b`` a smooth random field (the slow receive-coil shading
    of magnitude images), and the result is divided by its maximum so the slice maximum stays at 1, as in the
    prior's intensity convention.

    Intensity is scaled by ``s ~ U(intensity_range)`` with ``max(intensity_range) <= 1`` so the image stays in
    ``[0, 1]`` (the prior's convention puts the slice maximum at 1; mild down-scaling makes it tolerant of
    reconstructions normalised by a slightly larger value).

    Args:
        flip_prob: probability of a left-right flip.
        max_rotation_deg: rotation angle drawn from ``U(-max, max)`` degrees (bilinear, zero padding).
        intensity_range: ``(low, high)`` multiplicative scaling, ``0 < low <= high <= 1``.
        zoom_range: ``(low, high)`` isotropic zoom factor drawn uniformly (``> 1`` enlarges the anatomy).
        max_shift: translation drawn from ``U(-max, max)`` per axis, as a fraction of the image side.
        elastic_std: standard deviation of the elastic displacement at each control point, as a fraction of the
            image side (0 disables it).
        bias_std: standard deviation of the log bias field at each control point (0 disables it).
        control_points: side of the square grid of control points both smooth fields are drawn on (>= 2).
        generator: optional ``torch.Generator`` for reproducibility.
    """

    def __init__(
        self,
        flip_prob: float = 0.5,
        max_rotation_deg: float = 10.0,
        intensity_range: tuple[float, float] = (0.9, 1.0),
        zoom_range: tuple[float, float] = (1.0, 1.0),
        max_shift: float = 0.0,
        elastic_std: float = 0.0,
        bias_std: float = 0.0,
        control_points: int = 5,
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
        if not 0 <= elastic_std < 0.1:
            raise ValueError(f"elastic_std must lie in [0, 0.1) (a fraction of the image side), got {elastic_std!r}.")
        if not 0 <= bias_std <= 1:
            raise ValueError(f"bias_std must lie in [0, 1], got {bias_std!r}.")
        if int(control_points) < 2:
            raise ValueError(f"control_points must be >= 2, got {control_points!r}.")
        self.elastic_std, self.bias_std, self.control_points = float(elastic_std), float(bias_std), int(control_points)
        self.zoom_range = (zlo, zhi)
        self.max_shift = float(max_shift)
        self.flip_prob = float(flip_prob)
        self.max_rotation = math.radians(float(max_rotation_deg))
        self.intensity_range = (lo, hi)
        self.generator = generator

    def describe(self) -> str:
        """One line naming the active augmentations and their ranges (recorded in the prior's provenance)."""
        parts = []
        if self.flip_prob > 0:
            parts.append(f"left-right flip p={self.flip_prob:g}")
        if self.max_rotation > 0:
            deg = math.degrees(self.max_rotation)
            parts.append(f"rotation U(-{deg:g}, {deg:g}) deg")
        if self.zoom_range != (1.0, 1.0):
            parts.append(f"zoom U({self.zoom_range[0]:g}, {self.zoom_range[1]:g})")
        if self.max_shift > 0:
            pct = 100 * self.max_shift
            parts.append(f"shift U(-{pct:g}, {pct:g}) % per axis")
        if self.elastic_std > 0:
            parts.append(
                f"elastic displacement N(0, ({100 * self.elastic_std:g} % of side)^2) on a "
                f"{self.control_points}x{self.control_points} control grid, bicubic"
            )
        if self.bias_std > 0:
            parts.append(f"bias field exp(N(0, {self.bias_std:g}^2)) on a {self.control_points}x{self.control_points} grid")
        if self.intensity_range != (1.0, 1.0):
            parts.append(f"intensity x U({self.intensity_range[0]:g}, {self.intensity_range[1]:g})")
        return ", ".join(parts) if parts else "none"

    def _u(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if self._u() < self.flip_prob:
            img = img.flip(-1)
        a = (2 * self._u() - 1) * self.max_rotation if self.max_rotation > 0 else 0.0
        zlo, zhi = self.zoom_range
        zoom = zlo + (zhi - zlo) * self._u() if zhi > zlo else zlo
        shift = tuple((2 * self._u() - 1) * self.max_shift for _ in range(2)) if self.max_shift > 0 else (0.0, 0.0)
        hw = tuple(img.shape[-2:])
        disp = None
        if self.elastic_std > 0:
            disp = smooth_random_field(hw, 2, self.elastic_std, self.control_points, self.generator).permute(1, 2, 0)
        img = affine_resample(img, a, zoom, shift, disp)
        if self.bias_std > 0:
            img = img * smooth_random_field(hw, 1, self.bias_std, self.control_points, self.generator).exp()
            img = img / img.amax().clamp_min(1e-8)
        lo, hi = self.intensity_range
        img = img * (lo + (hi - lo) * self._u())
        return img.clamp(0, 1)
