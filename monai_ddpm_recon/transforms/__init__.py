"""MONAI array and dictionary transforms that move k-space through a pipeline, and fastMRI/NIfTI I/O."""

from __future__ import annotations

from .array import (
    DenormalizeIntensityRange,
    EstimateCoilMaps,
    LoadFastMRISlice,
    LoadNiftiSlices,
    NormalizeIntensityRange,
    SimulatedKspace,
    SimulateKspace,
    UndersampleKspace,
    ZeroFilled,
    ZeroFillMode,
    robust_scale,
)
from .dictionary import (
    DenormalizeIntensityRanged,
    EstimateCoilMapsd,
    LoadFastMRISliced,
    LoadNiftiSliced,
    NormalizeIntensityRanged,
    ReconKeys,
    SimulateKspaced,
    UndersampleKspaced,
    ZeroFilledd,
)
from .io import MissingFileError, load_nifti_slices, read_fastmri_slice, write_fastmri_h5

__all__ = [
    "DenormalizeIntensityRange",
    "DenormalizeIntensityRanged",
    "EstimateCoilMaps",
    "EstimateCoilMapsd",
    "LoadFastMRISlice",
    "LoadFastMRISliced",
    "LoadNiftiSlices",
    "LoadNiftiSliced",
    "MissingFileError",
    "NormalizeIntensityRange",
    "NormalizeIntensityRanged",
    "ReconKeys",
    "SimulateKspace",
    "SimulateKspaced",
    "SimulatedKspace",
    "UndersampleKspace",
    "UndersampleKspaced",
    "ZeroFillMode",
    "ZeroFilled",
    "ZeroFilledd",
    "load_nifti_slices",
    "read_fastmri_slice",
    "robust_scale",
    "write_fastmri_h5",
]
