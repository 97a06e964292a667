"""Single-coil masked Fourier operator ``A = M F``."""

from __future__ import annotations

import torch

from ..utils.validation import check_complex, check_finite, check_shape
from .base import mask_acceleration, prepare_mask, repeat_items
from .fft import fft2c, ifft2c


class MaskedFourier:
    """Single-coil forward model ``y = M ∘ F x`` with a centred orthonormal 2D FFT ``F``.

    Args:
        mask: sampling mask, real, broadcastable to k-space ``(B, 1, H, W)``: a 1D column mask
            ``(B|1, 1, 1, W)`` (or ``(W,)``) or a 2D mask ``(B|1, 1, H, W)`` (or ``(H, W)``).
        image_shape: ``(H, W)``. Required for 1D column masks, inferred from 2D masks.

    Shapes: image ``x`` is ``(B, 1, H, W)`` complex64/complex128; k-space ``y`` is ``(B, 1, H, W)`` of the same dtype.
    All methods are differentiable and run on the device of the mask (see :meth:`to`).
    """

    def __init__(self, mask, image_shape: tuple[int, int] | None = None) -> None:
        mask = prepare_mask(mask)
        if image_shape is None:
            if mask.shape[-2] == 1:
                raise ValueError("image_shape is required with a 1D column mask of shape (B|1, 1, 1, W).")
            image_shape = (int(mask.shape[-2]), int(mask.shape[-1]))
        image_shape = (int(image_shape[0]), int(image_shape[1]))
        if mask.shape[-1] != image_shape[1] or mask.shape[-2] not in (1, image_shape[0]):
            raise ValueError(
                f"mask has shape {tuple(mask.shape)}, which does not match image_shape {image_shape}: "
                f"expected (B|1, 1, 1, {image_shape[1]}) or (B|1, 1, {image_shape[0]}, {image_shape[1]})."
            )
        self._mask = mask
        self._image_shape = image_shape

    # --- protocol properties -------------------------------------------------------------------------------
    @property
    def mask(self) -> torch.Tensor:
        return self._mask

    @property
    def image_shape(self) -> tuple[int, int]:
        return self._image_shape

    @property
    def num_coils(self) -> int:
        return 1

    @property
    def acceleration(self) -> torch.Tensor:
        """Effective acceleration per mask batch item, shape ``(B|1,)``."""
        return mask_acceleration(self._mask, self._image_shape)

    def to(self, device: torch.device | str) -> MaskedFourier:
        """Return a copy whose mask lives on ``device``."""
        return MaskedFourier(self._mask.to(device), self._image_shape)

    def expand(self, repeats: int) -> MaskedFourier:
        """The operator for ``B·repeats`` images ordered item-major (each slice's ``repeats`` posterior samples)."""
        return MaskedFourier(repeat_items(self._mask, repeats), self._image_shape)

    # --- checks ----------------------------------------------------------------------------------------------
    def _check(self, name: str, t: torch.Tensor, channels: int) -> None:
        check_complex(name, t)
        check_shape(name, t, (None, channels, *self._image_shape))
        if self._mask.shape[0] not in (1, t.shape[0]):
            raise ValueError(f"{name} has batch size {t.shape[0]} but the mask has batch size {self._mask.shape[0]}.")

    def _m(self, t: torch.Tensor) -> torch.Tensor:
        return self._mask.to(device=t.device, dtype=t.real.dtype)

    # --- maps ----------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``y = M F x``; ``x`` is ``(B, 1, H, W)`` complex, returns ``(B, 1, H, W)``."""
        self._check("image", x, 1)
        return self._m(x) * fft2c(x)

    __call__ = forward

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``x = Fᴴ Mᴴ y``; ``y`` is ``(B, 1, H, W)`` complex k-space, returns ``(B, 1, H, W)``."""
        self._check("kspace", y, 1)
        check_finite("kspace", y)
        return ifft2c(self._m(y) * y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``Aᴴ A x = Fᴴ M² F x``."""
        self._check("image", x, 1)
        m = self._m(x)
        return ifft2c(m * m * fft2c(x))

    def __repr__(self) -> str:
        return f"MaskedFourier(image_shape={self._image_shape}, mask_shape={tuple(self._mask.shape)})"
