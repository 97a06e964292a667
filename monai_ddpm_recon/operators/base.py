"""The operator protocol solvers depend on, and mask handling shared by the Fourier operators."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from ..utils.validation import check_finite


@runtime_checkable
class LinearOperator(Protocol):
    """A linear forward model ``A`` from images ``(B, 1, H, W)`` to measurements ``(B, C, H, W)`` (complex).

    Solvers see only this protocol; they never touch FFTs, masks or coil maps directly.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A x``."""

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``Aᴴ y``."""

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``Aᴴ A x``."""

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(H, W)`` of the images the operator acts on."""

    @property
    def num_coils(self) -> int:
        """Number of k-space channels ``C`` (1 for single-coil)."""

    @property
    def mask(self) -> torch.Tensor:
        """Sampling mask broadcastable to ``(B, C, H, W)``; real, values in [0, 1]."""


def prepare_mask(mask, name: str = "mask") -> torch.Tensor:
    """Validate and convert a sampling mask to a real float tensor of shape ``(B|1, 1, H|1, W)``.

    Accepted inputs: 1D column masks ``(W,)`` or ``(B|1, 1, 1, W)``; 2D masks ``(H, W)`` or ``(B|1, 1, H, W)``;
    numpy or torch, bool or real. Values must lie in [0, 1] and at least one sample must be taken.
    """
    if not isinstance(mask, torch.Tensor):
        mask = torch.as_tensor(mask)
    if torch.is_complex(mask):
        raise TypeError(f"{name} must be real (bool or float), got complex dtype {mask.dtype}.")
    mask = mask.to(torch.get_default_dtype()) if not mask.is_floating_point() else mask
    if mask.ndim == 1:
        mask = mask.reshape(1, 1, 1, -1)
    elif mask.ndim == 2:
        mask = mask.reshape(1, 1, *mask.shape)
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(
            f"{name} has shape {tuple(mask.shape)}; expected (W,), (H, W), (B or 1, 1, 1, W) or (B or 1, 1, H, W)."
        )
    check_finite(name, mask)
    if bool((mask < 0).any()) or bool((mask > 1).any()):
        raise ValueError(f"{name} values must lie in [0, 1].")
    per_item = mask.flatten(1).sum(dim=1)
    if bool((per_item == 0).any()):
        raise ValueError(f"{name} is all zero (for at least one batch item); expected at least one sampled location.")
    return mask


def mask_acceleration(mask: torch.Tensor, image_shape: tuple[int, int]) -> torch.Tensor:
    """Effective acceleration ``(H·W) / (number of sampled locations)`` per batch item of a prepared mask."""
    full = torch.ones((1, 1, *image_shape), dtype=mask.dtype, device=mask.device)
    sampled = (mask * full).flatten(1).sum(dim=1)
    return (image_shape[0] * image_shape[1]) / sampled


def repeat_items(t: torch.Tensor, repeats: int) -> torch.Tensor:
    """Repeat each batch item ``repeats`` times (item-major, as ``repeat_interleave``); a shared (batch 1) tensor is
    returned unchanged."""
    return t if t.shape[0] == 1 else t.repeat_interleave(int(repeats), dim=0)
