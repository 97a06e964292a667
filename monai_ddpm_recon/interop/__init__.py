"""Interoperability with other imaging libraries (optional extras).

- :mod:`monai_ddpm_recon.interop.deepinv`: DeepInverse (``pip install monai-ddpm-recon[deepinv]``):
  :class:`~.deepinv.PriorDenoiser` (a diffusion prior as a deepinv denoiser),
  :class:`~.deepinv.OperatorPhysics` (our operator as a deepinv ``LinearPhysics``) and
  :class:`~.deepinv.DeepinvOperator` (deepinv's ``MRI`` / ``MultiCoilMRI`` as our operator).

Importing this package does not import deepinv; the names above are resolved lazily on first access, so
``import monai_ddpm_recon.interop`` works without the extra installed.
"""

from __future__ import annotations

import importlib

_DEEPINV_NAMES = ("PriorDenoiser", "OperatorPhysics", "DeepinvOperator")

__all__ = list(_DEEPINV_NAMES)


def __getattr__(name: str):
    """Lazy access to the deepinv wrappers (imports deepinv on first use)."""
    if name in _DEEPINV_NAMES:
        module = importlib.import_module(f"{__name__}.deepinv")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_DEEPINV_NAMES))
