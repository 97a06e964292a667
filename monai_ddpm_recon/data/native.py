"""Native-resolution (1 mm) training slices in three orientations, with the held-out slab removed in 3-D.

A patch prior is trained on patches of whole 1 mm slices, axial, coronal and sagittal. The held-out Colin27 slab
(axial ``z`` in ``[80, 96)`` plus a gap of 4 on each side) must not reach training through any orientation: a
coronal or sagittal slice crosses the slab, so such a slice is cut into the row blocks that lie entirely outside the
excluded voxels ("pieces"), and patches are only ever cropped inside one piece. Axial slices inside the excluded
range are dropped whole.

Orientation conventions (RAS volume ``(X, Y, Z)``, rows top to bottom):
    axial ``rot90(v[:, :, z])`` -> ``(Y, X)``, anterior at the top;
    coronal ``rot90(v[:, y, :])`` -> ``(Z, X)``, superior at the top;
    sagittal ``rot90(v[x, :, :])`` -> ``(Z, Y)``, superior at the top.

Intensity: each piece is divided by the maximum over the allowed voxels of its whole slice (the magnitude
convention of :mod:`monai_ddpm_recon.data.slices`, computed without the held-out voxels).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..utils.enums import StrEnum
from .slices import COLIN27_PATH, SliceSplit, axial_slice, intensity_scale, load_colin27, load_mni152, normalise_max

COLIN27_MIN_Z = 20  # below this Colin27's axial slices show the face and neck


class Orientation(StrEnum):
    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


@dataclass(frozen=True)
class SlicePiece:
    """A block of whole rows of one slice that holds no excluded voxel.

    Attributes:
        image: float32 ``(h, w)`` magnitude in ``[0, 1]``.
        origin: ``(row, col)`` offset in pixels of ``image[0, 0]`` from the centre of the whole slice.
        source: volume name; orientation: :class:`Orientation` value; index: slice index along its axis;
        rows: ``(start, stop)`` rows of the whole slice the piece covers.
    """

    image: np.ndarray
    origin: tuple[float, float]
    source: str
    orientation: str
    index: int
    rows: tuple[int, int]


def oriented_slices(volume: np.ndarray, orientation: Orientation | str) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, slice (rows, cols))`` for every slice of a RAS volume in one orientation (module conventions)."""
    o = Orientation.parse(orientation, "orientation")
    axis = {Orientation.SAGITTAL: 0, Orientation.CORONAL: 1, Orientation.AXIAL: 2}[o]
    for i in range(volume.shape[axis]):
        if o == Orientation.AXIAL:
            yield i, axial_slice(volume, i)
        else:
            yield i, np.ascontiguousarray(np.rot90(np.take(volume, i, axis=axis)))


def allowed_row_blocks(allowed: np.ndarray, min_rows: int) -> list[tuple[int, int]]:
    """Maximal runs ``[start, stop)`` of rows of a 2-D boolean mask that are allowed in every column."""
    ok = allowed.all(axis=1)
    blocks, start = [], None
    for r, good in enumerate(list(ok) + [False]):
        if good and start is None:
            start = r
        elif not good and start is not None:
            if r - start >= min_rows:
                blocks.append((start, r))
            start = None
    return blocks


def slice_pieces(
    volume: np.ndarray,
    source: str,
    orientations: Sequence[str] = tuple(Orientation),
    allowed: np.ndarray | None = None,
    min_foreground: float = 0.05,
    min_rows: int = 16,
) -> list[SlicePiece]:
    """Pieces of every slice of ``volume`` in ``orientations`` that avoid the voxels where ``allowed`` is False.

    Args:
        volume: RAS float volume ``(X, Y, Z)``.
        source: name recorded in the pieces.
        orientations: any of ``"axial"``, ``"coronal"``, ``"sagittal"``.
        allowed: boolean volume of the same shape; voxels where it is False never appear in a piece (default: all).
        min_foreground: drop a slice whose allowed area has fewer than this fraction of voxels above 10 % of the
            volume maximum.
        min_rows: drop pieces with fewer rows.

    Returns:
        the pieces, magnitudes divided by the maximum over their slice's allowed voxels (the intensity scale rule at p = 100).
    """
    volume = np.asarray(volume, dtype=np.float32)
    if allowed is None:
        allowed = np.ones(volume.shape, dtype=bool)
    if allowed.shape != volume.shape:
        raise ValueError(f"allowed has shape {allowed.shape}, the volume {volume.shape}.")
    vmax = float(volume.max())
    if not np.isfinite(vmax) or vmax <= 0:
        raise ValueError(f"volume {source!r} is empty or not finite.")
    pieces = []
    for o in orientations:
        for (i, sl), (_, ok) in zip(oriented_slices(volume, o), oriented_slices(allowed, o)):
            blocks = allowed_row_blocks(ok, min_rows)
            if not blocks:
                continue
            kept = np.concatenate([sl[a:b] for a, b in blocks])
            if float((kept > 0.1 * vmax).mean()) < min_foreground or float(kept.max()) <= 0:
                continue
            smax = intensity_scale(kept, 100.0, name=f"{source} slice {i}")
            h, w = sl.shape
            for a, b in blocks:
                image = (np.abs(sl[a:b]) / smax).astype(np.float32)
                pieces.append(SlicePiece(image, (a - (h - 1) / 2, -(w - 1) / 2), source, str(o), i, (a, b)))
    return pieces


