"""Readers and a writer for the two input formats: fastMRI HDF5 files and NIfTI volumes.

fastMRI layout (Zbontar et al., 2018; as read by ``fastmri.data.SliceDataset``):

- dataset ``kspace``: complex, ``(slices, H, W)`` single-coil or ``(slices, coils, H, W)`` multi-coil, centred
  (DC at ``(H//2, W//2)``), ``H`` = readout, ``W`` = phase encoding;
- optional dataset ``mask``: ``(W,)`` column mask (test/challenge files);
- optional dataset ``reconstruction_rss`` (multi-coil) or ``reconstruction_esc`` (single-coil): ``(slices, h, w)``;
- dataset ``ismrmrd_header``: ISMRMRD XML (encodedSpace/reconSpace matrix sizes, encoding limits);
- attributes ``acquisition``, ``max``, ``norm``, ``patient_id``.
"""

from __future__ import annotations

import os
import warnings
import xml.etree.ElementTree as etree
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.slices import axial_slice, pad_to_square as pad_slices_to_square, resize
from ..utils.validation import check_finite

RECON_KEYS = ("reconstruction_rss", "reconstruction_esc")
ISMRMRD_NS = "http://www.ismrm.org/ISMRMRD"


class MissingFileError(FileNotFoundError, ValueError):
    """A required input file does not exist (both a ``FileNotFoundError`` and a ``ValueError``)."""


def _check_path(path, name: str = "path") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__}.")
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{name}: file not found: {str(p)!r}.")
    return p


def _to_python(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _header_fields(xml: bytes | str) -> dict:
    """Matrix sizes and padding from an ISMRMRD header, computed as ``fastmri.data.SliceDataset`` does."""
    root = etree.fromstring(xml)
    ns = {"i": ISMRMRD_NS}

    def q(*tags: str) -> int:
        el = root.find("." + "".join(f"//i:{t}" for t in tags), ns)
        if el is None or el.text is None:
            raise ValueError(f"element {'/'.join(tags)} not found")
        return int(el.text)

    enc = ("encoding", "encodedSpace", "matrixSize")
    rec = ("encoding", "reconSpace", "matrixSize")
    lims = ("encoding", "encodingLimits", "kspace_encoding_step_1")
    enc_size = tuple(q(*enc, a) for a in "xyz")
    padding_left = enc_size[1] // 2 - q(*lims, "center")
    return {
        "encoding_size": enc_size,
        "recon_size": tuple(q(*rec, a) for a in "xyz"),
        "padding_left": padding_left,
        "padding_right": padding_left + q(*lims, "maximum") + 1,
    }


def read_fastmri_slice(path, slice_index: int | None = None, recon_key: str | None = "auto") -> dict:
    """Read one slice of a fastMRI HDF5 file.

    Args:
        path: ``.h5`` file in fastMRI's layout (see module docstring).
        slice_index: slice to read (negative counts from the end); ``None`` reads the middle slice.
        recon_key: reconstruction dataset to return as ``target``: ``"auto"`` (``reconstruction_rss`` or
            ``reconstruction_esc``, whichever exists), an explicit name (must exist), or ``None`` (skip).

    Returns:
        dict with ``kspace`` (complex64 tensor ``(C, H, W)``, ``C = 1`` for single-coil), ``mask``
        (float32 ``(1, 1, W)``, or ``None``), ``target`` (float32 ``(1, h, w)``, or ``None``) and ``meta``
        (filename, slice_index, num_slices, recon_key, the file's attributes and, when the ISMRMRD header parses,
        ``encoding_size``, ``recon_size``, ``padding_left``, ``padding_right``).

    Raises:
        MissingFileError: the file does not exist. ValueError: not an HDF5 file, missing ``kspace``/recon key,
        slice out of range, bad shape, NaN/Inf k-space. TypeError: real-valued k-space.
    """
    import h5py

    p = _check_path(path)
    if not h5py.is_hdf5(p):
        raise ValueError(f"path: {str(p)!r} is not a valid HDF5 file (corrupt or wrong format).")
    try:
        hf = h5py.File(p, "r")
    except OSError as e:
        raise ValueError(f"path: cannot open {str(p)!r} as HDF5 ({e}).") from None
    with hf:
        if "kspace" not in hf:
            raise ValueError(f"{str(p)!r} has no 'kspace' dataset; found keys {sorted(hf.keys())}.")
        ds = hf["kspace"]
        if ds.ndim not in (3, 4):
            raise ValueError(f"'kspace' in {str(p)!r} has shape {ds.shape}; expected (slices, [coils,] H, W).")
        if ds.dtype.kind != "c":
            raise TypeError(f"'kspace' in {str(p)!r} must be complex, got dtype {ds.dtype}.")
        num_slices = int(ds.shape[0])
        idx = num_slices // 2 if slice_index is None else int(slice_index)
        if not -num_slices <= idx < num_slices:
            raise ValueError(f"slice_index={slice_index} is out of range for {num_slices} slices in {str(p)!r}.")
        idx %= num_slices
        kspace = np.asarray(ds[idx])
        if kspace.ndim == 2:
            kspace = kspace[None]

        key = None
        if recon_key == "auto":
            key = next((k for k in RECON_KEYS if k in hf), None)
        elif recon_key is not None:
            if recon_key not in hf:
                raise ValueError(f"recon_key={recon_key!r} not found in {str(p)!r}; found keys {sorted(hf.keys())}.")
            key = recon_key
        target = None
        if key is not None:
            target = torch.from_numpy(np.asarray(hf[key][idx], dtype=np.float32))[None]

        mask = None
        if "mask" in hf:
            m = np.asarray(hf["mask"], dtype=np.float32)
            mask = torch.from_numpy(m.reshape(1, 1, -1) if m.ndim == 1 else m.reshape(1, *m.shape[-2:]))

        meta = {k: _to_python(v) for k, v in hf.attrs.items()}
        if "ismrmrd_header" in hf:
            try:
                meta.update(_header_fields(hf["ismrmrd_header"][()]))
            except (etree.ParseError, ValueError, TypeError) as e:
                warnings.warn(f"ismrmrd_header of {str(p)!r} could not be parsed ({e}); sizes not in meta.", stacklevel=2)

    kspace_t = torch.from_numpy(np.ascontiguousarray(kspace.astype(np.complex64)))
    check_finite("kspace", kspace_t)
    meta.update(filename=str(p), slice_index=idx, num_slices=num_slices, recon_key=key)
    return {"kspace": kspace_t, "mask": mask, "target": target, "meta": meta}


def ismrmrd_header_xml(encoding_size: tuple[int, int, int], recon_size: tuple[int, int, int]) -> bytes:
    """Minimal ISMRMRD XML header with the fields fastMRI's ``SliceDataset`` reads (sizes ``(x, y, z)``)."""
    ex, ey, ez = (int(v) for v in encoding_size)
    rx, ry, rz = (int(v) for v in recon_size)
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<ismrmrdHeader xmlns="{ISMRMRD_NS}"><encoding>'
        f"<encodedSpace><matrixSize><x>{ex}</x><y>{ey}</y><z>{ez}</z></matrixSize></encodedSpace>"
        f"<reconSpace><matrixSize><x>{rx}</x><y>{ry}</y><z>{rz}</z></matrixSize></reconSpace>"
        "<encodingLimits><kspace_encoding_step_1>"
        f"<minimum>0</minimum><maximum>{ey - 1}</maximum><center>{ey // 2}</center>"
        "</kspace_encoding_step_1></encodingLimits>"
        "</encoding></ismrmrdHeader>"
    )
    return xml.encode("utf-8")


