"""The shared runner's benchmark summary (``score_cases``) against a direct computation with the package metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_ddpm_recon.metrics import psnr, ssim
from monai_ddpm_recon.solvers import SenseSolver, ZeroFilledSolver
from monai_ddpm_recon.workflows import CaseSpec, load_cases, score_cases
from monai_ddpm_recon.workflows.runner import stack_cases


@pytest.fixture
def cases(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "slab.npy"
    np.save(path, rng.random((3, 24, 20)).astype(np.float32))
    return load_cases(CaseSpec(example_data=str(path), slices=[0, 1, 2], image_size=None, num_coils=4, acceleration=3))


def test_score_cases_matches_the_metrics_and_zero_filled(cases):
    got = score_cases(SenseSolver(), cases, torch.device("cpu"), batch_size=2)
    kspace, op = stack_cases(cases, torch.device("cpu"))
    img, zf = SenseSolver()(kspace, op), ZeroFilledSolver()(kspace, op)
    for c, row, x, z in zip(cases, got["per_slice"], img, zf):
        target = c.target.abs()
        assert row["case"] == c.name
        assert row["psnr"] == pytest.approx(float(psnr(target, x[0].abs())), abs=1e-4)
        assert row["ssim"] == pytest.approx(float(ssim(target, x[0].abs())), abs=1e-5)
        assert row["gain"] == pytest.approx(row["psnr"] - float(psnr(target, z[0].abs())), abs=1e-4)
    assert got["psnr"] == pytest.approx(np.mean([r["psnr"] for r in got["per_slice"]]))
    assert got["min_gain_over_zf"] == min(r["gain"] for r in got["per_slice"]) and got["min_gain_over_zf"] > 0
    assert got["s_per_slice"] >= 0


def test_score_cases_refuses_a_nan_image(cases):
    class NaNSolver:
        def __call__(self, kspace, op):
            return torch.full((kspace.shape[0], 1, *kspace.shape[-2:]), float("nan"), dtype=torch.complex64)

    with pytest.raises(ValueError, match="NaN"):
        score_cases(NaNSolver(), cases, torch.device("cpu"), batch_size=3)
