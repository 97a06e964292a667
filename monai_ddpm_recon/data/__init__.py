"""Data preparation: brain MRI volumes -> normalised axial 2D slices for training the DDPM prior."""

from __future__ import annotations

from .slices import (
    COLIN27_PACKAGE,
    COLIN27_PATH,
    SliceSplit,
    axial_slice,
    from_model_range,
    intensity_scale,
    intensity_scales,
    load_colin27,
    load_mni152,
    load_nifti_ras,
    normalise_max,
    pad_to_square,
    resize_square,
    to_model_range,
    volume_slices,
)

__all__ = [
    "COLIN27_PACKAGE",
    "COLIN27_PATH",
    "SliceSplit",
    "axial_slice",
    "from_model_range",
    "intensity_scale",
    "intensity_scales",
    "load_colin27",
    "load_mni152",
    "load_nifti_ras",
    "normalise_max",
    "pad_to_square",
    "resize_square",
    "to_model_range",
    "volume_slices",
]
