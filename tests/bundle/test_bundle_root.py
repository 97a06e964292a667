"""The bundle is movable: ``bundle_root`` resolves to the bundle folder whether the inference config is run from the
repository root, from the bundle folder, or from a copy of the bundle folder (from inside it or from elsewhere)."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monai_ddpm_recon.workflows import find_bundle_root

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "ddpm_recon"
# tiny run: one slice, the default diffusion solver with 2 steps and 2 CG iterations, no baselines, the shipped prior
TINY = ["--slices", "[0]", "--baselines", "[]", "--num_steps", "2", "--cg_iterations", "2", "--device", "cpu"]


def test_find_bundle_root_from_command_line_and_cwd(tmp_path):
    run = [sys.executable, "-m", "monai.bundle", "run"]
    assert find_bundle_root(run + ["--config_file", "bundles/ddpm_recon/configs/inference.json"], ROOT) == "bundles/ddpm_recon"
    assert find_bundle_root(run + ["--config_file", "configs/inference.json"], BUNDLE) == "."
    assert find_bundle_root(run + [f"--config_file={BUNDLE / 'configs' / 'train.json'}"], tmp_path) == str(BUNDLE)
    both = "['configs/train.json', 'configs/multi_gpu_train.json']"
    assert find_bundle_root(run + ["--config_file", both], BUNDLE) == "."
    assert find_bundle_root([], ROOT) == "bundles/ddpm_recon"  # Python API from the repository root
    assert find_bundle_root([], BUNDLE) == "."
    with pytest.raises(FileNotFoundError, match="--bundle_root"):
        find_bundle_root([], tmp_path)


def _copy_bundle(dst: Path) -> Path:
    shutil.copytree(BUNDLE, dst, ignore=shutil.ignore_patterns("output", "runs", "docs", "training_log*"))
    return dst


def _run(cwd: Path, config_file: str, *extra: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_file, *TINY, *extra]
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)


def _solvers(out: Path) -> set[str]:
    with open(out / "metrics.csv") as f:
        return {r["solver"] for r in csv.DictReader(f)}


@pytest.mark.parametrize("where", ["repository_root", "bundle_folder"])
def test_inference_runs_from_repository_root_and_bundle_folder(tmp_path, where):
    out = tmp_path / "out"
    if where == "repository_root":
        res = _run(ROOT, "bundles/ddpm_recon/configs/inference.json", "--output_dir", str(out))
    else:
        res = _run(BUNDLE, "configs/inference.json", "--output_dir", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    assert _solvers(out) == {"diffusion"}


@pytest.mark.parametrize("where", ["inside_copy", "elsewhere"])
def test_a_copy_of_the_bundle_runs_with_its_own_files(tmp_path, where):
    copy = _copy_bundle(tmp_path / "somewhere" / "my_bundle")
    if where == "inside_copy":
        res = _run(copy, "configs/inference.json")
    else:
        (tmp_path / "cwd").mkdir()
        res = _run(tmp_path / "cwd", str(copy / "configs" / "inference.json"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert _solvers(copy / "output") == {"diffusion"}  # the default output_dir is inside the copy