def write_fastmri_h5(
    path,
    kspace,
    reconstruction=None,
    recon_key: str = "reconstruction_rss",
    mask=None,
    attrs: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a volume in fastMRI's HDF5 layout (for tests, examples and exporting simulated data).

    Args:
        path: output ``.h5`` path; an existing file is never replaced unless ``overwrite=True``.
        kspace: complex ``(slices, H, W)`` or ``(slices, coils, H, W)`` (numpy or torch), centred.
        reconstruction: optional real ``(slices, h, w)`` stored under ``recon_key``.
        mask: optional ``(W,)`` column mask.
        attrs: file attributes; ``acquisition``, ``max``, ``norm`` and ``patient_id`` get defaults.

    Returns:
        the path written.
    """
    import h5py

    p = Path(path)
    if p.exists() and not overwrite:
        raise ValueError(f"path: {str(p)!r} already exists; pass overwrite=True to replace it.")
    k = kspace.detach().cpu().numpy() if isinstance(kspace, torch.Tensor) else np.asarray(kspace)
    if not np.iscomplexobj(k):
        raise TypeError(f"kspace must be complex, got dtype {k.dtype}.")
    if k.ndim not in (3, 4):
        raise ValueError(f"kspace has shape {k.shape}; expected (slices, [coils,] H, W).")
    h, w = k.shape[-2:]
    a = {"acquisition": "AXT2", "norm": float(np.linalg.norm(k)), "patient_id": "synthetic"}
    rec = None
    if reconstruction is not None:
        rec = reconstruction.detach().cpu().numpy() if isinstance(reconstruction, torch.Tensor) else np.asarray(reconstruction)
        rec = rec.astype(np.float32)
        if rec.ndim != 3 or rec.shape[0] != k.shape[0]:
            raise ValueError(f"reconstruction has shape {rec.shape}; expected ({k.shape[0]}, h, w).")
        a["max"] = float(rec.max())
    a.update(attrs or {})
    recon_hw = rec.shape[-2:] if rec is not None else (h, w)
    with h5py.File(p, "w") as hf:
        hf.create_dataset("kspace", data=k.astype(np.complex64))
        if rec is not None:
            hf.create_dataset(recon_key, data=rec)
        if mask is not None:
            m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
            hf.create_dataset("mask", data=m.reshape(-1).astype(bool))
        hf.create_dataset("ismrmrd_header", data=ismrmrd_header_xml((h, w, 1), (*recon_hw, 1)))
        for key, value in a.items():
            hf.attrs[key] = value
    return p


def _select(n: int, slice_index, name: str) -> list[int]:
    if slice_index is None:
        return list(range(n))
    many = isinstance(slice_index, Sequence) and not isinstance(slice_index, str)
    idx = [int(i) for i in (slice_index if many else [slice_index])]
    for i in idx:
        if not -n <= i < n:
            raise ValueError(f"{name}={slice_index!r} is out of range for a volume with {n} slices.")
    return [i % n for i in idx]


def load_nifti_slices(
    path,
    slice_index: int | Sequence[int] | None = None,
    spatial_size: tuple[int, int] | int | None = None,
    pad_to_square: bool = True,
) -> tuple[torch.Tensor, dict]:
    """Load a NIfTI volume as 2D axial magnitude slices.

    The volume is reoriented to the closest canonical (RAS+) orientation; axial slices are taken along the last
    axis and rotated so that anterior is at the top. Magnitude (absolute value) is returned. Padding and resizing
    are :mod:`monai_ddpm_recon.data.slices`' (the same as for the training slices).

    Args:
        path: ``.nii`` / ``.nii.gz`` file, 2D ``(X, Y)`` or 3D ``(X, Y, Z)`` (trailing singleton axes are dropped).
        slice_index: axial slice(s) to return (int, sequence, or ``None`` for all); negative counts from the end.
        spatial_size: output ``(H, W)`` (an int means square); ``None`` keeps the slice size (with
            ``pad_to_square=False``: the slice as stored, non-square allowed). Resizing uses bilinear interpolation
            with antialiasing.
        pad_to_square: zero-pad each slice to a square (centred) before resizing, keeping the aspect ratio.

    Returns:
        ``(slices, meta)``: float32 tensor ``(N, H, W)`` and a dict (filename, slice_indices, original_shape,
        affine).
    """
    import nibabel as nib

    p = _check_path(path)
    try:
        img = nib.load(str(p))
    except Exception as e:  # nibabel raises ImageFileError or others for non-NIfTI content
        raise ValueError(f"path: {str(p)!r} is not a readable NIfTI image ({e}).") from None
    original_shape = tuple(int(s) for s in img.shape)
    while len(img.shape) > 3 and img.shape[-1] == 1:
        img = img.slicer[..., 0]
    if len(img.shape) not in (2, 3):
        raise ValueError(f"path: NIfTI data has shape {original_shape}; expected 2D (X, Y) or 3D (X, Y, Z).")
    if len(img.shape) == 3:
        img = nib.as_closest_canonical(img)
    vol = np.asarray(img.get_fdata(dtype=np.float32))
    if vol.ndim == 2:
        vol = vol[..., None]
    if not np.isfinite(vol).all():
        raise ValueError(f"path: NIfTI data in {str(p)!r} contains NaN/Inf values.")
    idx = _select(vol.shape[-1], slice_index, "slice_index")
    slices = np.stack([np.abs(axial_slice(vol, i)) for i in idx])  # (N, Y, X): anterior at the top
    out = torch.from_numpy(np.ascontiguousarray(slices, dtype=np.float32))
    if pad_to_square:
        out = pad_slices_to_square(out)
    out = resize(out, spatial_size)
    meta = {"filename": str(p), "slice_indices": idx, "original_shape": original_shape, "affine": np.asarray(img.affine)}
    return out, meta



def load_npy_slices(path, slice_index: int | Sequence[int] | None = None) -> torch.Tensor:
    """Load real magnitude slices from a ``.npy`` stack ``(N, [1,] H, W)`` or a single ``(H, W)`` slice.

    Args:
        path: the ``.npy`` file (memory-mapped; only the selected slices are read).
        slice_index: slice(s) to return (int, sequence, or ``None`` for all); negative counts from the end.

    Returns:
        float32 tensor ``(N, H, W)`` at the file's own matrix size.

    Raises:
        MissingFileError: the file does not exist. ValueError: unreadable, complex or wrongly shaped data, or an
        index out of range.
    """
    p = _check_path(path)
    try:
        arr = np.load(p, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise ValueError(f"{str(p)!r} is not a readable .npy file ({e}).") from None
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or np.iscomplexobj(arr):
        raise ValueError(f"{str(p)!r}: expected real magnitude slices (N, [1,] H, W), got shape {arr.shape} dtype {arr.dtype}.")
    idx = _select(arr.shape[0], slice_index, "slice_index")
    return torch.from_numpy(np.ascontiguousarray(arr[idx], dtype=np.float32))
