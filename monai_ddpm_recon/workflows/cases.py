"""Reconstruction cases for the bundle: shipped example slices, NIfTI magnitude volumes or fastMRI k-space.

Every case is built by the package's MONAI dictionary transforms in a ``monai.transforms.Compose``
(:func:`magnitude_pipeline`, :func:`kspace_pipeline`):

- magnitude sources (the shipped held-out ``.npy`` slices, NIfTI volumes): ``LoadMagnitudeSliced`` →
  ``ResizeSlicesd`` (zero-pad to a square and resize to ``image_size``; ``image_size=None`` keeps the input's own
  matrix) → ``SimulateKspaced`` (birdcage coils + smooth phase + optional noise) → ``UndersampleKspaced``;
- fastMRI ``.h5`` files (fully sampled k-space): ``LoadFastMRISliced`` → ``CropKspaced`` (the full field of view at
  ``image_size``; ``None`` keeps the k-space as stored) → ``EstimateCoilMapsd`` (ESPIRiT) → ``ZeroFilledd`` (the
  SENSE-combined ground truth) → ``UndersampleKspaced``.

Every case ends up as k-space ``(C, H, W)``, a mask, maps (or ``None`` for single-coil) and the complex ground
truth ``(H, W)``; ``H`` and ``W`` need not be equal. Any resampling of an input is logged.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from monai.transforms import Compose

from ..io.geometry import SliceGeometry, nifti_slice_geometry
from ..operators.masks import MaskType
from ..transforms.dictionary import (
    CropKspaced,
    EstimateCoilMapsd,
    LoadFastMRISliced,
    LoadMagnitudeSliced,
    ReconKeys,
    ResizeSlicesd,
    SimulateKspaced,
    UndersampleKspaced,
    ZeroFilledd,
)
from ..utils.validation import check_bool, check_positive

NIFTI_SUFFIXES = (".nii", ".nii.gz")
SUFFIXES = (*NIFTI_SUFFIXES, ".h5", ".npy")
EXAMPLE_SLICES = (0, 4, 8)  # slices="auto" on the shipped example: the 3 slices of the documented demo numbers
ACCELERATION_TOLERANCE = 0.10  # warn when the mean effective R is further than this (relative) from the requested R

logger = logging.getLogger(__name__)


@dataclass
class Case:
    """One slice to reconstruct (no batch dimension).

    Attributes:
        name: identifier used in output file names.
        kspace: undersampled k-space ``(C, H, W)`` complex64.
        mask: ``(1, 1, W)`` or ``(1, H, W)`` float32.
        maps: coil maps ``(C, H, W)`` complex64, or ``None`` for single-coil data.
        target: complex ground truth ``(H, W)`` complex64 (same physical units as ``Aᴴ y``).
        acceleration: effective acceleration of the mask.
        geometry: where the slice lies in the input volume (NIfTI inputs), used to write outputs with the input's
            affine and axis order; ``None`` for ``.npy`` and fastMRI inputs (outputs get an identity affine).
    """

    name: str
    kspace: torch.Tensor
    mask: torch.Tensor
    maps: torch.Tensor | None
    target: torch.Tensor
    acceleration: float
    geometry: SliceGeometry | None = None

    @property
    def num_coils(self) -> int:
        return int(self.kspace.shape[0])


def _suffix(path: str | os.PathLike) -> str:
    name = str(path).lower()
    return next((s for s in SUFFIXES if name.endswith(s)), Path(name).suffix)


@dataclass
class CaseSpec:
    """What to load and how to undersample it. Validated on construction, before any work starts.

    Args:
        input_files: ``.nii``/``.nii.gz`` magnitude volumes, fastMRI ``.h5`` files (fully sampled k-space) or ``.npy``
            magnitude slices ``(N, [1,] H, W)``; empty: use ``example_data``.
        example_data: the shipped held-out slices (``.npy``).
        slices: slice indices to use from every input (negative ones count from the end; an index out of range for
            any input is an error), or

            - ``'auto'`` (the bundle's default): the central slice of every user input (the middle slice of a NIfTI
              volume, of an ``.h5`` file's slices and of a ``.npy`` stack); with no ``input_files``, the shipped
              example's slices ``EXAMPLE_SLICES = (0, 4, 8)`` (those that exist), the slices of the documented demo
              numbers;
            - ``None`` (also ``'null'``/``'none'``): every slice of a ``.npy`` stack, the middle slice of a volume.
        image_size: side of the square images every input is brought to (inputs are zero-padded to a square and
            resized); ``None`` (also ``'null'``/``'none'``) keeps every input at its own matrix size, non-square
            allowed: a NIfTI slice as stored, fastMRI k-space at its own size, a ``.npy`` stack's ``(H, W)``. A
            diffusion solver's prior must accept the size (:func:`~monai_ddpm_recon.priors.prior_supports_size`).
        num_coils: simulated coils for magnitude inputs (1 = single-coil).
        acceleration: nominal acceleration ``R > 1``.
        mask_type, center_fraction: see :func:`~monai_ddpm_recon.operators.make_mask`.
        smooth_phase: add a smooth random phase (max π/2) to magnitude inputs; ``False`` gives real images.
        snr_db: k-space SNR of added complex Gaussian noise, ``None`` for noiseless simulation.
        calib_width: ESPIRiT calibration width for multi-coil ``.h5`` inputs.
    """

    input_files: list[str] = field(default_factory=list)
    example_data: str | None = None
    slices: list[int] | str | None = None
    image_size: int | None = 64
    num_coils: int = 8
    acceleration: float = 8.0
    mask_type: str = "random"
    center_fraction: float = 0.08
    smooth_phase: bool = True
    snr_db: float | None = None
    calib_width: int = 24

    def __post_init__(self) -> None:
        self.input_files = [str(f) for f in ([self.input_files] if isinstance(self.input_files, (str, Path)) else self.input_files or [])]
        files = self.input_files or ([self.example_data] if self.example_data else [])
        if not files:
            raise ValueError("input_files is empty and no example_data is set; give at least one input file.")
        for f in files:
            if not Path(f).is_file():
                raise FileNotFoundError(f"input file {f!r} does not exist.")
            if _suffix(f) not in SUFFIXES:
                raise ValueError(f"input file {f!r} has an unsupported type; expected one of {', '.join(SUFFIXES)}.")
        self.smooth_phase = check_bool("smooth_phase", self.smooth_phase)
        if not float(self.acceleration) > 1:
            raise ValueError(f"acceleration must be > 1, got {self.acceleration!r}.")
        self.image_size = _parse_image_size(self.image_size)
        if int(self.num_coils) < 1:
            raise ValueError(f"num_coils must be >= 1, got {self.num_coils!r}.")
        MaskType.parse(self.mask_type, "mask_type")
        check_positive("center_fraction", self.center_fraction)
        if isinstance(self.slices, str):
            word = self.slices.strip().lower()
            if word not in ("auto", "none", "null"):
                raise ValueError(f"slices must be a list of indices or 'auto', got {self.slices!r}.")
            self.slices = "auto" if word == "auto" else None  # `monai.bundle run` drops None overrides: 'null' spells it
        if self.slices is not None and self.slices != "auto":
            self.slices = [int(s) for s in ([self.slices] if isinstance(self.slices, int) else self.slices)]
            if not self.slices:
                raise ValueError("slices is empty; use null for the default slices.")

    @property
    def files(self) -> list[str]:
        return self.input_files or [str(self.example_data)]


def _parse_image_size(value) -> int | None:
    """An int >= 8 (also an integral float or a digit string from the command line), or ``None``/'null'/'none'."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
        return None  # `monai.bundle run` drops None overrides: 'null' spells it
    integral = (isinstance(value, (int, np.integer)) and not isinstance(value, bool)) \
        or (isinstance(value, float) and value.is_integer()) or (isinstance(value, str) and value.strip().isdigit())
    if not integral or int(value) < 8:
        raise ValueError(f"image_size must be an int >= 8 or null (each input at its own size), got {value!r}.")
    return int(value)


def _nifti_shape(path: str) -> tuple[int, int, int]:
    """Canonical (RAS+) ``(X, Y, Z)`` of a NIfTI input (header only); a 2-D image is ``(X, Y, 1)``."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as e:  # nibabel raises ImageFileError or others for non-NIfTI content
        raise ValueError(f"path: {str(path)!r} is not a readable NIfTI image ({e}).") from None
    shape = list(img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape.pop()
    if len(shape) == 2:
        return int(shape[0]), int(shape[1]), 1
    if len(shape) != 3:
        raise ValueError(f"path: NIfTI data has shape {tuple(img.shape)}; expected 2D (X, Y) or 3D (X, Y, Z).")
    ornt = nib.orientations.io_orientation(img.affine)  # canonical axis ornt[i, 0] holds input axis i
    canonical = [0, 0, 0]
    for axis, (target, _) in enumerate(ornt):
        canonical[int(target)] = int(shape[axis])
    return canonical[0], canonical[1], canonical[2]


def _indices(n: int, spec: CaseSpec, path: str) -> list[int]:
    """The slices (``0 <= i < n``) of ``path`` that ``spec.slices`` selects (see :class:`CaseSpec`)."""
    stack = _suffix(path) == ".npy"
    if spec.slices == "auto":
        if not spec.input_files:  # the shipped example
            return [i for i in EXAMPLE_SLICES if i < n] or [n // 2]
        return [n // 2]
    if spec.slices is None:
        return list(range(n)) if stack else [n // 2]
    for i in spec.slices:
        if not -n <= i < n:
            raise ValueError(f"slices: index {i} is out of range for {n} slices in {path!r}.")
    return [i % n for i in spec.slices]


def _header(path: str) -> tuple[int, tuple[int, int]]:
    """``(number of slices, (H, W) of a slice as stored)`` of an input, read from its header only."""
    suffix = _suffix(path)
    if suffix == ".npy":
        try:
            shape = np.load(path, mmap_mode="r").shape
        except (OSError, ValueError) as e:
            raise ValueError(f"{path!r} is not a readable .npy file ({e}).") from None
        return (shape[0] if len(shape) in (3, 4) else 1), tuple(int(v) for v in shape[-2:])
    if suffix == ".h5":
        import h5py

        if not h5py.is_hdf5(path):
            raise ValueError(f"path: {path!r} is not a valid HDF5 file (corrupt or wrong format).")
        with h5py.File(path, "r") as hf:
            if "kspace" not in hf:
                raise ValueError(f"{path!r} has no 'kspace' dataset; found keys {sorted(hf.keys())}.")
            shape = hf["kspace"].shape
            return int(shape[0]), tuple(int(v) for v in shape[-2:])
    x, y, z = _nifti_shape(path)
    return z, (y, x)  # axial slices are rotated: (Y, X), anterior at the top


def _num_slices(path: str) -> int:
    return _header(path)[0]


def _log_resize(path: str, before: tuple[int, ...], after: int | None, how: str) -> None:
    if after is not None and tuple(before) != (after, after):
        logger.info("%s: matrix %s resampled to %dx%d (%s)", path, "x".join(str(int(s)) for s in before), after, after, how)


def case_shapes(spec: CaseSpec) -> list[tuple[int, int]]:
    """The distinct ``(H, W)`` of the cases :func:`load_cases` builds, in input order, read from headers only."""
    if spec.image_size is not None:
        return [(spec.image_size, spec.image_size)]
    return list(dict.fromkeys(_header(path)[1] for path in spec.files))


def case_names(spec: CaseSpec) -> list[str]:
    """The names of the cases :func:`load_cases` builds, in order, read from the files' headers only.

    A workflow uses them to list its output files before any work starts; out-of-range ``slices`` and unreadable
    files raise here already.

    Raises:
        ValueError: an index of ``slices`` out of range, or an unreadable input.
    """
    names: list[str] = []
    for path in spec.files:
        stem = Path(path).name.split(".")[0]
        names += [f"{stem}_{i:03d}" for i in _indices(_num_slices(path), spec, path)]
    return names


def magnitude_pipeline(spec: CaseSpec, seed: int = 0) -> Compose:
    """Magnitude input (``d["image"]`` = path, ``d["slice_index"]``, ``d["seed"]`` = mask seed) → simulated case.

    Output keys (see :class:`~monai_ddpm_recon.transforms.ReconKeys`): ``image`` complex ground truth ``(1, H, W)``,
    ``kspace`` masked ``(C, H, W)``, ``mask``, ``sens_maps``, ``effective_acceleration``. The simulator's random
    state (phase, noise) starts from ``seed`` and advances from case to case.
    """
    simulate = SimulateKspaced(
        ReconKeys.IMAGE, num_coils=spec.num_coils, phase_order=2 if spec.smooth_phase else 0, max_phase=math.pi / 2,
        snr_db=spec.snr_db, seed=seed,
    )
    pipeline = Compose([
        LoadMagnitudeSliced(ReconKeys.IMAGE),
        ResizeSlicesd(ReconKeys.IMAGE, spatial_size=spec.image_size),
        simulate,
        UndersampleKspaced(ReconKeys.KSPACE, spec.mask_type, spec.acceleration, spec.center_fraction),
    ])
    simulate.set_random_state(seed=seed)  # Compose reseeds its random members from the global seed: restore ours
    return pipeline


def _require_fully_sampled(d: Mapping) -> dict:
    """Refuse undersampled fastMRI k-space, then drop the file's (full) mask: the case gets its own."""
    d = dict(d)
    mask = d.pop(ReconKeys.MASK, None)
    if mask is not None and float(mask.mean()) < 1:
        path = d[f"{ReconKeys.KSPACE}_meta_dict"]["filename"]
        raise ValueError(
            f"{path!r} holds undersampled k-space (it has a 'mask'): the benchmark needs fully sampled k-space "
            "(fastMRI train/val files) to form a ground truth."
        )
    return d


def kspace_pipeline(spec: CaseSpec) -> Compose:
    """fastMRI input (``d["kspace"]`` = path, ``d["slice_index"]``, ``d["seed"]``) → case, with the keys of
    :func:`magnitude_pipeline` (``sens_maps`` are ESPIRiT maps, all ones for single-coil data)."""
    return Compose([
        LoadFastMRISliced(ReconKeys.KSPACE, recon_key=None),
        _require_fully_sampled,
        CropKspaced(ReconKeys.KSPACE, size=spec.image_size),
        EstimateCoilMapsd(ReconKeys.KSPACE, calib_width=spec.calib_width),
        ZeroFilledd(ReconKeys.KSPACE, modes="sense", sense_key=ReconKeys.IMAGE),
        UndersampleKspaced(ReconKeys.KSPACE, spec.mask_type, spec.acceleration, spec.center_fraction),
    ])


def _case(name: str, d: Mapping, geometry: SliceGeometry | None = None) -> Case:
    maps = d[ReconKeys.SENS_MAPS] if d[ReconKeys.KSPACE].shape[0] > 1 else None
    target = d[ReconKeys.IMAGE][0].to(torch.complex64)
    return Case(name, d[ReconKeys.KSPACE], d[ReconKeys.MASK], maps, target, d[ReconKeys.EFFECTIVE_ACCELERATION], geometry)


def load_cases(spec: CaseSpec, seed: int = 0) -> list[Case]:
    """Build every case of ``spec`` (deterministic for a given ``seed``) with :func:`magnitude_pipeline` and
    :func:`kspace_pipeline`.

    Each case gets its own random mask (seeded ``seed·10⁴ + case index``), as in fastMRI's evaluation, so the mean
    effective acceleration over cases is close to the nominal one even for small images.
    """
    magnitude, kspace = magnitude_pipeline(spec, seed), kspace_pipeline(spec)
    counter = itertools.count()
    cases: list[Case] = []
    for path in spec.files:
        stem = Path(path).name.split(".")[0]
        num_slices, shape = _header(path)
        h5 = _suffix(path) == ".h5"
        if h5:
            s = min(shape)
            _log_resize(path, shape, spec.image_size,
                        f"k-space: the image cropped to its central {s}x{s}, then the central "
                        f"{spec.image_size}x{spec.image_size} k-space kept")
        else:
            _log_resize(path, shape, spec.image_size, "zero-padded to a square, then resized")
        for idx in _indices(num_slices, spec, path):
            item = {ReconKeys.SLICE_INDEX: idx, ReconKeys.SEED: seed * 10_000 + next(counter)}
            if h5:
                d = kspace({**item, ReconKeys.KSPACE: path})
                cases.append(_case(f"{stem}_{d[f'{ReconKeys.KSPACE}_meta_dict']['slice_index']:03d}", d))
                continue
            d = magnitude({**item, ReconKeys.IMAGE: path})
            nifti = _suffix(path) in NIFTI_SUFFIXES
            geometry = nifti_slice_geometry(path, idx, spec.image_size) if nifti else None
            cases.append(_case(f"{stem}_{idx:03d}", d, geometry))
    check_acceleration(cases, spec)
    return cases


def check_acceleration(cases: list[Case], spec: CaseSpec) -> float:
    """Mean effective acceleration of ``cases``; a warning when it differs from ``spec.acceleration`` by > 10 %.

    The fully sampled centre caps a 1D mask's R at ``W / (centre columns)`` (12.8 for 64 columns and
    ``center_fraction = 0.08``), and each case's random mask samples a whole number of columns, so a few cases can
    average away from the request. The metrics tables report both ``R`` (requested) and ``R_effective``.
    """
    if not cases:
        return float("nan")
    values = np.array([c.acceleration for c in cases], dtype=float)
    mean, requested = float(values.mean()), float(spec.acceleration)
    if abs(mean - requested) > ACCELERATION_TOLERANCE * requested:
        why = ""
        if MaskType.parse(spec.mask_type, "mask_type") != MaskType.POISSON:
            w = int(cases[0].kspace.shape[-1])
            centre = max(1, round(w * float(spec.center_fraction)))
            if requested > w / centre:
                why = (f": the fully sampled centre (center_fraction={spec.center_fraction:g}, {centre} of {w} columns) "
                       f"caps R at {w / centre:.1f}")
        logger.warning(
            "requested acceleration R=%g but the masks give R_effective=%.2f (mean over %d slice(s), range %.2f-%.2f, "
            "%+.0f%%)%s; the metrics report both R and R_effective.",
            requested, mean, len(values), values.min(), values.max(), 100 * (mean / requested - 1), why,
        )
    return mean
