"""MONAI metric classes (cumulative, usable with ``monai.handlers`` and evaluators) wrapping the functional metrics."""

from __future__ import annotations

import torch
from monai.metrics.regression import RegressionMetric
from monai.utils import MetricReduction

from .functional import nmse, psnr, ssim


class _MagnitudeMetric(RegressionMetric):
    """Base: ``y_pred``/``y`` are batch-first ``(B, 1, H, W)`` (or ``(B, H, W)``) magnitude or complex images.

    Each batch item gives one value (buffered as ``(B, 1)``); ``aggregate()`` reduces them with ``reduction``
    (``"mean"`` by default). ``data_range=None`` uses each target's own max, as ``fastmri.evaluate`` does per image.
    """

    def __init__(
        self,
        data_range: float | None = None,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(reduction=reduction, get_not_nans=get_not_nans)
        self.data_range = data_range

    def _check_shape(self, y_pred: torch.Tensor, y: torch.Tensor) -> None:
        super()._check_shape(y_pred, y)
        if y.ndim == 4 and y.shape[1] != 1:
            raise ValueError(f"y has {y.shape[1]} channels; expected (B, 1, H, W) magnitude images.")
        if y.ndim not in (3, 4):
            raise ValueError(f"y has shape {tuple(y.shape)}; expected (B, 1, H, W) or (B, H, W).")

    def _values(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _compute_metric(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._values(y_pred, y).reshape(-1, 1)


class PSNRMetric(_MagnitudeMetric):
    """Per-image PSNR (dB) with fastMRI's convention ``data_range = target.max()`` unless given."""

    def _values(self, y_pred, y):
        return psnr(y, y_pred, data_range=self.data_range, per_item=True)


class SSIMMetric(_MagnitudeMetric):
    """Per-image SSIM (7x7 uniform window, K1=0.01, K2=0.03) with ``data_range = target.max()`` unless given."""

    def _values(self, y_pred, y):
        return ssim(y, y_pred, data_range=self.data_range, per_item=True)


class NMSEMetric(_MagnitudeMetric):
    """Per-image NMSE ``||y - y_pred||² / ||y||²`` (``data_range`` is ignored)."""

    def _values(self, y_pred, y):
        return nmse(y, y_pred, per_item=True)
