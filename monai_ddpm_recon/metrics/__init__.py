"""Image quality metrics with ``fastmri.evaluate`` conventions: functions and MONAI metric classes."""

from __future__ import annotations

from .functional import nmse, psnr, ssim
from .metrics import NMSEMetric, PSNRMetric, SSIMMetric

__all__ = ["NMSEMetric", "PSNRMetric", "SSIMMetric", "nmse", "psnr", "ssim"]
