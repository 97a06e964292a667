"""MONAI dictionary transforms wrapping :mod:`.array`; they compose in one ``monai.transforms.Compose``.

Dictionary keys (defaults, see :class:`ReconKeys`) and their contents, all without a batch dimension:

=====================  ==========================================================================================
``image``              input: path or magnitude ``(1, H, W)``; after :class:`SimulateKspaced`: complex64 ground
                       truth ``(1, H, W)`` (magnitude · exp(iφ))
``target``             float32 magnitude ground truth ``(1, H, W)`` (what metrics compare against)
``kspace``             complex64 ``(C, H, W)``: fully sampled after simulation/loading, masked after
                       :class:`UndersampleKspaced` (the measured data a solver gets)
``kspace_full``        optional copy of the fully sampled k-space (``full_key``)
``sens_maps``          complex64 ``(C, H, W)``, ``Σ_c |S_c|² = 1`` for simulated maps
``mask``               float32 ``(1, 1, W)`` column mask or ``(1, H, W)`` 2D mask
``acceleration``       nominal acceleration (float); ``effective_acceleration``: ``H·W / #samples`` (float)
``zf_rss``             float32 ``(1, H, W)`` root-sum-of-squares zero-filled image
``zf_sense``           complex64 ``(1, H, W)`` SENSE-combined zero-filled image ``Aᴴ y``
``scale``              float: intensity scale (see :class:`NormalizeIntensityRanged`)
``slice_index``        optional per-item slice of a loader; ``seed``: optional per-item mask seed
``<key>_meta_dict``    metadata of loaded files
=====================  ==========================================================================================

A solver adds the batch dimension (``d["kspace"][None]`` or a DataLoader) and builds
``SenseOperator(d["sens_maps"][None], d["mask"][None])``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable

from ..operators.masks import MaskType
from ..utils.validation import check_positive
from .array import (
    CropKspace,
    DenormalizeIntensityRange,
    EstimateCoilMaps,
    LoadFastMRISlice,
    LoadNiftiSlices,
    LoadNpySlices,
    NormalizeIntensityRange,
    ResizeSlices,
    SimulateKspace,
    UndersampleKspace,
    ZeroFilled,
    ZeroFillMode,
    robust_scale,
)

__all__ = [
    "CropKspaced",
    "DenormalizeIntensityRanged",
    "EstimateCoilMapsd",
    "LoadFastMRISliced",
    "LoadNiftiSliced",
    "LoadMagnitudeSliced",
    "NormalizeIntensityRanged",
    "ReconKeys",
    "ResizeSlicesd",
    "SimulateKspaced",
    "UndersampleKspaced",
    "ZeroFilledd",
]


class ReconKeys:
    """Default dictionary keys used by the transforms, solvers and bundle."""

    IMAGE = "image"
    TARGET = "target"
    KSPACE = "kspace"
    KSPACE_FULL = "kspace_full"
    SENS_MAPS = "sens_maps"
    MASK = "mask"
    ACCELERATION = "acceleration"
    EFFECTIVE_ACCELERATION = "effective_acceleration"
    ZF_RSS = "zf_rss"
    ZF_SENSE = "zf_sense"
    SCALE = "scale"
    SLICE_INDEX = "slice_index"
    SEED = "seed"


def _single_key(transform: MapTransform) -> Hashable:
    if len(transform.keys) != 1:
        raise ValueError(f"{type(transform).__name__} takes exactly one key, got {transform.keys!r}.")
    return transform.keys[0]


class LoadFastMRISliced(MapTransform):
    """Load one slice of the fastMRI ``.h5`` file whose path is in ``d[key]`` (see :class:`.array.LoadFastMRISlice`).

    Writes ``d[key]`` = k-space ``(C, H, W)`` complex64, ``d[mask_key]`` (if the file has a mask),
    ``d[target_key]`` (if it has a reconstruction), ``d[f"{key}_meta_dict"]``. A ``d[slice_key]`` entry overrides
    ``slice_index`` per item.
    """

    def __init__(
        self,
        keys: KeysCollection = ReconKeys.KSPACE,
        slice_index: int | None = None,
        recon_key: str | None = "auto",
        slice_key: str = ReconKeys.SLICE_INDEX,
        mask_key: str = ReconKeys.MASK,
        target_key: str = ReconKeys.TARGET,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadFastMRISlice(slice_index=slice_index, recon_key=recon_key)
        self.slice_key, self.mask_key, self.target_key = slice_key, mask_key, target_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            out = self.loader(d[key], slice_index=d.get(self.slice_key))
            d[key] = out["kspace"]
            if out["mask"] is not None:
                d[self.mask_key] = out["mask"]
            if out["target"] is not None:
                d[self.target_key] = out["target"]
            d[f"{key}_meta_dict"] = out["meta"]
        return d


class LoadNiftiSliced(MapTransform):
    """Load axial magnitude slices ``(N, H, W)`` float32 from the NIfTI path in ``d[key]``.

    With an int ``slice_index`` (or ``d[slice_key]``) the result is one slice ``(1, H, W)``, ready for
    :class:`SimulateKspaced`. Metadata goes to ``d[f"{key}_meta_dict"]``.
    """

    def __init__(
        self,
        keys: KeysCollection = ReconKeys.IMAGE,
        slice_index: int | Sequence[int] | None = None,
        spatial_size: tuple[int, int] | int | None = None,
        pad_to_square: bool = True,
        slice_key: str = ReconKeys.SLICE_INDEX,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadNiftiSlices(slice_index, spatial_size, pad_to_square)
        self.slice_key = slice_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key], d[f"{key}_meta_dict"] = self.loader(d[key], slice_index=d.get(self.slice_key))
        return d



class LoadMagnitudeSliced(MapTransform):
    """Load magnitude slices ``(N, H, W)`` float32, at the input's own matrix size, from the path in ``d[key]``.

    A NIfTI volume (``.nii``/``.nii.gz``) is read by :class:`.array.LoadNiftiSlices` (RAS, anterior at the top,
    no padding or resizing); a ``.npy`` stack ``(N, [1,] H, W)`` by :class:`.array.LoadNpySlices`. With an int
    ``slice_index`` (or ``d[slice_key]``) the result is one slice ``(1, H, W)``. Metadata (filename, slice
    indices and, for NIfTI, the affine) goes to ``d[f"{key}_meta_dict"]``.
    """

    def __init__(
        self,
        keys: KeysCollection = ReconKeys.IMAGE,
        slice_index: int | Sequence[int] | None = None,
        slice_key: str = ReconKeys.SLICE_INDEX,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.nifti = LoadNiftiSlices(slice_index, spatial_size=None, pad_to_square=False)
        self.npy = LoadNpySlices(slice_index)
        self.slice_key = slice_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            path, idx = str(d[key]), d.get(self.slice_key)
            if path.lower().endswith(".npy"):
                d[key] = self.npy(path, slice_index=idx)
                d[f"{key}_meta_dict"] = {"filename": path, "slice_indices": idx if idx is not None else self.npy.slice_index}
            elif path.lower().endswith((".nii", ".nii.gz")):
                d[key], d[f"{key}_meta_dict"] = self.nifti(path, slice_index=idx)
            else:
                raise ValueError(f"{key}: {path!r} is neither a NIfTI (.nii, .nii.gz) nor a .npy file.")
        return d


class ResizeSlicesd(MapTransform):
    """Pad to a square and resize the slices in ``d[key]`` (see :class:`.array.ResizeSlices`); ``spatial_size=None``
    keeps their own matrix size."""

    def __init__(
        self,
        keys: KeysCollection = ReconKeys.IMAGE,
        spatial_size: tuple[int, int] | int | None = None,
        pad_to_square: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.resizer = ResizeSlices(spatial_size, pad_to_square)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.resizer(d[key])
        return d


class CropKspaced(MapTransform):
    """Crop the k-space in ``d[key]`` to the full field of view at ``size × size`` (see :class:`.array.CropKspace`);
    ``size=None`` keeps it at its own size."""

    def __init__(self, keys: KeysCollection = ReconKeys.KSPACE, size: int | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.crop = CropKspace(size)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.crop(d[key])
        return d


class SimulateKspaced(Randomizable, MapTransform):
    """Simulate multi-coil k-space from the magnitude image in ``d[key]`` (see :class:`.array.SimulateKspace`).

    Writes ``d[target_key]`` (float32 magnitude ``(1, H, W)``, the input), ``d[key]`` (complex64 ground truth
    ``(1, H, W)``), ``d[maps_key]`` (``(C, H, W)``) and ``d[kspace_key]`` (fully sampled ``(C, H, W)``).
    Randomness follows ``set_random_state`` (also called by ``Compose.set_random_state``).
    """

    def __init__(
        self,
        keys: KeysCollection = ReconKeys.IMAGE,
        num_coils: int = 8,
        coil_radius: float = 1.5,
        phase_order: int = 2,
        max_phase: float = math.pi / 2,
        snr_db: float | None = None,
        seed: int | None = 0,
        target_key: str = ReconKeys.TARGET,
        kspace_key: str = ReconKeys.KSPACE,
        maps_key: str = ReconKeys.SENS_MAPS,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        _single_key(self)
        self.simulator = SimulateKspace(num_coils, coil_radius, phase_order, max_phase, snr_db, seed)
        self.target_key, self.kspace_key, self.maps_key = target_key, kspace_key, maps_key

    def set_random_state(self, seed=None, state=None) -> SimulateKspaced:
        super().set_random_state(seed, state)
        self.simulator.set_random_state(seed, state)
        return self

    def randomize(self, data=None) -> None:
        pass

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            out = self.simulator(d[key])
            d[self.target_key] = out.image.abs().to(torch.float32)
            d[key] = out.image
            d[self.maps_key] = out.sens_maps
            d[self.kspace_key] = out.kspace
        return d


class UndersampleKspaced(MapTransform):
    """Mask the k-space in ``d[key]`` (see :class:`.array.UndersampleKspace`).

    Writes the masked k-space back to ``d[key]``, the mask to ``d[mask_key]``, the nominal and effective
    accelerations to ``d[acceleration_key]`` / ``d[effective_acceleration_key]`` and, if ``full_key`` is set, the
    fully sampled k-space to ``d[full_key]``. With ``use_existing_mask=True`` a mask already in ``d[mask_key]``
    (e.g. from a fastMRI test file) is applied instead of a new one. An int in ``d[seed_key]`` seeds this item's
    mask (one mask per case); without it the transform's ``seed`` is used.
    """

    def __init__(
        self,
        keys: KeysCollection = ReconKeys.KSPACE,
        mask_type: MaskType | str = MaskType.RANDOM,
        acceleration: float = 4,
        center_fraction: float = 0.08,
        seed: int | None = 0,
        calib_size: int = 16,
        mask_key: str = ReconKeys.MASK,
        full_key: str | None = None,
        acceleration_key: str = ReconKeys.ACCELERATION,
        effective_acceleration_key: str = ReconKeys.EFFECTIVE_ACCELERATION,
        use_existing_mask: bool = False,
        seed_key: str = ReconKeys.SEED,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.undersample = UndersampleKspace(mask_type, acceleration, center_fraction, seed, calib_size)
        self.mask_key, self.full_key, self.seed_key = mask_key, full_key, seed_key
        self.acceleration_key, self.effective_acceleration_key = acceleration_key, effective_acceleration_key
        self.use_existing_mask = use_existing_mask

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            given = d.get(self.mask_key) if self.use_existing_mask else None
            if self.use_existing_mask and given is None:
                raise ValueError(f"use_existing_mask=True but the data has no {self.mask_key!r} entry.")
            if self.full_key is not None:
                d[self.full_key] = d[key]
            d[key], d[self.mask_key] = self.undersample(d[key], mask=given, seed=d.get(self.seed_key))
            d[self.acceleration_key] = (
                self.undersample.effective_acceleration if given is not None else self.undersample.acceleration
            )
            d[self.effective_acceleration_key] = self.undersample.effective_acceleration
        return d


class EstimateCoilMapsd(MapTransform):
    """ESPIRiT coil maps from the k-space in ``d[key]`` into ``d[maps_key]`` (see :class:`.array.EstimateCoilMaps`)."""

    def __init__(
        self,
        keys: KeysCollection = ReconKeys.KSPACE,
        calib_width: int = 24,
        maps_key: str = ReconKeys.SENS_MAPS,
        allow_missing_keys: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.estimate = EstimateCoilMaps(calib_width, **kwargs)
        self.maps_key = maps_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.maps_key] = self.estimate(d[key])
        return d


class ZeroFilledd(MapTransform):
    """Zero-filled reconstructions of the k-space in ``d[key]`` (see :class:`.array.ZeroFilled`).

    ``modes`` ⊆ {``"rss"``, ``"sense"``}: RSS magnitude into ``d[rss_key]`` (float32 ``(1, H, W)``); SENSE-combined
    ``Aᴴ y`` into ``d[sense_key]`` (complex64 ``(1, H, W)``, uses ``d[maps_key]`` and ``d[mask_key]``).
    """

    def __init__(
        self,
        keys: KeysCollection = ReconKeys.KSPACE,
        modes: Sequence[ZeroFillMode | str] | ZeroFillMode | str = (ZeroFillMode.RSS, ZeroFillMode.SENSE),
        maps_key: str = ReconKeys.SENS_MAPS,
        mask_key: str = ReconKeys.MASK,
        rss_key: str = ReconKeys.ZF_RSS,
        sense_key: str = ReconKeys.ZF_SENSE,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        _single_key(self)
        modes = [modes] if isinstance(modes, str) else list(modes)
        self.zero_filled = {mode: ZeroFilled(mode) for mode in (ZeroFillMode.parse(m, "modes") for m in modes)}
        self.maps_key, self.mask_key, self.rss_key, self.sense_key = maps_key, mask_key, rss_key, sense_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            for mode, zero_filled in self.zero_filled.items():
                out = zero_filled(d[key], sens_maps=d.get(self.maps_key), mask=d.get(self.mask_key))
                d[self.rss_key if mode == ZeroFillMode.RSS else self.sense_key] = out
        return d


class NormalizeIntensityRanged(MapTransform):
    """Bring data to the diffusion range, keeping the scale so results return to physical units.

    Rule: ``scale = robust_scale(d[ref_key], percentile)``, the ``percentile``-th (default 99.5th) percentile of the
    zero-filled magnitude (RSS by default), stored in ``d[scale_key]``. Then

    - magnitude keys (``keys``, default ``target`` and ``zf_rss``): ``x = 2 · m / scale - 1`` (``[0, scale] → [-1, 1]``);
    - linear keys (``linear_keys``, default ``kspace``, ``kspace_full``, ``image``, ``zf_sense``): ``x / scale``, so
      measured k-space, operator and complex images stay consistent (``A(image/scale) = kspace/scale``) and the
      image magnitude lies roughly in ``[0, 1]``; a solver maps it to the prior's range as ``2·|x| - 1``.

    :class:`DenormalizeIntensityRanged` inverts both. Missing keys are skipped by default
    (``allow_missing_keys=True``) so the defaults work for simulated and fastMRI data alike.
    """

    def __init__(
        self,
        keys: KeysCollection = (ReconKeys.TARGET, ReconKeys.ZF_RSS),
        linear_keys: Sequence[str] = (ReconKeys.KSPACE, ReconKeys.KSPACE_FULL, ReconKeys.IMAGE, ReconKeys.ZF_SENSE),
        ref_key: str = ReconKeys.ZF_RSS,
        scale_key: str = ReconKeys.SCALE,
        percentile: float = 99.5,
        clip: bool = False,
        allow_missing_keys: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.linear_keys = tuple(linear_keys)
        self.ref_key, self.scale_key, self.percentile = ref_key, scale_key, percentile
        self.normalize = NormalizeIntensityRange(percentile=percentile, clip=clip)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        if self.ref_key not in d:
            raise ValueError(f"ref_key={self.ref_key!r} is not in the data (run ZeroFilledd first); keys: {sorted(map(str, d))}.")
        scale = robust_scale(d[self.ref_key], self.percentile)
        d[self.scale_key] = scale
        for key in self.key_iterator(d):
            d[key] = self.normalize(d[key], scale=scale)
        for key in self.linear_keys:
            if key in d:
                d[key] = d[key] / scale
            elif not self.allow_missing_keys:
                raise KeyError(f"linear key {key!r} is not in the data.")
        return d


class DenormalizeIntensityRanged(MapTransform):
    """Inverse of :class:`NormalizeIntensityRanged` using ``d[scale_key]``: magnitude keys ``(x + 1)/2 · scale``,
    linear keys ``x · scale``. Works on single items and on collated batches (``scale`` of shape ``(B,)``)."""

    def __init__(
        self,
        keys: KeysCollection = (ReconKeys.TARGET, ReconKeys.ZF_RSS),
        linear_keys: Sequence[str] = (ReconKeys.KSPACE, ReconKeys.KSPACE_FULL, ReconKeys.IMAGE, ReconKeys.ZF_SENSE),
        scale_key: str = ReconKeys.SCALE,
        allow_missing_keys: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.linear_keys = tuple(linear_keys)
        self.scale_key = scale_key
        self.denormalize = DenormalizeIntensityRange()

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        if self.scale_key not in d:
            raise ValueError(f"scale_key={self.scale_key!r} is not in the data (run NormalizeIntensityRanged first).")
        scale = d[self.scale_key]
        if not isinstance(scale, torch.Tensor):
            check_positive("scale", scale)
        for key in self.key_iterator(d):
            d[key] = self.denormalize(d[key], scale)
        for key in self.linear_keys:
            if key in d:
                x = d[key]
                s = torch.as_tensor(scale, dtype=x.real.dtype, device=x.device)
                if s.ndim == 1 and x.ndim > 1:
                    s = s.reshape(-1, *([1] * (x.ndim - 1)))
                d[key] = x * s
        return d
