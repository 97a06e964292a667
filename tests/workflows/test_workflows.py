from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest

from monai_ddpm_recon.workflows import BenchmarkWorkflow, CaseSpec, ReconstructionWorkflow, SolverName, build_solver


@pytest.fixture
def example_npy(tmp_path):
    yy, xx = np.mgrid[-1:1:32j, -1:1:32j]
    img = ((xx**2 / 0.6 + yy**2 / 0.8) < 1).astype(np.float32) * (0.5 + 0.5 * (xx > 0))
    path = tmp_path / "slices.npy"
    np.save(path, np.stack([img, np.roll(img, 2, axis=0)])[:, None])
    return path


def test_registry_knows_every_solver_and_rejects_unknown():
    assert {s.value for s in SolverName} >= {"zero_filled", "tv", "loss_guidance", "sbim"}
    with pytest.raises(ValueError, match="solver='magic' is not a valid option"):
        build_solver("magic")
    with pytest.raises(ValueError, match="needs a diffusion prior"):
        build_solver("loss_guidance")


def test_reconstruction_workflow_writes_outputs(example_npy, tmp_path):
    out = tmp_path / "out"
    spec = CaseSpec(example_data=str(example_npy), image_size=32, num_coils=4, acceleration=2, mask_type="equispaced")
    wf = ReconstructionWorkflow(out, ["zero_filled", "sense", "zero_filled"], spec, progress=False)
    rows = wf.run()
    assert len(rows) == 4  # 2 slices x 2 distinct solvers
    assert (out / "zero_filled" / "slices_000.nii.gz").is_file()
    assert (out / "panels" / "slices_001.png").read_bytes()[:4] == b"\x89PNG"
    with open(out / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    psnr = {(r["case"], r["solver"]): float(r["psnr"]) for r in table}
    # SENSE (CG) on 4 coils at R=2 must beat the zero-filled image clearly
    assert psnr[("slices_000", "sense")] > psnr[("slices_000", "zero_filled")] + 5
    assert "±" in (out / "summary.md").read_text()
    img = nib.load(str(out / "sense" / "slices_000.nii.gz"))
    assert np.isfinite(np.asarray(img.dataobj)).all()


def test_workflow_rejects_bad_setup(example_npy, tmp_path):
    spec = CaseSpec(example_data=str(example_npy), image_size=32)
    with pytest.raises(FileNotFoundError, match="prior_checkpoint"):
        ReconstructionWorkflow(tmp_path / "o", ["loss_guidance"], spec, prior_checkpoint=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="solvers is empty"):
        ReconstructionWorkflow(tmp_path / "o", [], spec)
    with pytest.raises(ValueError, match="input files"):
        ReconstructionWorkflow(example_npy, ["zero_filled"], CaseSpec(input_files=[str(example_npy)], image_size=32))


def test_benchmark_runs_in_a_monai_evaluator(example_npy, tmp_path):
    spec = CaseSpec(example_data=str(example_npy), image_size=32)
    wf = BenchmarkWorkflow(tmp_path / "bench", ["zero_filled", "sense"], spec, accelerations=[2, 4], coil_settings=[4],
                           progress=False)
    rows = wf.run()
    assert len(rows) == 4
    by = {(r["solver"], r["R"]): r for r in rows}
    assert by[("sense", 2.0)]["psnr_mean"] > by[("zero_filled", 2.0)]["psnr_mean"]
    assert by[("zero_filled", 2.0)]["psnr_mean"] > by[("zero_filled", 4.0)]["psnr_mean"]
    assert (tmp_path / "bench" / "psnr_vs_acceleration.png").is_file()
    assert "sense" in (tmp_path / "bench" / "benchmark.md").read_text()
