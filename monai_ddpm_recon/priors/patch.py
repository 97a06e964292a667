"""Patch diffusion prior: a DDPM trained on image patches with coordinate channels, applied to images of any size.

The network (MONAI ``DiffusionModelUNet``) sees a noisy patch plus two channels holding the patch's pixel
coordinates in the whole-slice frame. At inference an ``H x W`` image is covered in one of two ways (``tiling``):

- ``"whole"`` (Patch Diffusion's inference, Wang et al.): the network is fully
  convolutional, so it runs once on the whole image with the whole coordinate grid, padded with noised background to a
  multiple of ``2 ** (levels - 1)``.
- ``"patches"`` (PaDIS, Hu et al.): the image is placed on a canvas that is a whole number of patches, at an offset
  that changes with the timestep, the uncovered canvas is filled with noised background, every patch is denoised
  separately, and the patches are stitched back and cropped (each pixel lies in exactly one patch). Changing the
  tiling between steps keeps patch seams from settling in one place.

Either way the result is an ordinary ε-prediction of the whole image, and memory is bounded by
``max_patches_per_forward`` patches' worth of pixels per network call. Measured on the held-out 1 mm slab
(``benchmarks/patch_prior.py``): ``"whole"`` is the better one-step denoiser (a patch's border pixels see less
context) and reconstructs as well or better inside DiffPIR up to the training slices' size (217 x 181, 128², 96²);
on larger zero-padded matrices (256², 320²) ``"patches"`` reconstructs better (+0.6 / +1.1 dB). The default
``"auto"`` picks ``"whole"`` up to :data:`WHOLE_MAX_SIDE` pixels and ``"patches"`` beyond.

Coordinate frame: ``(row - (H - 1) / 2, col - (W - 1) / 2) / coord_scale``, i.e. pixels from the image centre
(1 mm at native resolution) divided by ``coord_scale``. Training patches use the centre of the slice they were cut
from, so the frame is the same at training and inference for brain-centred images of any matrix size.

References:
    Wang et al., "Patch Diffusion: Faster and More Data-Efficient Training of Diffusion Models", NeurIPS 2023
    (coordinate channels, stochastic patch sizes).
    Hu et al., "Learning Image Priors through Patch-based Diffusion Models for Solving Inverse Problems",
    NeurIPS 2024 (PaDIS: whole-image scores from patch scores with a random-offset tiling per step).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from ..utils.enums import StrEnum
from ..utils.validation import check_finite
from .base import Schedule
from .ddpm import PRIOR_CLASSES, DDPMPrior

# "auto" tiling: one pass up to this side, patches beyond. Chosen on the tuning slices (DiffPIR, 8 coils, R 8, the
# slab zero-padded at 1 mm; benchmarks/results/patch_prior/tiling_tune_*): patches - whole = +0.05 / -0.12 dB at
# 217² / 224², then +0.11 / +0.60 / +0.83 / +1.04 dB at 240² / 256² / 288² / 320².
WHOLE_MAX_SIDE = 224
BACKGROUND = {1: -1.0, 2: 0.0}  # zero signal in the prior's intensity range: magnitude 0 -> 2*0-1; real/imag 0 -> 0


def coordinate_grid(
    height: int, width: int, coord_scale: float, origin: tuple[float, float] | None = None
) -> torch.Tensor:
    """Coordinate channels ``(2, height, width)`` float32: row and column offsets from the image centre / scale.

    Args:
        height, width: size of the grid.
        coord_scale: pixels per coordinate unit.
        origin: offsets (in pixels) of the grid's pixel ``(0, 0)`` from the image centre; default: the grid is the
            whole image, so ``(-(height - 1) / 2, -(width - 1) / 2)``.
    """
    r0, c0 = origin if origin is not None else (-(height - 1) / 2, -(width - 1) / 2)
    rows = (torch.arange(height, dtype=torch.float32) + float(r0)) / float(coord_scale)
    cols = (torch.arange(width, dtype=torch.float32) + float(c0)) / float(coord_scale)
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"))


class Tiling(StrEnum):
    """How a :class:`PatchDDPMPrior` covers a whole image at inference (see the module docstring)."""

    AUTO = "auto"
    PATCHES = "patches"
    WHOLE = "whole"


class PatchDDPMPrior(DDPMPrior):
    """ε-prediction DDPM prior learned on patches; models ``(B, channels, H, W)`` images of any ``H, W``.

    Args:
        patch_size: side of the patches the image is tiled into at inference (a size seen in training; the
            network's ``image_size`` attribute is ``(patch_size, patch_size)``).
        channels: 1 (magnitude) or 2 (real, imaginary).
        network: a ``DiffusionModelUNet`` with ``channels + 2`` inputs (built from ``network_kwargs`` when None).
        network_kwargs: kwargs of ``DiffusionModelUNet``.
        train_patch_sizes: patch sides used in training (recorded in the checkpoint; each must be divisible by
            ``2 ** (levels - 1)``).
        coord_scale: pixels per coordinate unit (see the module docstring).
        tiling: ``"auto"`` (default: ``"whole"`` for images whose longer side is at most ``whole_max_side``,
            ``"patches"`` for larger ones), ``"whole"`` (one pass over the whole image) or ``"patches"``
            (random-offset patch tiling per timestep); an attribute that can be changed after loading (or use
            :meth:`with_tiling`).
        whole_max_side: the longest image side that ``"auto"`` covers in one pass (see :data:`WHOLE_MAX_SIDE`).
        max_patches_per_forward: patches per network call (bounds memory; ``"whole"`` passes as many images per call
            as fit in the same number of pixels, at least one).
        tiling_seed: the tiling offset and the background noise at timestep ``t`` are drawn from a generator seeded
            with ``(tiling_seed, t)``, so results depend on the seed and ``t`` only, never on the call history.
        num_train_timesteps, schedule, beta_start, beta_end, device: as :class:`DDPMPrior`.
        image_size: ignored apart from a check (accepted so that generic code can pass it); the prior accepts any size.

    Shapes: ``eps(x_t, t)`` takes real float ``(B, channels, H, W)`` with any ``H, W >= 1`` and returns the same shape.
    """

    condition_channels = 2
    prior_class = "patch"
    class_config_keys = ("patch_size", "train_patch_sizes", "coord_scale")

    def __init__(
        self,
        patch_size: int = 64,
        channels: int = 1,
        network: nn.Module | None = None,
        network_kwargs: dict | None = None,
        train_patch_sizes: Sequence[int] = (16, 32, 64),
        coord_scale: float = 128.0,
        tiling: Tiling | str = Tiling.AUTO,
        whole_max_side: int = WHOLE_MAX_SIDE,
        max_patches_per_forward: int = 64,
        tiling_seed: int = 0,
        num_train_timesteps: int = 1000,
        schedule: Schedule | str = Schedule.LINEAR,
        beta_start: float = 1e-4,
        beta_end: float = 2e-2,
        device: str | torch.device | None = None,
        image_size: tuple[int, int] | int | None = None,
    ) -> None:
        patch_size = int(patch_size)
        if image_size is not None:
            size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(s) for s in image_size)
            if size != (patch_size, patch_size):
                raise ValueError(f"image_size {size} of a patch prior must be (patch_size, patch_size)=({patch_size}, {patch_size}).")
        self.train_patch_sizes = sorted(int(p) for p in train_patch_sizes)
        if not self.train_patch_sizes or min(self.train_patch_sizes) < 4:
            raise ValueError(f"train_patch_sizes must be a non-empty list of sides >= 4, got {list(train_patch_sizes)!r}.")
        if float(coord_scale) <= 0 or not math.isfinite(float(coord_scale)):
            raise ValueError(f"coord_scale must be a positive number of pixels, got {coord_scale!r}.")
        if int(whole_max_side) < 1:
            raise ValueError(f"whole_max_side must be a positive number of pixels, got {whole_max_side!r}.")
        if int(max_patches_per_forward) < 1:
            raise ValueError(f"max_patches_per_forward must be >= 1, got {max_patches_per_forward!r}.")
        self.coord_scale = float(coord_scale)
        self.max_patches_per_forward = int(max_patches_per_forward)
        self.whole_max_side = int(whole_max_side)
        self.tiling_seed = int(tiling_seed)
        self.tiling = tiling
        super().__init__(patch_size, channels, network, network_kwargs, num_train_timesteps, schedule, beta_start, beta_end, device)
        levels = len(self.network_kwargs["channels"])
        bad = [p for p in self.train_patch_sizes if p % (2 ** (levels - 1))]
        if bad:
            raise ValueError(f"train_patch_sizes {bad} are not divisible by 2**(levels-1)={2 ** (levels - 1)}.")

    @property
    def patch_size(self) -> int:
        return self.image_size[0]

    @property
    def tiling(self) -> Tiling:
        return self._tiling

    @tiling.setter
    def tiling(self, value: Tiling | str) -> None:
        self._tiling = Tiling.parse(value, "tiling")

    def with_tiling(self, tiling: Tiling | str) -> PatchDDPMPrior:
        """The same prior (network shared) covering images with another ``tiling``."""
        view = copy.copy(self)
        view.tiling = tiling
        return view

    def tiling_for(self, size: tuple[int, int]) -> Tiling:
        """The tiling that covers an ``(H, W)`` image: ``"auto"`` resolved by the longer side."""
        if self.tiling != Tiling.AUTO:
            return self.tiling
        return Tiling.WHOLE if max(int(s) for s in size) <= self.whole_max_side else Tiling.PATCHES

    def supports_size(self, size: tuple[int, int]) -> bool:
        return len(size) == 2 and all(int(s) >= 1 for s in size)

    def check_input(self, x_t: torch.Tensor) -> None:
        if x_t.ndim != 4 or x_t.shape[1] != self.channels or min(x_t.shape[-2:]) < 1:
            raise ValueError(f"x_t has shape {tuple(x_t.shape)}; this patch prior expects (B, {self.channels}, H, W) with any H, W >= 1.")
        if torch.is_complex(x_t):
            raise TypeError("x_t must be real; complex images enter a prior as magnitude or as 2 channels (real, imag).")

    # --- tiling --------------------------------------------------------------------------------------------------
    def tiling_offset(self, t: int) -> tuple[int, int]:
        """Offset ``(rows, cols)`` in ``[0, patch_size)`` of the image on the canvas at timestep ``t``."""
        g = torch.Generator().manual_seed(self.tiling_seed * 1_000_003 + int(t))
        oy, ox = torch.randint(0, self.patch_size, (2,), generator=g).tolist()
        return int(oy), int(ox)

    def eps(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """ε(x_t, t) of the whole image, stitched from patch predictions; same shape/device/dtype as ``x_t``."""
        self.check_input(x_t)
        check_finite("x_t", x_t)
        tt = self.timesteps(t, x_t.shape[0]).cpu()
        values = torch.unique(tt).tolist()
        run = self._eps_whole if self.tiling_for(x_t.shape[-2:]) == Tiling.WHOLE else self._eps_tiled
        if len(values) == 1:
            return run(x_t, int(values[0])).to(dtype=x_t.dtype)
        out = torch.empty_like(x_t)
        for t_value in values:  # one canvas per timestep value
            rows = (tt == t_value).nonzero().flatten().to(x_t.device)
            out[rows] = run(x_t[rows], int(t_value)).to(dtype=x_t.dtype)
        return out

    def _canvas_input(self, x: torch.Tensor, t: int, height: int, width: int, oy: int, ox: int) -> torch.Tensor:
        """Network input ``(B, C + 2, height, width)``: ``x`` at ``(oy, ox)`` on a canvas of zero signal noised to
        level ``t`` (the same draw for every batch item, so that an item's result does not depend on its batch), plus
        the whole image's coordinate channels."""
        B, C, H, W = x.shape
        device = self.device
        a = float(self.alphas_cumprod[t])
        g = torch.Generator().manual_seed(self.tiling_seed * 1_000_003 + int(t) + 7)
        background = torch.randn((1, C, height, width), generator=g) * math.sqrt(1 - a) + math.sqrt(a) * BACKGROUND[C]
        canvas = background.expand(B, -1, -1, -1).to(device).clone()
        canvas[:, :, oy : oy + H, ox : ox + W] = x.to(device=device, dtype=torch.float32)
        coords = coordinate_grid(height, width, self.coord_scale, origin=(-oy - (H - 1) / 2, -ox - (W - 1) / 2)).to(device)
        return torch.cat([canvas, coords.expand(B, -1, -1, -1)], 1)

    def _network_in_chunks(self, inp: torch.Tensor, t: int, per_call: int) -> torch.Tensor:
        """ε of every item of ``inp``, ``per_call`` items per network call (bounds memory)."""
        preds = []
        for i in range(0, inp.shape[0], per_call):
            chunk = inp[i : i + per_call]
            preds.append(self.network(chunk, torch.full((chunk.shape[0],), t, dtype=torch.long, device=inp.device)).float())
        return torch.cat(preds)

    def _eps_whole(self, x: torch.Tensor, t: int) -> torch.Tensor:
        H, W = x.shape[-2:]
        m = 2 ** (len(self.network_kwargs["channels"]) - 1)
        Hp, Wp = -(-H // m) * m, -(-W // m) * m
        oy, ox = (Hp - H) // 2, (Wp - W) // 2
        inp = self._canvas_input(x, t, Hp, Wp, oy, ox)
        per_call = max(1, self.max_patches_per_forward * self.patch_size**2 // (Hp * Wp))  # the tiling's pixel budget
        return self._network_in_chunks(inp, t, per_call)[:, :, oy : oy + H, ox : ox + W].to(x.device)

    def _eps_tiled(self, x: torch.Tensor, t: int) -> torch.Tensor:
        B, C, H, W = x.shape
        P = self.patch_size
        oy, ox = self.tiling_offset(t)
        ny, nx = -(-(H + oy) // P), -(-(W + ox) // P)
        inp = self._canvas_input(x, t, ny * P, nx * P, oy, ox)
        # (B, C+2, ny*P, nx*P) -> (B*ny*nx, C+2, P, P)
        patches = inp.reshape(B, C + 2, ny, P, nx, P).permute(0, 2, 4, 1, 3, 5).reshape(B * ny * nx, C + 2, P, P)
        pred = self._network_in_chunks(patches, t, self.max_patches_per_forward)
        pred = pred.reshape(B, ny, nx, C, P, P).permute(0, 3, 1, 4, 2, 5).reshape(B, C, ny * P, nx * P)
        return pred[:, :, oy : oy + H, ox : ox + W].to(x.device)


PRIOR_CLASSES[PatchDDPMPrior.prior_class] = PatchDDPMPrior
