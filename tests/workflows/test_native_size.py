"""Native matrix size (image_size=None) through the workflows, and the prior size check: a whole-image prior accepts
only its own size (one-line error before any work), a prior that accepts any size runs at every size."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_ddpm_recon.workflows import BenchmarkWorkflow, CaseSpec, ReconstructionWorkflow, load_cases, run_evaluator
from monai_ddpm_recon.priors import PatchDDPMPrior
from monai_ddpm_recon.workflows.reconstruct import check_prior, log_prior_tiling, require_prior_size
from monai_ddpm_recon.workflows.runner import batches, stack_cases

SHIPPED = Path(__file__).parents[2] / "bundles/ddpm_recon/models/model.pt"


class WholeImagePrior:
    image_size = (64, 64)


class AnySizePrior(WholeImagePrior):
    def supports_size(self, size):
        return True


@pytest.fixture
def odd_npy(tmp_path):
    yy, xx = np.mgrid[-1:1:45j, -1:1:37j]
    img = ((xx**2 / 0.6 + yy**2 / 0.8) < 1).astype(np.float32) * (0.5 + 0.5 * (xx > 0))
    np.save(tmp_path / "odd.npy", np.stack([img, np.roll(img, 3, axis=0)])[:, None])
    return tmp_path / "odd.npy"


def test_require_prior_size_uses_prior_supports_size():
    require_prior_size(WholeImagePrior(), [(64, 64)])
    require_prior_size(AnySizePrior(), [(45, 37), (217, 181), (192, 224)])
    with pytest.raises(ValueError, match=r"models \(64, 64\) images only, but the cases are 45x37; set image_size") as e:
        require_prior_size(WholeImagePrior(), [(64, 64), (45, 37)], "p.pt")
    assert "\n" not in str(e.value) and "prior_checkpoint='p.pt'" in str(e.value)


def test_the_tiling_of_each_case_size_is_logged_for_a_patch_prior(caplog):
    prior = PatchDDPMPrior(16, network_kwargs={"channels": (8, 8), "num_res_blocks": 1}, train_patch_sizes=(16,),
                           whole_max_side=200)
    with caplog.at_level(logging.INFO, logger="monai_ddpm_recon.workflows.reconstruct"):
        log_prior_tiling(prior, {(217, 181): None, (45, 37): None})
        log_prior_tiling(WholeImagePrior(), [(64, 64)])  # a whole-image prior has no tiling: nothing logged
    assert [r.getMessage() for r in caplog.records] == [
        "patch prior: 217x181 images are covered by 'patches' tiling",
        "patch prior: 45x37 images are covered by 'whole' tiling",
    ]


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped prior is not in this checkout")
def test_check_prior_accepts_native_size_matching_the_prior_and_refuses_others():
    check_prior(SHIPPED, 64)
    check_prior(SHIPPED, None)  # sizes unknown: checksum and format only
    check_prior(SHIPPED, None, case_sizes=[(64, 64)])
    with pytest.raises(ValueError, match="but the cases are 45x37"):
        check_prior(SHIPPED, None, case_sizes=[(45, 37)])
    with pytest.raises(ValueError, match="but the cases are 32x32"):
        check_prior(SHIPPED, 32)


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped prior is not in this checkout")
def test_whole_image_prior_on_native_non_square_cases_fails_before_any_work(odd_npy, tmp_path):
    spec = CaseSpec(example_data=str(odd_npy), image_size=None)
    for make in (lambda out: ReconstructionWorkflow(out, ["diffusion"], spec, prior_checkpoint=SHIPPED, progress=False),
                 lambda out: BenchmarkWorkflow(out, ["diffusion"], spec, prior_checkpoint=SHIPPED, progress=False)):
        with pytest.raises(ValueError, match=r"models \(64, 64\) images only, but the cases are 45x37"):
            make(tmp_path / "out")
        assert not (tmp_path / "out").exists()


def test_native_size_run_writes_non_square_outputs(odd_npy, tmp_path):
    spec = CaseSpec(example_data=str(odd_npy), image_size=None, num_coils=4, acceleration=2, mask_type="equispaced",
                    slices=None)
    out = tmp_path / "out"
    rows = ReconstructionWorkflow(out, ["zero_filled", "sense"], spec, progress=False).run()
    assert len(rows) == 4
    import nibabel as nib

    img = nib.load(str(out / "sense" / "odd_000.nii.gz"))
    assert img.shape == (45, 37, 1)
    assert (out / "panels" / "odd_001.png").read_bytes()[:4] == b"\x89PNG"
    psnr = {(r["case"], r["solver"]): r["psnr"] for r in rows}
    assert psnr[("odd_000", "sense")] > psnr[("odd_000", "zero_filled")] + 5


def test_runner_metrics_equal_the_functional_metrics_on_non_square_cases(odd_npy):
    """The one runner (used by the benchmarks) reports per-case fastMRI metrics of the solver's magnitude."""
    from monai_ddpm_recon.metrics import nmse, psnr
    from monai_ddpm_recon.solvers.baselines import ZeroFilledSolver

    cases = load_cases(CaseSpec(example_data=str(odd_npy), image_size=None, num_coils=2, slices=None, acceleration=2,
                                mask_type="equispaced"))
    res = run_evaluator(ZeroFilledSolver(), cases, torch.device("cpu"), batch_size=1)
    assert len(batches(cases, 1)) == 2 and res["psnr"].shape == (2,)
    for i, case in enumerate(cases):
        kspace, op = stack_cases([case], torch.device("cpu"))
        mag = ZeroFilledSolver()(kspace, op).abs().float()
        target = case.target.abs()[None, None]
        assert res["psnr"][i] == pytest.approx(float(psnr(target, mag, per_item=True)[0]), abs=1e-9)
        assert res["nmse"][i] == pytest.approx(float(nmse(target, mag, per_item=True)[0]), abs=1e-12)
        np.testing.assert_array_equal(res["preds"][i], mag[0, 0].numpy())


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped prior is not in this checkout")
def test_benchmark_checks_every_solver_argument_before_any_work(tmp_path):
    """A bad solver argument used to surface only after the first setting's other solvers had run."""
    spec = CaseSpec(example_data=str(SHIPPED.parent.parent / "data" / "colin27_heldout_axial_64.npy"), image_size=64)
    with pytest.raises(ValueError, match="guidance"):
        BenchmarkWorkflow(tmp_path / "out", ["zero_filled", "loss_guidance"], spec, prior_checkpoint=SHIPPED,
                          solver_kwargs={"loss_guidance": {"guidance": -5.0}}, progress=False)
    assert not (tmp_path / "out").exists()
