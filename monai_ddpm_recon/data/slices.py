"""Axial 2D slices from brain MRI volumes, resized and normalised for the DDPM prior.

Intensity convention: every slice is a non-negative magnitude image divided by its own maximum, so it lies in
``[0, 1]`` (``magnitude`` convention); the prior sees ``2 * x - 1`` in ``[-1, 1]``. Slices are padded to a square
(centred, zero padding, aspect kept) and resized with antialiased bilinear interpolation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

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


def pad_to_square(img: np.ndarray) -> np.ndarray:
    """Centre ``img (H, W)`` in a zero square of side ``max(H, W)``."""
    h, w = img.shape
    s = max(h, w)
    out = np.zeros((s, s), dtype=img.dtype)
    top, left = (s - h) // 2, (s - w) // 2
    out[top : top + h, left : left + w] = img
    return out


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Pad ``img (H, W)`` to a square and resize to ``(size, size)`` (antialiased bilinear), float32."""
    sq = torch.from_numpy(pad_to_square(np.asarray(img, dtype=np.float32)))[None, None]
    out = F.interpolate(sq, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out[0, 0].clamp_min(0).numpy()


def normalise_max(img: np.ndarray) -> np.ndarray:
    """Magnitude convention: ``|img| / max |img|`` in ``[0, 1]``; raises on an empty (all-zero) slice."""
    img = np.abs(np.asarray(img, dtype=np.float32))
    m = float(img.max())
    if not np.isfinite(m) or m <= 0:
        raise ValueError("cannot normalise an empty or non-finite slice (max must be finite and > 0).")
    return img / m


def to_model_range(x: np.ndarray | torch.Tensor):
    """``[0, 1]`` magnitude -> the prior's ``[-1, 1]``."""
    return x * 2 - 1


def from_model_range(x: np.ndarray | torch.Tensor):
    """The prior's ``[-1, 1]`` -> ``[0, 1]`` magnitude."""
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
