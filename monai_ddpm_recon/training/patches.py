"""Patch datasets for the patch diffusion prior: random crops with coordinate channels, mixed patch sizes.

Every item is a ``(channels + 2, R, R)`` float32 tensor: the image in the prior's ``[-1, 1]`` range, then the
row and column coordinate channels of :func:`monai_ddpm_recon.priors.coordinate_grid` (offsets from the centre of
the slice the crop was cut from, divided by ``coord_scale``). ``R`` is the largest patch size. The dataset's
:meth:`PatchDataset.collate` picks one patch size ``P`` per batch and splits every ``R x R`` crop into its
``(R / P)^2`` tiles, so each batch holds the same number of pixels whatever ``P`` (Wang et al., NeurIPS 2023:
stochastic patch sizes, larger batches of smaller patches).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.native import SlicePiece
from ..data.slices import resize
from ..priors.patch import coordinate_grid

FULL_VIEW_ZOOM = (0.9, 1.1)  # the whole-image priors' zoom augmentation
FULL_VIEW_SHIFT = 0.05  # ... and their shift, as a fraction of the side


def crop_piece(
    piece: SlicePiece, top: int, left: int, size: int, coord_scale: float, flip: bool = False, downsample: float = 1.0
) -> torch.Tensor:
    """Crop ``size x size`` at ``(top, left)`` of a piece (zero background where the crop leaves a piece smaller
    than ``size``), with coordinates; ``(3, size, size)`` float32, image in ``[-1, 1]``.

    ``flip`` mirrors the piece left-right first; its coordinates are mirrored with it, as for a mirrored slice.
    ``downsample > 1`` crops ``round(size * downsample)`` piece pixels instead and resizes them to ``size`` (antialiased
    bilinear, as :func:`monai_ddpm_recon.data.slices.resize`): the crop of a slice acquired with
    pixels ``downsample`` times larger. Its coordinates are those of the coarse slice (offsets from the slice centre
    in coarse pixels, divided by ``coord_scale``), as the prior sees a whole coarse image at inference.
    """
    region = source_side(size, downsample)
    img = piece.image[:, ::-1] if flip else piece.image
    h, w = img.shape
    r0, c0 = piece.origin
    if flip:
        c0 = -(c0 + w - 1)
    out = np.zeros((region, region), np.float32)
    src = img[max(top, 0) : top + region, max(left, 0) : left + region]
    out[max(-top, 0) : max(-top, 0) + src.shape[0], max(-left, 0) : max(-left, 0) + src.shape[1]] = src
    image = torch.from_numpy(out)
    if region == size:
        coords = coordinate_grid(size, size, coord_scale, origin=(r0 + top, c0 + left))
    else:
        image = resize(image[None], size)[0]
        s = region / size  # coarse pixel i covers fine pixels [i s, (i + 1) s): its centre is at (i + 1/2) s - 1/2
        coords = coordinate_grid(size, size, coord_scale, origin=((r0 + top - 0.5) / s + 0.5, (c0 + left - 0.5) / s + 0.5))
    return torch.cat([image[None] * 2 - 1, coords])


def source_side(size: int, downsample: float) -> int:
    """Side of the piece region a ``size x size`` crop at pixel size ``downsample`` is resized from."""
    return max(int(size), int(round(size * float(downsample))))


def is_whole_slice(piece: SlicePiece) -> bool:
    """True when the piece is its whole slice (no rows cut off by the held-out exclusion)."""
    h, w = piece.image.shape
    return piece.rows[0] == 0 and math.isclose(piece.origin[0], -(h - 1) / 2) and math.isclose(piece.origin[1], -(w - 1) / 2)


def full_view_corner_and_scale(
    piece: SlicePiece, size: int, zoom: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)
) -> tuple[int, int, float]:
    """``(top, left, downsample)`` of a ``size x size`` crop showing the whole slice of ``piece``.

    With ``zoom`` 1 and no ``shift`` the crop is the slice centred in a zero square of side ``max(h, w)`` resized to
    ``size`` (what :func:`monai_ddpm_recon.data.slices.resize_square` makes of it, the whole-image priors' data);
    ``zoom`` scales the square's side, ``shift`` moves it by fractions of that side (rows, cols).
    """
    h, w = piece.image.shape
    downsample = max(1.0, max(h, w) * float(zoom) / size)
    region = source_side(size, downsample)
    top = centred_corner(h, region) + int(round(shift[0] * region))
    left = centred_corner(w, region) + int(round(shift[1] * region))
    return top, left, downsample


def centred_corner(length: int, size: int) -> int:
    """Start of a window of ``size`` centred on ``length`` (negative when the window is larger)."""
    return -((size - length) // 2) if length <= size else (length - size) // 2


def random_corner(length: int, size: int, generator: torch.Generator | None = None) -> int:
    """Random start of a window of ``size`` inside ``length`` (centred, possibly negative, when it cannot fit)."""
    if length <= size:
        return centred_corner(length, size)
    return int(torch.randint(0, length - size + 1, (1,), generator=generator))


class PatchDataset(Dataset):
    """Random ``R x R`` crops (``R = max(patch_sizes)``) of slice pieces, with coordinate channels.

    Each piece appears ``ceil(area / R^2) * crops_per_area`` times per epoch, so large slices give more crops.

    Args:
        pieces: :class:`~monai_ddpm_recon.data.native.SlicePiece` list (magnitudes in ``[0, 1]``).
        patch_sizes: patch sides drawn per batch by :meth:`collate`; each must divide the largest.
        patch_probs: probabilities of ``patch_sizes`` (default: uniform).
        coord_scale: pixels per coordinate unit (must equal the prior's).
        flip_prob: probability of a left-right mirror of the piece.
        intensity_range: the crop is multiplied by a factor drawn uniformly from this range.
        crops_per_area: crops per ``R^2`` of piece area per epoch.
        downsample_prob: probability that a crop is taken at a coarser pixel size (scale augmentation: one prior
            for 1 mm slices and for coarse matrices such as 64 x 64 whole-brain images).
        downsample_range: ``(lo, hi)`` with ``1 <= lo <= hi``: the coarse crop's pixel size in piece pixels, drawn
            log-uniformly (see :func:`crop_piece`'s ``downsample``).
        full_view_prob: probability that a crop of a piece that is a whole slice shows the whole slice (Patch
            Diffusion's share of full-size images; here at the coarse pixel size that fits the slice into ``R``, as a
            64 x 64 whole-brain image), zoomed by ``U(0.9, 1.1)`` and shifted by up to 5 % of its side. Drawn before
            ``downsample_prob``; pieces cut by the held-out exclusion never give full views (they would show a slice
            with rows missing).
    """

    def __init__(
        self,
        pieces: Sequence[SlicePiece],
        patch_sizes: Sequence[int] = (16, 32, 64),
        patch_probs: Sequence[float] | None = None,
        coord_scale: float = 128.0,
        flip_prob: float = 0.5,
        intensity_range: Sequence[float] = (0.9, 1.0),
        crops_per_area: float = 1.0,
        downsample_prob: float = 0.0,
        downsample_range: Sequence[float] = (1.0, 4.0),
        full_view_prob: float = 0.0,
    ) -> None:
        if len(pieces) == 0:
            raise ValueError("pieces is empty: no training slices (check the data paths and the foreground threshold).")
        self.pieces = list(pieces)
        self.patch_sizes = [int(p) for p in patch_sizes]
        self.region = max(self.patch_sizes)
        if any(self.region % p for p in self.patch_sizes):
            raise ValueError(f"patch_sizes {self.patch_sizes} must each divide the largest ({self.region}).")
        probs = np.ones(len(self.patch_sizes)) if patch_probs is None else np.asarray(patch_probs, dtype=float)
        if probs.shape != (len(self.patch_sizes),) or (probs < 0).any() or probs.sum() <= 0:
            raise ValueError(f"patch_probs must be {len(self.patch_sizes)} non-negative weights, got {patch_probs!r}.")
        self.patch_probs = torch.as_tensor(probs / probs.sum())
        self.coord_scale = float(coord_scale)
        self.flip_prob = float(flip_prob)
        self.intensity_range = (float(intensity_range[0]), float(intensity_range[1]))
        lo, hi = (float(v) for v in downsample_range)
        if not 0.0 <= float(downsample_prob) <= 1.0 or not 1.0 <= lo <= hi:
            raise ValueError(
                f"downsample_prob must lie in [0, 1] and downsample_range be (lo, hi) with 1 <= lo <= hi, got "
                f"{downsample_prob!r} and {downsample_range!r}."
            )
        self.downsample_prob, self.downsample_range = float(downsample_prob), (lo, hi)
        if not 0.0 <= float(full_view_prob) <= 1.0:
            raise ValueError(f"full_view_prob must lie in [0, 1], got {full_view_prob!r}.")
        self.full_view_prob = float(full_view_prob)
        self.whole_slice = [is_whole_slice(p) for p in self.pieces]
        self.augment = True  # the trainer switches this off to score training images without augmentation
        reps = [max(1, int(round(crops_per_area * p.image.size / self.region**2))) for p in self.pieces]
        self.index = np.repeat(np.arange(len(self.pieces)), reps)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        piece = self.pieces[int(self.index[i])]
        R = self.region
        h, w = piece.image.shape
        if not self.augment:  # deterministic: the centre crop, no flip, no intensity change
            return crop_piece(piece, centred_corner(h, R), centred_corner(w, R), R, self.coord_scale)
        flip = bool(torch.rand(()) < self.flip_prob)
        if self.full_view_prob > 0 and self.whole_slice[int(self.index[i])] and float(torch.rand(())) < self.full_view_prob:
            zoom = FULL_VIEW_ZOOM[0] + (FULL_VIEW_ZOOM[1] - FULL_VIEW_ZOOM[0]) * float(torch.rand(()))
            shift = tuple(float(v) for v in (torch.rand(2) * 2 - 1) * FULL_VIEW_SHIFT)
            top, left, factor = full_view_corner_and_scale(piece, R, zoom, shift)
        else:
            factor = self._draw_downsample()
            region = source_side(R, factor)
            top, left = random_corner(h, region), random_corner(w, region)
        x = crop_piece(piece, top, left, R, self.coord_scale, flip, factor)
        lo, hi = self.intensity_range
        scale = lo + (hi - lo) * float(torch.rand(()))
        x[0] = (x[0] + 1) * scale - 1
        return x

    def _draw_downsample(self) -> float:
        if self.downsample_prob == 0.0 or float(torch.rand(())) >= self.downsample_prob:
            return 1.0
        lo, hi = self.downsample_range
        return math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * float(torch.rand(())))

    def collate(self, items: list[torch.Tensor]) -> torch.Tensor:
        """Stack the crops and split them into tiles of one patch size drawn for this batch."""
        batch = torch.stack(items)
        P = self.patch_sizes[int(torch.multinomial(self.patch_probs, 1))]
        n = self.region // P
        B, C = batch.shape[:2]
        return batch.reshape(B, C, n, P, n, P).permute(0, 2, 4, 1, 3, 5).reshape(B * n * n, C, P, P)

    def describe(self) -> dict:
        return {
            "patch_sizes": self.patch_sizes,
            "patch_probs": [round(float(p), 4) for p in self.patch_probs],
            "region": self.region,
            "coord_scale": self.coord_scale,
            "flip_prob": self.flip_prob,
            "intensity_range": list(self.intensity_range),
            "num_pieces": len(self.pieces),
            "crops_per_epoch": len(self),
            "downsample_prob": self.downsample_prob,
            "downsample_range": list(self.downsample_range),
            "full_view_prob": self.full_view_prob,
            "full_view_zoom": list(FULL_VIEW_ZOOM),
            "full_view_shift": FULL_VIEW_SHIFT,
            "whole_slice_pieces": int(sum(self.whole_slice)),
        }


def fixed_patches(slices: np.ndarray, size: int, coord_scale: float, offsets: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
    """Fixed crops with coordinates of whole slices, for validation: ``(N * len(offsets), 3, size, size)``.

    The image channel stays in ``[0, 1]`` (the trainer maps it to ``[-1, 1]``). ``offsets`` are crop centres
    relative to the slice centre (default: the four quadrants of the central ``2 size x 2 size`` square).

    Args:
        slices: float32 ``(N, 1, H, W)`` in ``[0, 1]``.
    """
    offsets = offsets or [(-size // 2, -size // 2), (-size // 2, size // 2), (size // 2, -size // 2), (size // 2, size // 2)]
    out = []
    for sl in np.asarray(slices, dtype=np.float32)[:, 0]:
        h, w = sl.shape
        piece = SlicePiece(sl, (-(h - 1) / 2, -(w - 1) / 2), "heldout", "axial", 0, (0, h))
        for dy, dx in offsets:
            top, left = h // 2 + dy - size // 2, w // 2 + dx - size // 2
            x = crop_piece(piece, top, left, size, coord_scale)
            x[0] = (x[0] + 1) / 2
            out.append(x.numpy())
    return np.stack(out).astype(np.float32)


def native_patch_data(
    colin27_path: str | None = None,
    use_mni152: bool = True,
    orientations: Sequence[str] = ("axial", "coronal", "sagittal"),
    val_patch_size: int = 64,
    coord_scale: float = 128.0,
) -> dict:
    """Training pieces and validation patches for the patch prior (wired by the bundle's ``train_patch.json``).

    Returns:
        ``{"train": pieces, "heldout": (M, 3, P, P) fixed crops of the held-out slab (image in [0, 1]),
        "heldout_slices": (16, 1, 217, 181), "provenance": dict}``.
    """
    from ..data.native import heldout_native_slices, native_training_pieces
    from ..data.slices import COLIN27_PATH

    path = colin27_path or COLIN27_PATH
    pieces, info = native_training_pieces(path, use_mni152, orientations=orientations)
    held = heldout_native_slices(path)
    return {
        "train": pieces,
        "heldout": fixed_patches(held, val_patch_size, coord_scale),
        "heldout_slices": held,
        "provenance": info,
    }
