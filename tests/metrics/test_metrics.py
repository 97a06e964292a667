"""Metrics equal fastmri.evaluate on the same arrays; MONAI metric classes accumulate per-image values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastmri import evaluate

from monai_ddpm_recon.metrics import NMSEMetric, PSNRMetric, SSIMMetric, nmse, psnr, ssim


def _pair(n=3, h=32, w=24, seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.random((n, h, w)) * 3.0
    pred = gt + 0.2 * rng.standard_normal((n, h, w))
    return gt, np.abs(pred)


def test_volume_metrics_equal_fastmri():
    gt, pred = _pair()
    assert float(psnr(gt, pred)) == pytest.approx(float(evaluate.psnr(gt, pred)), rel=1e-10)
    assert float(nmse(gt, pred)) == pytest.approx(float(evaluate.nmse(gt, pred)), rel=1e-10)
    assert float(ssim(gt, pred)) == pytest.approx(float(evaluate.ssim(gt, pred)[0]), rel=1e-8)


@pytest.mark.parametrize("maxval", [1.0, 5.0])
def test_explicit_data_range_equals_fastmri_maxval(maxval):
    gt, pred = _pair(seed=1)
    assert float(psnr(gt, pred, data_range=maxval)) == pytest.approx(float(evaluate.psnr(gt, pred, maxval)), rel=1e-10)
    assert float(ssim(gt, pred, data_range=maxval)) == pytest.approx(float(evaluate.ssim(gt, pred, maxval)[0]), rel=1e-8)


def test_single_image_torch_and_complex_input():
    gt, pred = _pair(n=1, seed=2)
    phase = np.exp(1j * np.random.default_rng(0).random(gt.shape))
    t = torch.from_numpy(gt[0] * phase[0])  # complex (H, W): magnitude is used
    p = torch.from_numpy(pred[0]).float()
    assert float(psnr(t, p)) == pytest.approx(float(evaluate.psnr(gt[0], pred[0].astype(np.float32).astype(np.float64))), rel=1e-6)
    assert float(ssim(t[None, None], p[None, None])) == pytest.approx(
        float(evaluate.ssim(gt, pred.astype(np.float32).astype(np.float64))[0]), rel=1e-6
    )


def test_per_item_values_equal_fastmri_per_slice():
    gt, pred = _pair(n=4, seed=3)
    got_p = psnr(gt, pred, per_item=True)
    got_s = ssim(gt, pred, per_item=True)
    got_n = nmse(gt, pred, per_item=True)
    assert got_p.shape == got_s.shape == got_n.shape == (4,)
    for i in range(4):
        assert float(got_p[i]) == pytest.approx(float(evaluate.psnr(gt[i], pred[i])), rel=1e-10)
        assert float(got_s[i]) == pytest.approx(float(evaluate.ssim(gt[i : i + 1], pred[i : i + 1])[0]), rel=1e-8)
        assert float(got_n[i]) == pytest.approx(float(evaluate.nmse(gt[i], pred[i])), rel=1e-10)


def test_analytic_cases():
    gt = torch.ones(16, 16) * 2.0
    pred = gt + 0.2
    # MSE = 0.04, data_range = 2  ->  10 log10(4 / 0.04) = 20 dB
    assert float(psnr(gt, pred)) == pytest.approx(20.0)
    assert float(nmse(gt, pred)) == pytest.approx(0.01)
    x = torch.rand(16, 16)
    assert float(ssim(x, x)) == pytest.approx(1.0)
    assert float(psnr(x, x)) == float("inf")


def test_metrics_are_differentiable():
    gt, pred = _pair(n=1, seed=4)
    p = torch.from_numpy(pred).requires_grad_(True)
    (ssim(gt, p) + psnr(gt, p)).backward()
    assert p.grad is not None and bool(torch.isfinite(p.grad).all())


def test_bad_input():
    with pytest.raises(ValueError, match="pred"):
        psnr(np.ones((8, 8)), np.ones((8, 9)))
    with pytest.raises(ValueError, match="target"):
        ssim(np.ones((2, 3, 8, 8)), np.ones((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="data_range"):
        psnr(np.zeros((8, 8)), np.ones((8, 8)))
    with pytest.raises(ValueError, match="pred"):
        nmse(np.ones((8, 8)), np.full((8, 8), np.nan))
    with pytest.raises(TypeError, match="target"):
        psnr([[1.0]], np.ones((1, 1)))
    with pytest.raises(ValueError, match="7x7"):
        ssim(np.ones((5, 5)), np.ones((5, 5)))


@pytest.mark.parametrize(
    "cls,fn", [(PSNRMetric, evaluate.psnr), (NMSEMetric, evaluate.nmse), (SSIMMetric, None)]
)
def test_monai_metric_classes(cls, fn):
    gt, pred = _pair(n=5, seed=5)
    metric = cls()
    y, y_pred = torch.from_numpy(gt)[:, None], torch.from_numpy(pred)[:, None]
    metric(y_pred=y_pred[:3], y=y[:3])
    metric(y_pred=[y_pred[3], y_pred[4]], y=[y[3], y[4]])  # list of channel-first items, as MONAI allows
    per_item = metric.aggregate(reduction="none")
    assert per_item.shape == (5, 1)
    for i in range(5):
        ref = fn(gt[i], pred[i]) if fn is not None else evaluate.ssim(gt[i : i + 1], pred[i : i + 1])[0]
        assert float(per_item[i, 0]) == pytest.approx(float(ref), rel=1e-8)
    assert float(metric.aggregate()) == pytest.approx(float(per_item.mean()))
    metric.reset()
    with pytest.raises(ValueError):
        metric(y_pred=y_pred[:2], y=y[:3])


def test_monai_metric_in_evaluator_handler():
    """The classes plug into MONAI's ignite handlers (skipped if ignite is not installed)."""
    pytest.importorskip("ignite")
    from monai.handlers import IgniteMetricHandler

    from ignite.engine import Engine

    gt, pred = _pair(n=2, seed=6)
    batch = (torch.from_numpy(pred)[:, None], torch.from_numpy(gt)[:, None])
    engine = Engine(lambda e, b: b)
    IgniteMetricHandler(metric_fn=PSNRMetric()).attach(engine, name="psnr")
    engine.run([batch], max_epochs=1)
    ref = np.mean([evaluate.psnr(gt[i], pred[i]) for i in range(2)])
    assert float(engine.state.metrics["psnr"]) == pytest.approx(float(ref), rel=1e-6)  # handler returns float32
