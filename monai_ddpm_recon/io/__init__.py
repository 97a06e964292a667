"""Writers for reconstruction outputs: NIfTI volumes, PNG panels and metric tables. Atomic, umask-respecting, never over
an input, and over an existing file only when allowed."""

from __future__ import annotations

from .figures import save_panel, save_psnr_vs_acceleration
from .geometry import SliceGeometry, nifti_slice_geometry
from .writers import OutputExistsError, RunOutputs, atomic_path, check_output_dir, write_metrics_table, write_nifti

__all__ = [
    "OutputExistsError",
    "RunOutputs",
    "SliceGeometry",
    "atomic_path",
    "check_output_dir",
    "nifti_slice_geometry",
    "save_panel",
    "save_psnr_vs_acceleration",
    "write_metrics_table",
    "write_nifti",
]
