"""Multi-coil SENSE operator ``A = M F S``."""

from __future__ import annotations

import torch

from ..utils.validation import check_complex, check_finite, check_shape
from .base import mask_acceleration, prepare_mask, repeat_items
from .fft import fft2c, ifft2c


class SenseOperator:
    """Multi-coil SENSE forward model ``y_c = M ∘ F (S_c ∘ x)`` (Pruessmann et al., 1999).

    Args:
        sens_maps: coil sensitivities ``(B|1, C, H, W)`` complex64/complex128, finite.
        mask: sampling mask broadcastable to ``(B, C, H, W)``: ``(B|1, 1, 1, W)`` column mask or
            ``(B|1, 1, H, W)`` 2D mask (also ``(W,)`` or ``(H, W)``).

    Shapes: image ``x`` is ``(B, 1, H, W)`` complex; k-space ``y`` is ``(B, C, H, W)`` complex.
    Equal to ``sigpy.mri.linop.Sense(maps, weights=mask)`` applied per batch item (tested).
    """

    def __init__(self, sens_maps: torch.Tensor, mask) -> None:
        check_complex("sens_maps", sens_maps)
        if sens_maps.ndim != 4:
            raise ValueError(f"sens_maps has shape {tuple(sens_maps.shape)}; expected (B|1, C, H, W).")
        check_finite("sens_maps", sens_maps)
        if not bool((sens_maps.abs() > 0).any()):
            raise ValueError("sens_maps is all zero; expected non-zero coil sensitivities.")
        mask = prepare_mask(mask).to(sens_maps.device)
        h, w = sens_maps.shape[-2:]
        if mask.shape[-1] != w or mask.shape[-2] not in (1, h):
            raise ValueError(
                f"mask has shape {tuple(mask.shape)}, which does not match sens_maps {tuple(sens_maps.shape)}: "
                f"expected (B|1, 1, 1, {w}) or (B|1, 1, {h}, {w})."
            )
        if mask.shape[0] != 1 and sens_maps.shape[0] != 1 and mask.shape[0] != sens_maps.shape[0]:
            raise ValueError(f"mask batch size {mask.shape[0]} does not match sens_maps batch size {sens_maps.shape[0]}.")
        self._maps = sens_maps
        self._mask = mask

    @property
    def sens_maps(self) -> torch.Tensor:
        return self._maps

    @property
    def mask(self) -> torch.Tensor:
        return self._mask

    @property
    def image_shape(self) -> tuple[int, int]:
        return (int(self._maps.shape[-2]), int(self._maps.shape[-1]))

    @property
    def num_coils(self) -> int:
        return int(self._maps.shape[1])

    @property
    def acceleration(self) -> torch.Tensor:
        """Effective acceleration per mask batch item, shape ``(B|1,)``."""
        return mask_acceleration(self._mask, self.image_shape)

    def to(self, device: torch.device | str) -> SenseOperator:
        """Return a copy whose maps and mask live on ``device``."""
        return SenseOperator(self._maps.to(device), self._mask.to(device))

    def expand(self, repeats: int) -> SenseOperator:
        """The operator for ``B·repeats`` images ordered item-major (each slice's ``repeats`` posterior samples)."""
        return SenseOperator(repeat_items(self._maps, repeats), repeat_items(self._mask, repeats))

    def _check(self, name: str, t: torch.Tensor, channels: int) -> None:
        check_complex(name, t)
        check_shape(name, t, (None, channels, *self.image_shape))
        for what, b in (("sens_maps", self._maps.shape[0]), ("mask", self._mask.shape[0])):
            if b not in (1, t.shape[0]):
                raise ValueError(f"{name} has batch size {t.shape[0]} but {what} has batch size {b}.")

    def _s(self, t: torch.Tensor) -> torch.Tensor:
        return self._maps.to(device=t.device, dtype=t.dtype)

    def _m(self, t: torch.Tensor) -> torch.Tensor:
        return self._mask.to(device=t.device, dtype=t.real.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``y = M F S x``; ``x`` is ``(B, 1, H, W)``, returns ``(B, C, H, W)``."""
        self._check("image", x, 1)
        return self._m(x) * fft2c(self._s(x) * x)

    __call__ = forward

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``x = Σ_c S_cᴴ Fᴴ M y_c``; ``y`` is ``(B, C, H, W)``, returns ``(B, 1, H, W)``."""
        self._check("kspace", y, self.num_coils)
        check_finite("kspace", y)
        return (self._s(y).conj() * ifft2c(self._m(y) * y)).sum(dim=1, keepdim=True)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``Aᴴ A x``."""
        self._check("image", x, 1)
        s, m = self._s(x), self._m(x)
        return (s.conj() * ifft2c(m * m * fft2c(s * x))).sum(dim=1, keepdim=True)

    def __repr__(self) -> str:
        return f"SenseOperator(num_coils={self.num_coils}, image_shape={self.image_shape}, mask_shape={tuple(self._mask.shape)})"
