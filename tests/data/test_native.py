"""Native-resolution training pieces: the held-out slab never reaches training, in any orientation."""

from __future__ import annotations

import os

import numpy as np
import pytest

from monai_ddpm_recon.data.native import (
    allowed_row_blocks,
    heldout_mask,
    native_training_pieces,
    oriented_slices,
    slice_pieces,
)
from monai_ddpm_recon.data.slices import COLIN27_PATH, SliceSplit

SPLIT = SliceSplit(20, 28, 3)


def _marked_volume(shape=(30, 34, 50)):
    """Ones everywhere, zero on the held-out block: any piece that touches the block shows a zero."""
    allowed = heldout_mask(shape, SPLIT)
    return allowed.astype(np.float32), allowed


@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal"])
def test_no_piece_of_any_orientation_contains_a_heldout_voxel(orientation):
    volume, allowed = _marked_volume()
    pieces = slice_pieces(volume, "marked", [orientation], allowed, min_foreground=0.0, min_rows=2)
    assert pieces, "every orientation keeps some training pieces"
    for p in pieces:
        assert p.image.min() == 1.0, f"{orientation} slice {p.index} rows {p.rows} holds an excluded voxel"


def test_cross_sections_are_cut_around_the_slab_and_axial_slab_slices_dropped():
    volume, allowed = _marked_volume()
    Z = volume.shape[2]
    excluded = set(range(SPLIT.start - SPLIT.gap, SPLIT.stop + SPLIT.gap))
    axial = slice_pieces(volume, "m", ["axial"], allowed, 0.0, 2)
    assert {p.index for p in axial} == set(range(Z)) - excluded
    coronal = slice_pieces(volume, "m", ["coronal"], allowed, 0.0, 2)
    for p in coronal:
        z_covered = {Z - 1 - r for r in range(*p.rows)}  # rows of rot90(v[:, y, :]) run from z = Z-1 down
        assert not z_covered & excluded
    # the two pieces of a cross-section: above and below the slab, together all allowed rows
    rows = sorted(p.rows for p in coronal if p.index == 0)
    assert rows == [(0, Z - (SPLIT.stop + SPLIT.gap)), (Z - (SPLIT.start - SPLIT.gap), Z)]


def test_pieces_keep_the_whole_slice_frame_and_normalisation():
    rng = np.random.default_rng(0)
    volume = rng.random((30, 34, 50)).astype(np.float32) + 0.5
    allowed = heldout_mask(volume.shape, SPLIT)
    pieces = slice_pieces(volume, "r", ["sagittal"], allowed, 0.0, 2)
    by_slice = {}
    for p in pieces:
        by_slice.setdefault(p.index, []).append(p)
    x = 7
    sl = dict(oriented_slices(volume, "sagittal"))[x]
    h, w = sl.shape
    smax = max(float(sl[a:b].max()) for a, b in (p.rows for p in by_slice[x]))
    for p in by_slice[x]:
        a, b = p.rows
        np.testing.assert_allclose(p.image, sl[a:b] / smax, rtol=1e-6)
        assert p.origin == (a - (h - 1) / 2, -(w - 1) / 2)
    assert max(float(p.image.max()) for p in by_slice[x]) == pytest.approx(1.0)


def test_allowed_row_blocks():
    ok = np.ones((10, 3), bool)
    ok[4:6, 1] = False
    assert allowed_row_blocks(ok, 1) == [(0, 4), (6, 10)]
    assert allowed_row_blocks(ok, 5) == []


@pytest.mark.skipif(not os.path.isfile(COLIN27_PATH), reason="needs Debian's mricron-data (Colin27)")
def test_colin27_pieces_avoid_the_heldout_slab_in_3d():
    pieces, info = native_training_pieces(use_mni152=False)
    split = SliceSplit()
    lo, hi = split.start - split.gap, split.stop + split.gap
    Z = 181
    assert {p.orientation for p in pieces} == {"axial", "coronal", "sagittal"}
    for p in pieces:
        if p.orientation == "axial":
            assert not lo <= p.index < hi
        else:
            z = [Z - 1 - r for r in range(*p.rows)]
            assert max(z) < lo or min(z) >= hi, (p.orientation, p.index, p.rows)
    assert info["num_pieces"] == len(pieces)
