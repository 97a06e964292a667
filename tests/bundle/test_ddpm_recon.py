"""The bundle's test in the model zoo's layout (`ci/unit_tests/test_<bundle>.py`: TEST_CASE override dicts), the
inference config run through MONAI's `ConfigWorkflow`, its required properties checked, outputs inspected."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from monai.bundle import ConfigWorkflow

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "ddpm_recon"

TEST_CASE_1 = [{"solver": "diffusion", "baselines": [], "slices": [0], "num_steps": 3, "cg_iterations": 2,
        "device": "cpu"}]
TEST_CASE_2 = [{"solver": "loss_guidance", "baselines": ["zero_filled"], "slices": [4], "num_steps": 3,
        "num_coils": 1, "acceleration": 4, "device": "cpu"}]


@pytest.mark.parametrize("override", [TEST_CASE_1[0], TEST_CASE_2[0]])
def test_infer_config(override, tmp_path):
    tmp = str(tmp_path)
    workflow = ConfigWorkflow(
        workflow_type="infer",
        config_file=str(BUNDLE / "configs" / "inference.json"),
        meta_file=str(BUNDLE / "configs" / "metadata.json"),
        logging_file=str(BUNDLE / "configs" / "logging.conf"),
        bundle_root=str(BUNDLE),
        output_dir=tmp,
        **override,
    )
    workflow.initialize()
    assert workflow.check_properties() in (None, [])  # no missing required property
    workflow.run()
    workflow.finalize()
    with open(Path(tmp) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    expected = {override["solver"], *override["baselines"]}
    assert {r["solver"] for r in rows} == expected
    assert all(float(r["psnr"]) > 10.0 for r in rows)
