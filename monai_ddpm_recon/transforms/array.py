"""MONAI array transforms: load, simulate coils, undersample, zero-fill, normalise to the diffusion range.

Conventions (no batch dimension, channel first, like MONAI): magnitude image ``(1, H, W)`` float32; complex image
``(1, H, W)`` complex64; k-space and coil maps ``(C, H, W)`` complex64 (``C = 1`` single-coil); masks ``(1, 1, W)``
(column mask) or ``(1, H, W)`` (2D). Adding a batch dimension (``x[None]`` or a DataLoader) gives exactly the
shapes of :mod:`monai_ddpm_recon.operators`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from monai.transforms import Randomizable, Transform

from ..data.slices import as_spatial_size, intensity_scale, pad_to_square, resize
from ..operators import birdcage_maps, effective_acceleration, espirit_maps, fft2c, ifft2c, make_mask
from ..operators.masks import MaskType
from ..utils.enums import StrEnum
from ..utils.validation import check_complex, check_finite, check_positive
from .io import load_nifti_slices, load_npy_slices, read_fastmri_slice

__all__ = [
    "CropKspace",
    "DenormalizeIntensityRange",
    "EstimateCoilMaps",
    "LoadFastMRISlice",
    "LoadNiftiSlices",
    "LoadNpySlices",
    "NormalizeIntensityRange",
    "ResizeSlices",
    "SimulateKspace",
    "SimulatedKspace",
    "UndersampleKspace",
    "ZeroFillMode",
    "ZeroFilled",
    "robust_scale",
]


def _as_tensor(name: str, x) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}.")
    return x.as_tensor() if hasattr(x, "as_tensor") else x  # drop MetaTensor wrappers


def _check_kspace(name: str, k) -> torch.Tensor:
    k = check_complex(name, _as_tensor(name, k))
    if k.ndim != 3:
        raise ValueError(f"{name} has shape {tuple(k.shape)}; expected (C, H, W) (no batch dimension).")
    return check_finite(name, k)


def _check_magnitude(name: str, img) -> torch.Tensor:
    img = _as_tensor(name, img)
    if torch.is_complex(img):
        raise TypeError(f"{name} must be a real magnitude image, got complex dtype {img.dtype}.")
    if img.ndim == 2:
        img = img[None]
    if img.ndim != 3 or img.shape[0] != 1:
        raise ValueError(f"{name} has shape {tuple(img.shape)}; expected (1, H, W) or (H, W).")
    return check_finite(name, img.to(torch.float32))


class LoadFastMRISlice(Transform):
    """Load one slice of a fastMRI ``.h5`` file (single- or multi-coil); see :func:`.io.read_fastmri_slice`.

    Args:
        slice_index: slice to read (``None``: the middle slice); overridable per call.
        recon_key: ``"auto"``, an explicit reconstruction dataset name, or ``None``.

    Returns (per call): a dict with ``kspace`` complex64 ``(C, H, W)``, ``mask`` float32 ``(1, 1, W)`` or ``None``,
    ``target`` float32 ``(1, h, w)`` or ``None`` and ``meta``.
    """

    def __init__(self, slice_index: int | None = None, recon_key: str | None = "auto") -> None:
        self.slice_index = slice_index
        self.recon_key = recon_key

    def __call__(self, path, slice_index: int | None = None) -> dict:
        idx = self.slice_index if slice_index is None else slice_index
        return read_fastmri_slice(path, slice_index=idx, recon_key=self.recon_key)


class LoadNiftiSlices(Transform):
    """Load a NIfTI volume as axial magnitude slices ``(N, H, W)`` float32 (see :func:`.io.load_nifti_slices`).

    Args:
        slice_index: int (gives ``(1, H, W)``), sequence of ints, or ``None`` (all slices); overridable per call.
        spatial_size: output ``(H, W)`` or int; ``None`` keeps the size.
        pad_to_square: zero-pad to a square before resizing (keeps the aspect ratio).
    """

    def __init__(
        self,
        slice_index: int | Sequence[int] | None = None,
        spatial_size: tuple[int, int] | int | None = None,
        pad_to_square: bool = True,
    ) -> None:
        self.slice_index = slice_index
        self.spatial_size = spatial_size
        self.pad_to_square = pad_to_square

    def __call__(self, path, slice_index: int | Sequence[int] | None = None) -> tuple[torch.Tensor, dict]:
        idx = self.slice_index if slice_index is None else slice_index
        return load_nifti_slices(path, idx, self.spatial_size, self.pad_to_square)



class LoadNpySlices(Transform):
    """Load magnitude slices ``(N, H, W)`` float32 from a ``.npy`` stack (see :func:`.io.load_npy_slices`).

    Args:
        slice_index: int (gives ``(1, H, W)``), sequence of ints, or ``None`` (all slices); overridable per call.
    """

    def __init__(self, slice_index: int | Sequence[int] | None = None) -> None:
        self.slice_index = slice_index

    def __call__(self, path, slice_index: int | Sequence[int] | None = None) -> torch.Tensor:
        idx = self.slice_index if slice_index is None else slice_index
        return load_npy_slices(path, idx)


class ResizeSlices(Transform):
    """Zero-pad real slices ``(N, H, W)`` to a centred square and resize them (antialiased bilinear, ``>= 0``).

    The one slice preprocessing of :mod:`monai_ddpm_recon.data.slices`. Slices already of ``spatial_size`` are
    returned unchanged, as are all slices when ``spatial_size`` is ``None`` (native matrix size).

    Args:
        spatial_size: output ``(H, W)``, an int (square) or ``None`` (keep every slice's own size).
        pad_to_square: zero-pad to a square before resizing (keeps the aspect ratio).
    """

    def __init__(self, spatial_size: tuple[int, int] | int | None, pad_to_square: bool = True) -> None:
        self.spatial_size = spatial_size
        self.pad_to_square = pad_to_square

    def __call__(self, img) -> torch.Tensor:
        x = _as_tensor("img", img)
        if self.spatial_size is None or tuple(x.shape[-2:]) == as_spatial_size(self.spatial_size):
            return x
        return resize(pad_to_square(x) if self.pad_to_square else x, self.spatial_size)


class CropKspace(Transform):
    """Low-resolution k-space ``(C, size, size)`` of the full field of view of k-space ``(C, H, W)``.

    fastMRI k-space is oversampled 2× along the readout (H): the image is first cropped to a square of the
    phase-encode width ``s = min(H, W)`` (removing the oversampling), then the central ``size × size`` block of its
    k-space is kept and scaled by ``size / s`` (so image intensities keep their units). ``size=None`` returns the
    k-space at its own size.

    Args:
        size: side of the output matrix, ``<= min(H, W)``, or ``None``.
    """

    def __init__(self, size: int | None) -> None:
        if size is not None and int(size) < 1:
            raise ValueError(f"size must be a positive int or None, got {size!r}.")
        self.size = None if size is None else int(size)

    def __call__(self, kspace) -> torch.Tensor:
        k = _check_kspace("kspace", kspace)
        if self.size is None:
            return k
        img = ifft2c(k)
        h, w = img.shape[-2:]
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        k = fft2c(img[:, top : top + s, left : left + s])
        if self.size > s:
            raise ValueError(f"image_size={self.size} exceeds the data's resolution {s}.")
        c = s // 2 - self.size // 2
        return k[:, c : c + self.size, c : c + self.size].contiguous() * (self.size / s)


class SimulatedKspace(NamedTuple):
    """Output of :class:`SimulateKspace` (all without batch dimension)."""

    kspace: torch.Tensor  # (C, H, W) complex64, fully sampled, noisy if snr_db is set
    image: torch.Tensor  # (1, H, W) complex64 ground truth: magnitude * exp(i phase)
    sens_maps: torch.Tensor  # (C, H, W) complex64, Σ_c |S_c|² = 1


class SimulateKspace(Randomizable, Transform):
    """Simulate fully sampled multi-coil k-space from a magnitude image.

    ``image = magnitude · exp(iφ)``, ``kspace_c = F(S_c · image) + n_c`` with

    - ``S``: birdcage maps (``sigpy.mri.birdcage_maps``) normalised so ``Σ_c |S_c|² = 1``; for ``num_coils = 1``
      the map is 1 (plain single-coil data);
    - ``φ``: a smooth random phase, a polynomial of total degree ``≤ phase_order`` in coordinates scaled to
      ``[-1, 1]`` with standard-normal coefficients, rescaled so ``max|φ| = max_phase`` (``phase_order = 0`` or
      ``max_phase = 0``: real image);
    - ``n``: complex white Gaussian noise, independent across coils, with variance per complex sample
      ``σ² = mean(|F(S·image)|²) / 10^(snr_db / 10)`` (``snr_db = None``: noiseless).

    Randomness (phase, noise) comes from ``self.R`` (seeded by ``seed``, or by ``set_random_state``), so a pipeline
    is reproducible and successive calls draw new phases.

    Args:
        num_coils: number of coils ``C >= 1``.
        coil_radius: birdcage radius relative to the field of view (sigpy's ``r``).
        phase_order: maximum total degree of the phase polynomial.
        max_phase: peak phase magnitude in radians.
        snr_db: k-space SNR in dB, or ``None``.
        seed: seed of ``self.R``.
    """

    def __init__(
        self,
        num_coils: int = 8,
        coil_radius: float = 1.5,
        phase_order: int = 2,
        max_phase: float = math.pi / 2,
        snr_db: float | None = None,
        seed: int | None = 0,
    ) -> None:
        if int(num_coils) < 1:
            raise ValueError(f"num_coils must be >= 1, got {num_coils!r}.")
        if int(phase_order) < 0:
            raise ValueError(f"phase_order must be >= 0, got {phase_order!r}.")
        self.num_coils = int(num_coils)
        self.coil_radius = check_positive("coil_radius", coil_radius)
        self.phase_order = int(phase_order)
        self.max_phase = check_positive("max_phase", max_phase, allow_zero=True)
        self.snr_db = None if snr_db is None else float(snr_db)
        if self.snr_db is not None and not math.isfinite(self.snr_db):
            raise ValueError(f"snr_db must be finite or None, got {snr_db!r}.")
        self._maps_cache: dict[tuple[int, int], torch.Tensor] = {}
        self.set_random_state(seed=seed)

    def randomize(self, data=None) -> None:  # randomness is drawn inside __call__ from self.R
        pass

    def sens_maps(self, image_shape: tuple[int, int]) -> torch.Tensor:
        """Coil maps ``(C, H, W)`` complex64 for an image shape (cached)."""
        key = (int(image_shape[0]), int(image_shape[1]))
        if key not in self._maps_cache:
            if self.num_coils == 1:
                self._maps_cache[key] = torch.ones(1, *key, dtype=torch.complex64)
            else:
                self._maps_cache[key] = birdcage_maps(self.num_coils, key, r=self.coil_radius)[0]
        return self._maps_cache[key]

    def random_phase(self, image_shape: tuple[int, int]) -> torch.Tensor:
        """Draw a smooth phase map ``(H, W)`` float32 (radians) from ``self.R``."""
        h, w = image_shape
        if self.phase_order == 0 or self.max_phase == 0:
            return torch.zeros(h, w)
        y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
        terms = [x**i * y**j for i in range(self.phase_order + 1) for j in range(self.phase_order + 1 - i)]
        coeffs = self.R.standard_normal(len(terms))
        phase = sum(c * t for c, t in zip(coeffs, terms))
        peak = np.abs(phase).max()
        phase = phase * (self.max_phase / peak) if peak > 0 else phase
        return torch.from_numpy(phase.astype(np.float32))

    def __call__(self, img) -> SimulatedKspace:
        """``img``: real magnitude ``(1, H, W)`` or ``(H, W)``. Returns a :class:`SimulatedKspace`."""
        mag = _check_magnitude("image", img)
        shape = (int(mag.shape[-2]), int(mag.shape[-1]))
        phase = self.random_phase(shape).to(mag.device)
        image = (mag * torch.exp(1j * phase)).to(torch.complex64)
        maps = self.sens_maps(shape).to(mag.device)
        kspace = fft2c(maps * image)
        if self.snr_db is not None:
            power = float((kspace.abs() ** 2).mean())
            sigma = math.sqrt(power / 10 ** (self.snr_db / 10))
            noise = self.R.standard_normal((2, *kspace.shape)).astype(np.float32) * (sigma / math.sqrt(2))
            kspace = kspace + torch.complex(torch.from_numpy(noise[0]), torch.from_numpy(noise[1])).to(kspace.device)
        return SimulatedKspace(kspace=kspace.to(torch.complex64), image=image, sens_maps=maps)


class UndersampleKspace(Transform):
    """Apply a sampling mask from :func:`~monai_ddpm_recon.operators.make_mask` to k-space ``(C, H, W)``.

    With an integer ``seed`` the mask is fixed (the same for every call with the same image shape); with
    ``seed=None`` each call draws a new mask. The nominal and effective accelerations of the last mask are kept in
    ``self.acceleration`` and ``self.effective_acceleration``.

    Args:
        mask_type: ``"random"``, ``"equispaced"`` (1D columns, fully sampled centre) or ``"poisson"`` (2D).
        acceleration: nominal acceleration ``R``.
        center_fraction: fully sampled central fraction of columns (1D masks).
        seed: mask seed.
        calib_size: fully sampled calibration square (Poisson masks).
    """

    def __init__(
        self,
        mask_type: MaskType | str = MaskType.RANDOM,
        acceleration: float = 4,
        center_fraction: float = 0.08,
        seed: int | None = 0,
        calib_size: int = 16,
    ) -> None:
        self.mask_type = MaskType.parse(mask_type, "mask_type")
        self.acceleration = check_positive("acceleration", acceleration)
        self.center_fraction = center_fraction
        self.seed = seed
        self.calib_size = calib_size
        self.effective_acceleration: float | None = None
        self._cache: dict[tuple[int, int, int], torch.Tensor] = {}

    def make(self, image_shape: tuple[int, int], seed: int | None = None) -> torch.Tensor:
        """The mask for ``image_shape``: float32 ``(1, 1, W)`` or ``(1, H, W)``; ``seed`` overrides ``self.seed``."""
        seed = self.seed if seed is None else int(seed)
        key = (seed, int(image_shape[0]), int(image_shape[1]))
        if seed is not None and key in self._cache:
            return self._cache[key]
        mask = make_mask(self.mask_type, key[1:], self.acceleration, self.center_fraction, seed, self.calib_size)[0]
        if seed is not None:
            self._cache[key] = mask
        return mask

    def __call__(self, kspace, mask=None, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(masked kspace (C, H, W), mask)``; pass ``mask`` to apply a given mask instead of making one, or
        ``seed`` to draw this call's mask with that seed (one mask per case, as in fastMRI's evaluation)."""
        k = _check_kspace("kspace", kspace)
        shape = (int(k.shape[-2]), int(k.shape[-1]))
        if mask is None:
            mask = self.make(shape, seed)
        else:
            mask = _as_tensor("mask", mask).to(torch.float32)
            while mask.ndim < 3:
                mask = mask[None]
            if mask.ndim != 3 or mask.shape[0] != 1 or mask.shape[-1] != shape[1] or mask.shape[-2] not in (1, shape[0]):
                raise ValueError(f"mask has shape {tuple(mask.shape)}; expected (1, 1, {shape[1]}) or (1, {shape[0]}, {shape[1]}).")
        self.effective_acceleration = effective_acceleration(mask[None], shape)
        return k * mask.to(k.device, k.real.dtype), mask


class EstimateCoilMaps(Transform):
    """ESPIRiT coil maps ``(C, H, W)`` complex64 from k-space ``(C, H, W)`` with a fully sampled centre.

    Args:
        calib_width: calibration width (>= 16, see :func:`~monai_ddpm_recon.operators.espirit_maps`).
        kwargs: further :func:`espirit_maps` arguments (``thresh``, ``crop``, ``max_iter``).
    """

    def __init__(self, calib_width: int = 24, **kwargs) -> None:
        self.calib_width = calib_width
        self.kwargs = kwargs

    def __call__(self, kspace) -> torch.Tensor:
        k = _check_kspace("kspace", kspace)
        if k.shape[0] == 1:
            return torch.ones_like(k, dtype=torch.complex64)
        return espirit_maps(k, calib_width=self.calib_width, **self.kwargs)[0].to(k.device)


class ZeroFillMode(StrEnum):
    """Zero-filled reconstructions: ``rss`` = ``sqrt(Σ_c |F⁻¹ y_c|²)`` (magnitude); ``sense`` = ``Aᴴ y``
    (complex, coil-combined with the maps; equals the image for full sampling when ``Σ|S|² = 1``)."""

    RSS = "rss"
    SENSE = "sense"


class ZeroFilled(Transform):
    """Zero-filled reconstruction of k-space ``(C, H, W)``.

    Args:
        mode: ``"rss"`` → float32 ``(1, H, W)``; ``"sense"`` → complex64 ``(1, H, W)``, needs ``sens_maps``
            (or ``C = 1``, where the map is 1).
    """

    def __init__(self, mode: ZeroFillMode | str = ZeroFillMode.RSS) -> None:
        self.mode = ZeroFillMode.parse(mode, "mode")

    def __call__(self, kspace, sens_maps=None, mask=None) -> torch.Tensor:
        k = _check_kspace("kspace", kspace)
        if self.mode == ZeroFillMode.RSS:
            return ifft2c(k).abs().pow(2).sum(dim=0, keepdim=True).sqrt()
        if sens_maps is None:
            if k.shape[0] != 1:
                raise ValueError(
                    f"sens_maps is required for a SENSE-combined zero-filled image of {k.shape[0]}-coil k-space "
                    "(estimate them with EstimateCoilMaps)."
                )
            sens_maps = torch.ones_like(k)
        maps = check_complex("sens_maps", _as_tensor("sens_maps", sens_maps))
        if tuple(maps.shape) != tuple(k.shape):
            raise ValueError(f"sens_maps has shape {tuple(maps.shape)}; expected the k-space shape {tuple(k.shape)}.")
        if mask is not None:
            m = _as_tensor("mask", mask).to(k.device, k.real.dtype)
            if m.ndim != 3 or m.shape[0] != 1 or m.shape[-1] != k.shape[-1] or m.shape[-2] not in (1, k.shape[-2]):
                raise ValueError(f"mask has shape {tuple(m.shape)}; expected (1, 1, {k.shape[-1]}) or (1, {k.shape[-2]}, {k.shape[-1]}).")
            k = k * m
        # Aᴴ y = Σ_c S_cᴴ F⁻¹ M y_c, the image factor first: its (contiguous) layout fixes the coil sum's order
        return (ifft2c(k) * maps.to(k.dtype).conj()).sum(dim=0, keepdim=True)


def robust_scale(ref, percentile: float = 99.5) -> float:
    """The inference intensity scale: :func:`~monai_ddpm_recon.data.slices.intensity_scale` at ``percentile``
    (99.5 by default, a robust maximum of ``|ref|``; see that module for the one scale rule).

    Raises ``ValueError`` if ``ref`` is all zero or not finite.
    """
    return intensity_scale(_as_tensor("ref", ref), percentile, name="ref")


class NormalizeIntensityRange(Transform):
    """Map a magnitude image to the diffusion range: ``x = 2 · img / scale - 1`` (so ``0 → -1``, ``scale → 1``).

    ``scale`` defaults to :func:`robust_scale` of the image itself. Values above the scale exceed 1 unless
    ``clip=True`` (then clipped to ``[-1, 1]``, which is not invertible).
    """

    def __init__(self, percentile: float = 99.5, clip: bool = False) -> None:
        self.percentile = percentile
        self.clip = clip

    def __call__(self, img, scale: float | None = None) -> torch.Tensor:
        x = _as_tensor("img", img)
        if torch.is_complex(x):
            raise TypeError("img must be a real magnitude image; divide complex data by the scale instead.")
        s = robust_scale(x, self.percentile) if scale is None else check_positive("scale", scale)
        out = 2 * x / s - 1
        return out.clamp(-1, 1) if self.clip else out


class DenormalizeIntensityRange(Transform):
    """Inverse of :class:`NormalizeIntensityRange`: ``img = (x + 1) / 2 · scale``."""

    def __call__(self, x, scale) -> torch.Tensor:
        x = _as_tensor("x", x)
        s = torch.as_tensor(scale, dtype=x.real.dtype, device=x.device)
        if s.ndim == 1 and x.ndim > 1:  # a collated batch of scales (B,) against (B, ...)
            s = s.reshape(-1, *([1] * (x.ndim - 1)))
        return (x + 1) / 2 * s
