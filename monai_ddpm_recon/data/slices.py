"""Slice preprocessing and the intensity scale rule: the one implementation that training and inference share.

Geometry (:func:`axial_slice`, :func:`pad_to_square`, :func:`resize`): an axial slice of a RAS volume is rotated so
that anterior is at the top and the subject's left on the left, zero-padded to a centred square (aspect kept) and
resized with antialiased bilinear interpolation (``align_corners=False``), negative overshoot clipped to 0. A slice
already at the requested size is returned unchanged; ``spatial_size=None`` (the bundle's ``image_size: null``)
keeps every slice at its own, possibly non-square, matrix size. Training (:func:`volume_slices`), the inference
loaders (:mod:`monai_ddpm_recon.transforms.io`) and the benchmarks call these functions.

Intensity scale rule (:func:`intensity_scale`, per batch item :func:`intensity_scales`; the only one): a magnitude ``m`` is divided by
``s = percentile_p(|ref|)``, a robust maximum (the maximum if that percentile is 0), and the prior sees
``2 · m / s - 1`` (:func:`to_model_range`); results return to physical units as ``s · (x + 1) / 2``
(:func:`from_model_range`). Who uses which ``ref`` and ``p``:

- training slices: ``ref`` = the slice itself, ``p = 100`` (``s`` = its maximum, images in ``[0, 1]``;
  :func:`normalise_max`);
- the diffusion solvers (:class:`~monai_ddpm_recon.solvers.mapping.PriorMapping`, ``scale_percentile``): ``ref`` =
  the zero-filled magnitude ``|Aᴴ y|``, ``p = 100`` (:data:`~monai_ddpm_recon.solvers.mapping.SCALE_PERCENTILE`: the
  maximum, as in training; undersampling lowers the peaks of ``|Aᴴ y|``, and a lower ``p`` put bright tissue above
  the prior's +1, where x̂0 is clipped);
- the inference transform :class:`~monai_ddpm_recon.transforms.NormalizeIntensityRanged` (for display and user
  pipelines, not used by the solvers): ``ref = |Aᴴ y|``, ``p = 99.5``, so a single hot pixel does not set the scale;
- compressed-sensing baselines (:func:`~monai_ddpm_recon.solvers.baselines.kspace_scale`): ``ref = |Aᴴ y|``,
  ``p = 99``, so ``λ`` does not depend on the data's units.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.validation import check_finite

COLIN27_PATH = "/usr/share/mricron/templates/ch2.nii.gz"
COLIN27_PACKAGE = "mricron-data"

# Held-out slab of Colin27 (voxel indices along the superior axis of the 181x217x181 RAS volume): z = 80..95
# cuts through the bodies of the lateral ventricles (checked visually; ventricles are visible from z~70 to ~100).
HELDOUT_SLAB = (80, 96)
HELDOUT_GAP = 4


@dataclass(frozen=True)
class SliceSplit:
    """Which axial slices of the held-out volume are held out (``[start, stop)``) and the gap kept unused."""

    start: int = HELDOUT_SLAB[0]
    stop: int = HELDOUT_SLAB[1]
    gap: int = HELDOUT_GAP

    def __post_init__(self) -> None:
        if self.stop - self.start < 1 or self.start < 0 or self.gap < 0:
            raise ValueError(f"invalid held-out slab [{self.start}, {self.stop}) with gap {self.gap}.")

    def is_heldout(self, z: int) -> bool:
        return self.start <= z < self.stop

    def is_excluded(self, z: int) -> bool:
        """True for held-out slices and for the gap slices next to them (never used for training)."""
        return self.start - self.gap <= z < self.stop + self.gap


def load_colin27(path: str | os.PathLike = COLIN27_PATH) -> np.ndarray:
    """Colin27 T1 volume as float32 ``(181, 217, 181)`` in RAS voxel order.

    Raises:
        FileNotFoundError: naming the Debian package ``mricron-data`` when the file is absent.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Colin27 template not found at {path!s}. Install the Debian package '{COLIN27_PACKAGE}' "
            f"(sudo apt-get install {COLIN27_PACKAGE}) or pass the path of ch2.nii.gz."
        )
    return load_nifti_ras(path)


