"""monai-ddpm-recon: MRI reconstruction with an unconditional DDPM prior, for MONAI."""

from __future__ import annotations

__version__ = "0.1.0"