def heldout_mask(shape: tuple[int, int, int], split: SliceSplit, min_z: int = 0) -> np.ndarray:
    """Boolean RAS volume: False on the held-out slab, its gap and below ``min_z`` (axial index ``z``)."""
    allowed = np.ones(shape, dtype=bool)
    allowed[:, :, max(0, split.start - split.gap) : split.stop + split.gap] = False
    allowed[:, :, :min_z] = False
    return allowed


def native_training_pieces(
    colin27_path: str = COLIN27_PATH,
    use_mni152: bool = True,
    split: SliceSplit | None = None,
    orientations: Sequence[str] = tuple(Orientation),
    min_foreground: float = 0.05,
) -> tuple[list[SlicePiece], dict]:
    """Training pieces of Colin27 (held-out slab and gap removed in 3-D) and MNI152, at 1 mm.

    Returns:
        ``(pieces, provenance)``, provenance being json-serialisable.
    """
    split = split or SliceSplit()
    colin = load_colin27(colin27_path)
    if split.stop > colin.shape[2]:
        raise ValueError(f"held-out slab [{split.start}, {split.stop}) lies outside the volume depth {colin.shape[2]}.")
    allowed = heldout_mask(colin.shape, split, COLIN27_MIN_Z)
    pieces = slice_pieces(colin, "colin27", orientations, allowed, min_foreground)
    if use_mni152:
        pieces += slice_pieces(load_mni152(), "mni152", orientations, None, min_foreground)
    counts: dict[str, int] = {}
    for p in pieces:
        key = f"{p.source}/{p.orientation}"
        counts[key] = counts.get(key, 0) + 1
    info = {
        "resolution_mm": 1.0,
        "orientations": [str(Orientation.parse(o, "orientation")) for o in orientations],
        "heldout": {"volume": "colin27", "axial_z": [split.start, split.stop], "gap": split.gap},
        "excluded_in_3d": f"colin27 voxels with z in [{max(0, split.start - split.gap)}, {split.stop + split.gap}) "
        f"and z < {COLIN27_MIN_Z} appear in no piece of any orientation",
        "pieces_per_volume_orientation": counts,
        "num_pieces": len(pieces),
        "normalisation": "each piece / max over its slice's allowed voxels -> [0, 1]",
    }
    return pieces, info


def heldout_native_slices(colin27_path: str = COLIN27_PATH, split: SliceSplit | None = None) -> np.ndarray:
    """The held-out Colin27 axial slab at 1 mm as whole slices, float32 ``(M, 1, 217, 181)`` in ``[0, 1]`` (slice max)."""
    split = split or SliceSplit()
    colin = load_colin27(colin27_path)
    out = []
    for z in range(split.start, split.stop):
        out.append(normalise_max(axial_slice(colin, z)))
    return np.stack(out)[:, None].astype(np.float32)


def write_heldout_example(output: str, colin27_path: str = COLIN27_PATH, overwrite: bool = False) -> str:
    """Write the bundle's 1 mm example ``colin27_heldout_axial_1mm.npy`` ``(16, 217, 181)`` float32 and its json."""
    import json
    import os

    split = SliceSplit()
    slab = heldout_native_slices(colin27_path, split)[:, 0]
    path = os.path.join(output, "colin27_heldout_axial_1mm.npy")
    for p in (path, path[:-4] + ".json"):
        if os.path.exists(p) and not overwrite:
            raise FileExistsError(f"{p} exists; pass --overwrite to replace it.")
    os.makedirs(output, exist_ok=True)
    np.save(path, slab)
    meta = {
        "file": os.path.basename(path),
        "shape": list(slab.shape),
        "dtype": "float32",
        "content": f"Colin27 (ch2.nii.gz) axial slices z={split.start}..{split.stop - 1} at the native 1 mm grid, "
        "whole slices; held out from every prior's training together with a gap of "
        f"{split.gap} slices on each side (for the patch prior: in all three orientations, in 3-D).",
        "layout": "(slice, row, column) = np.rot90 of the RAS [x, y] plane: row 0 = anterior, column 0 = the "
        "subject's left (neurological display)",
        "voxel_size_mm": [1.0, 1.0],
        "preprocessing": "none but per-slice normalisation: divide by slice max -> [0, 1]",
        "z": list(range(split.start, split.stop)),
        "made_by": "python -m monai_ddpm_recon.data.native --output DIR",
        "licence": "see ../docs/data_license.txt",
    }
    with open(path[:-4] + ".json", "w") as f:
        json.dump(meta, f, indent=1)
    return path


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Write the 1 mm held-out Colin27 example slab (.npy + .json).")
    ap.add_argument("--output", required=True)
    ap.add_argument("--colin27", default=COLIN27_PATH)
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args()
    print(write_heldout_example(a.output, a.colin27, a.overwrite))