def load_nifti_ras(path: str | os.PathLike) -> np.ndarray:
    """A 3D NIfTI volume reoriented to RAS, float32 ``(X, Y, Z)`` (axial slices are ``[:, :, z]``)."""
    import nibabel as nib

    if not os.path.isfile(path):
        raise FileNotFoundError(f"NIfTI volume not found: {path!s}.")
    img = nib.as_closest_canonical(nib.load(str(path)))
    data = np.asarray(img.get_fdata(dtype=np.float32))
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{path!s}: expected a 3D volume, got shape {data.shape}.")
    return data


def load_mni152() -> np.ndarray:
    """MNI152 T1 template at 1 mm from nilearn's wheel (no download), float32 RAS ``(197, 233, 189)``."""
    try:
        from nilearn.datasets import load_mni152_template
    except ImportError as e:  # pragma: no cover - optional dependency
        raise ImportError("MNI152 needs nilearn: pip install nilearn (or monai-ddpm-recon[data]).") from e
    import nibabel as nib

    img = nib.as_closest_canonical(load_mni152_template(resolution=1))
    return np.asarray(img.get_fdata(dtype=np.float32))


def axial_slice(volume: np.ndarray, z: int) -> np.ndarray:
    """Axial slice ``z`` of a RAS volume as ``(Y, X)``: anterior at the top, the subject's left on the left."""
    return np.ascontiguousarray(np.rot90(volume[:, :, z]))


def _as_torch(img) -> torch.Tensor:
    if isinstance(img, torch.Tensor):
        return img
    return torch.from_numpy(np.ascontiguousarray(img))


