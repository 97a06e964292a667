"""Where a reconstructed 2-D slice lies in the scanner: the NIfTI geometry of outputs from NIfTI inputs.

:func:`~monai_ddpm_recon.transforms.io.load_nifti_slices` turns slice ``k`` of a volume into a model image in four
steps: reorient to the closest canonical (RAS+) orientation, take ``vol[:, :, k]``, rotate it by 90° (``np.rot90``,
anterior at the top), zero-pad it to a square and resize it to ``image_size`` (``image_size=None``: neither, the
slice keeps its own matrix). :class:`SliceGeometry` undoes the
rotation and the reorientation when writing, so an output is a one-slice 3-D volume in the input's own axis order,
and composes the input's affine with the slice position (a translation to ``k`` along the slice axis) and with the
padding / resizing (a shift and a scaling in plane). Without padding or resizing (a square input of ``image_size``)
the output equals the input slice voxel for voxel and its affine is the input's affine translated to slice ``k``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

CANONICAL = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)  # RAS+: array axis i along world axis i, not flipped


@dataclass(frozen=True)
class SliceGeometry:
    """How to write a model image ``(H, W)`` of one input slice as NIfTI.

    Attributes:
        canonical_affine: ``4 × 4`` affine of the model image's un-rotated array ``np.rot90(image, -1)[:, :, None]``
            in canonical (RAS+) axes.
        to_input: nibabel orientation that takes canonical axes back to the input's axis order.
        slice_index: the slice's index along the input's slice axis (in canonical axes).
    """

    canonical_affine: np.ndarray
    to_input: np.ndarray
    slice_index: int

    def volume(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(array, affine)`` of a model image ``(H, W)`` as a one-slice volume in the input's axis order."""
        import nibabel as nib

        arr = np.asarray(image)
        if arr.ndim != 2:
            raise ValueError(f"image must be a 2-D slice (H, W), got shape {arr.shape}.")
        canonical = np.ascontiguousarray(np.rot90(arr, k=-1))[:, :, None]  # undo load_nifti_slices' np.rot90
        data = nib.orientations.apply_orientation(canonical, self.to_input)
        affine = self.canonical_affine @ nib.orientations.inv_ornt_aff(self.to_input, canonical.shape)
        return np.ascontiguousarray(data), affine


def nifti_slice_geometry(
    path: str | os.PathLike, slice_index: int, image_size: int | None, pad_to_square: bool = True
) -> SliceGeometry:
    """The geometry of slice ``slice_index`` of a NIfTI volume loaded at ``image_size`` (read from the header only).

    Mirrors :func:`~monai_ddpm_recon.transforms.io.load_nifti_slices` (``spatial_size=image_size``): the model
    image's pixel ``(r, c)`` is canonical voxel ``x = (c + ½)·s − ½ − left``, ``y = Y − 1 − ((r + ½)·s − ½ − top)``,
    ``z = k`` with ``S = max(X, Y)`` (padded square), ``s = S / image_size`` and the pads ``top = (S − Y) // 2``,
    ``left = (S − X) // 2``. With ``image_size=None`` (native size) there is no padding or resizing: ``s = 1``,
    ``top = left = 0`` and the model image is ``(Y, X)``.

    Args:
        path: the ``.nii`` / ``.nii.gz`` input (2-D, or 3-D with trailing singleton axes dropped).
        slice_index: the axial slice (negative counts from the end).
        image_size: side of the model image, or ``None`` for the slice at its own matrix size.
        pad_to_square: as in the loader.

    Returns:
        the slice's :class:`SliceGeometry`.
    """
    import nibabel as nib

    img = nib.load(str(path))
    shape = list(img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape.pop()
    affine = np.asarray(img.affine, dtype=np.float64)
    if len(shape) == 3:
        ornt = nib.orientations.io_orientation(affine)
        canonical_affine = affine @ nib.orientations.inv_ornt_aff(ornt, shape)
        canonical_shape = [0, 0, 0]
        for axis, (target, _) in enumerate(ornt):
            canonical_shape[int(target)] = int(shape[axis])
        to_input = nib.orientations.ornt_transform(CANONICAL, ornt)
    else:  # a 2-D image is used as it is (the loader does not reorient it)
        canonical_affine, canonical_shape, to_input = affine, [*shape[:2], 1], CANONICAL.copy()
    x, y, z = canonical_shape
    k = int(slice_index) % z
    # the rotated slice is (Y, X); padded to (rows, cols), then resized to (out_rows, out_cols), where output pixel q
    # samples the padded image at (q + ½)·rows/out_rows − ½ (bilinear, align_corners=False)
    if image_size is None:
        rows, cols = out_rows, out_cols = y, x
    else:
        rows, cols = (max(x, y), max(x, y)) if pad_to_square else (y, x)
        out_rows = out_cols = int(image_size)
    s_row, s_col = rows / out_rows, cols / out_cols
    top, left = (rows - y) // 2, (cols - x) // 2
    # un-rotated array W[a, b] = image[out_rows − 1 − b, a]: x = (a + ½)·s_col − ½ − left, y = (b + ½)·s_row − ½ − bottom
    bottom = rows - y - top
    to_canonical = np.array(
        [
            [s_col, 0.0, 0.0, 0.5 * s_col - 0.5 - left],
            [0.0, s_row, 0.0, 0.5 * s_row - 0.5 - bottom],
            [0.0, 0.0, 1.0, float(k)],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    return SliceGeometry(canonical_affine @ to_canonical, to_input, k)