def pad_to_square(img: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Centre ``img (..., H, W)`` in a zero square of side ``max(H, W)``; numpy in, numpy out (dtype kept)."""
    x = _as_torch(img)
    h, w = x.shape[-2:]
    s = max(h, w)
    top, left = (s - h) // 2, (s - w) // 2
    out = F.pad(x, (left, s - w - left, top, s - h - top))
    return out if isinstance(img, torch.Tensor) else out.numpy()


def as_spatial_size(spatial_size: tuple[int, int] | int) -> tuple[int, int]:
    """``(H, W)`` of an int (square) or a pair of positive ints; a clear ``ValueError`` otherwise."""
    size = (spatial_size, spatial_size) if isinstance(spatial_size, (int, np.integer)) else tuple(spatial_size)
    if len(size) != 2 or any(int(v) != v or int(v) < 1 for v in size):
        raise ValueError(f"spatial_size must be an int or (H, W) of positive ints, got {spatial_size!r}.")
    return int(size[0]), int(size[1])


def resize(x: torch.Tensor, spatial_size: tuple[int, int] | int | None) -> torch.Tensor:
    """Resize real slices ``(N, H, W)`` (antialiased bilinear), clipped to ``>= 0``.

    Args:
        x: float tensor ``(N, H, W)``.
        spatial_size: ``(H', W')`` or an int (square); ``None`` or the current size returns ``x`` unchanged.

    Returns:
        float tensor ``(N, H', W')``.
    """
    if spatial_size is None:
        return x
    size = as_spatial_size(spatial_size)
    if tuple(x.shape[-2:]) == size:
        return x
    y = F.interpolate(x[:, None], size=size, mode="bilinear", antialias=True, align_corners=False)[:, 0]
    return y.clamp_min(0)


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Pad ``img (H, W)`` to a square and resize to ``(size, size)`` (antialiased bilinear), float32, ``>= 0``."""
    sq = pad_to_square(torch.from_numpy(np.array(img, dtype=np.float32)))
    return resize(sq[None], size)[0].clamp_min(0).numpy()


def intensity_scales(ref, percentile: float = 100.0, name: str = "ref") -> torch.Tensor:
    """The intensity scale rule per batch item: ``s_b = percentile_p(|ref_b|)``, or ``max |ref_b|`` if that is 0.

    Args:
        ref: real or complex numpy array or tensor ``(B, ...)``; each item is reduced over all its other axes.
        percentile: ``p`` in ``(0, 100]``; 100 gives the maximum.
        name: the argument named in errors.

    Returns:
        float64 tensor ``(B,)`` on ``ref``'s device; ``0`` for an all-zero item (the caller decides what that means).
        Items above 16 M elements use the maximum (``torch.quantile``'s input limit).

    Raises:
        ValueError: ``ref`` holds NaN/Inf or has no batch axis, or ``percentile`` is out of range.
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must lie in (0, 100], got {percentile!r}.")
    mag = _as_torch(ref).abs().to(torch.float64)
    if mag.ndim == 0 or mag.shape[0] == 0:
        raise ValueError(f"{name} must have a non-empty batch axis, got shape {tuple(mag.shape)}.")
    mag = mag.reshape(mag.shape[0], -1)
    check_finite(name, mag)
    if mag.shape[1] == 0:
        return torch.zeros(mag.shape[0], dtype=torch.float64, device=mag.device)
    peak = mag.amax(dim=1)
    if mag.shape[1] > 16_000_000 or percentile == 100:
        return peak
    scale = torch.quantile(mag, percentile / 100, dim=1)
    return torch.where(scale > 0, scale, peak)


def intensity_scale(ref, percentile: float = 100.0, name: str = "ref") -> float:
    """The intensity scale rule (see the module docstring) for one image: :func:`intensity_scales` of ``ref`` as a
    single item.

    Args:
        ref: real or complex numpy array or tensor, any shape.
        percentile: ``p`` in ``(0, 100]``; 100 gives the maximum.
        name: the argument named in errors.

    Returns:
        ``s > 0`` as a Python float (computed in float64; arrays above 16 M elements use the maximum).

    Raises:
        ValueError: ``ref`` is all zero (an empty slice) or holds NaN/Inf, or ``percentile`` is out of range.
    """
    scale = float(intensity_scales(_as_torch(ref).reshape(1, -1), percentile, name)[0])
    if scale <= 0:
        raise ValueError(f"{name} is all zero (an empty slice); cannot derive an intensity scale.")
    return scale


def normalise_max(img: np.ndarray) -> np.ndarray:
    """Training images: ``|img| / s`` with ``s = intensity_scale(img, 100)`` (the maximum), float32 in ``[0, 1]``.

    Raises:
        ValueError: an empty (all-zero) or non-finite slice.
    """
    img = np.abs(np.asarray(img, dtype=np.float32))
    return img / intensity_scale(img, 100.0, name="slice")


def to_model_range(x: np.ndarray | torch.Tensor):
    """``[0, 1]`` magnitude (``m / s``) -> the prior's ``[-1, 1]``: ``2 x - 1``."""
    return x * 2 - 1


def from_model_range(x: np.ndarray | torch.Tensor):
    """The prior's ``[-1, 1]`` -> ``[0, 1]`` magnitude: ``(x + 1) / 2`` (multiply by ``s`` for physical units)."""
    return (x + 1) / 2


def volume_slices(
    volume: np.ndarray,
    size: int,
    min_foreground: float = 0.15,
    exclude=None,
    reference_max: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Axial slices of ``volume`` resized to ``size`` and normalised to ``[0, 1]``, dropping near-empty ones.

    Args:
        volume: RAS float volume ``(X, Y, Z)``.
        size: output side length.
        min_foreground: drop slices where fewer than this fraction of the square-padded slice exceeds 10 % of
            ``reference_max``.
        exclude: optional callable ``z -> bool``; slices where it is True are skipped.
        reference_max: intensity for the foreground test (default: the volume maximum).

    Returns:
        ``(slices float32 (N, size, size) in [0, 1], z indices int64 (N,))``.
    """
    vmax = float(volume.max()) if reference_max is None else float(reference_max)
    if not np.isfinite(vmax) or vmax <= 0:
        raise ValueError("volume is empty or not finite.")
    out, zs = [], []
    for z in range(volume.shape[2]):
        if exclude is not None and exclude(z):
            continue
        sl = axial_slice(volume, z)
        if float((sl > 0.1 * vmax).sum()) / max(sl.shape) ** 2 < min_foreground:
            continue
        out.append(normalise_max(resize_square(sl, size)))
        zs.append(z)
    if not out:
        return np.zeros((0, size, size), np.float32), np.zeros((0,), np.int64)
    return np.stack(out).astype(np.float32), np.asarray(zs, dtype=np.int64)
