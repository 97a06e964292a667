"""The workflows' output folders: never one that holds an input, never over a file the run did not create (unless
``overwrite``), modes from the umask, and nothing left behind when validation or writing fails."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

import monai_ddpm_recon.workflows.reconstruct as reconstruct
from monai_ddpm_recon.io import OutputExistsError
from monai_ddpm_recon.transforms.io import write_fastmri_h5
from monai_ddpm_recon.workflows import BenchmarkWorkflow, CaseSpec, ReconstructionWorkflow, load_cases
from monai_ddpm_recon.workflows.cases import case_names

FAST = {"image_size": 16, "num_coils": 1, "acceleration": 2, "mask_type": "equispaced"}


@pytest.fixture
def data(tmp_path):
    yy, xx = np.mgrid[-1:1:16j, -1:1:16j]
    img = ((xx**2 / 0.6 + yy**2 / 0.8) < 1).astype(np.float32) * (0.5 + 0.5 * (xx > 0))
    folder = tmp_path / "data"
    folder.mkdir()
    np.save(folder / "slices.npy", np.stack([img, np.roll(img, 2, axis=0)])[:, None])
    return folder / "slices.npy"


def zero_filled(out, data, **kw) -> ReconstructionWorkflow:
    return ReconstructionWorkflow(out, ["zero_filled"], CaseSpec(example_data=str(data), **FAST), progress=False, **kw)


def tree(folder) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


EXPECTED = ["metrics.csv", "metrics.md", "panels", "panels/slices_000.png", "panels/slices_001.png", "summary.csv",
            "summary.md", "zero_filled", "zero_filled/slices_000.nii.gz", "zero_filled/slices_001.nii.gz"]


def test_planned_outputs_are_exactly_what_a_run_writes(data, tmp_path):
    wf = zero_filled(tmp_path / "out", data)
    assert not (tmp_path / "out").exists()  # validation creates nothing
    wf.run()
    files = [f for f in tree(tmp_path / "out") if "." in f]
    assert sorted(p.as_posix() for p in wf.output_files(["slices_000", "slices_001"])) == files
    assert tree(tmp_path / "out") == EXPECTED


def test_folder_holding_an_input_is_refused(data, tmp_path):
    for out in (data.parent, tmp_path):  # the input directly in it, or deeper
        with pytest.raises(ValueError, match=r"holds input files \('.*slices.npy'\)"):
            zero_filled(out, data)
    ckpt = tmp_path / "models" / "model.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"x")
    with pytest.raises(ValueError, match="holds input files.*model.pt"):  # the prior checkpoint counts too
        zero_filled(ckpt.parent, data, prior_checkpoint=ckpt)
    with pytest.raises(ValueError, match="holds input files"):
        BenchmarkWorkflow(data.parent, ["zero_filled"], CaseSpec(example_data=str(data), image_size=16))


def test_user_files_are_never_overwritten_without_overwrite(data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.csv").write_text("my metrics")
    (out / "summary.md").write_text("my summary")
    (out / "notes.txt").write_text("my notes")
    with pytest.raises(OutputExistsError) as info:
        zero_filled(out, data)
    msg = str(info.value)
    assert "\n" not in msg and "metrics.csv" in msg and "summary.md" in msg and "notes.txt" not in msg
    assert "--overwrite true" in msg and "--output_dir" in msg
    assert tree(out) == ["metrics.csv", "notes.txt", "summary.md"]  # nothing written, nothing replaced
    assert (out / "metrics.csv").read_text() == "my metrics"

    zero_filled(out, data, overwrite="true").run()  # the command line's spelling
    assert (out / "metrics.csv").read_text().startswith("case,solver")
    assert (out / "notes.txt").read_text() == "my notes"
    with pytest.raises(OutputExistsError, match="zero_filled/slices_000.nii.gz"):  # a second run, same folder
        zero_filled(out, data)


def test_benchmark_refuses_existing_outputs(data, tmp_path):
    out = tmp_path / "bench"
    out.mkdir()
    (out / "benchmark.csv").write_text("mine")
    spec = CaseSpec(example_data=str(data), image_size=16)
    with pytest.raises(OutputExistsError, match="benchmark.csv"):
        BenchmarkWorkflow(out, ["zero_filled"], spec, accelerations=[2], coil_settings=[1])
    wf = BenchmarkWorkflow(out, ["zero_filled"], spec, accelerations=[2], coil_settings=[1], overwrite=True)
    assert wf.output_files() == ["benchmark.csv", "benchmark.md", "psnr_vs_acceleration.png", "panel_R2_1coil.png"]
    fresh = BenchmarkWorkflow(tmp_path / "new", ["zero_filled"], spec, accelerations=[2], coil_settings=[1],
                              progress=False)
    assert not (tmp_path / "new").exists()
    fresh.run()
    assert sorted(os.listdir(tmp_path / "new")) == sorted(fresh.output_files())


def test_nothing_is_left_behind_when_validation_fails(data, tmp_path):
    out = tmp_path / "a" / "out"
    with pytest.raises(ValueError, match="slices: index 5 is out of range"):
        ReconstructionWorkflow(out, ["zero_filled"], CaseSpec(example_data=str(data), slices=[5], **FAST))
    with pytest.raises(ValueError, match="num_samples"):
        zero_filled(out, data, num_samples=0)
    assert not (tmp_path / "a").exists()


def test_a_failed_write_removes_what_the_run_created(data, tmp_path, monkeypatch):
    def broken_panel(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(reconstruct, "save_panel", broken_panel)
    with pytest.raises(OSError, match="disk full"):
        zero_filled(tmp_path / "new" / "out", data).run()
    assert not (tmp_path / "new").exists()
    out = tmp_path / "existing"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OSError, match="disk full"):
        zero_filled(out, data).run()
    assert tree(out) == ["notes.txt"]


def test_output_modes_follow_the_umask(data, tmp_path):
    old = os.umask(0o027)
    try:
        zero_filled(tmp_path / "out", data).run()
    finally:
        os.umask(old)
    modes = {f: stat.S_IMODE(os.stat(tmp_path / "out" / f).st_mode) for f in EXPECTED}
    assert {f: m for f, m in modes.items() if "." in f} == {f: 0o640 for f in EXPECTED if "." in f}
    assert modes["panels"] == modes["zero_filled"] == 0o750


def test_case_names_match_the_cases_without_loading_them(data, tmp_path):
    import nibabel as nib

    vol = np.random.rand(16, 16, 5).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.diag([1.0, 1.0, 2.0, 1.0])), str(tmp_path / "vol.nii.gz"))
    rng = np.random.default_rng(0)
    kspace = (rng.standard_normal((3, 32, 32)) + 1j * rng.standard_normal((3, 32, 32))).astype(np.complex64)
    write_fastmri_h5(tmp_path / "k.h5", kspace)
    for files, slices in (([data], None), ([data], [1, -1]), ([tmp_path / "vol.nii.gz"], None),
                          ([tmp_path / "vol.nii.gz"], [0, -1]), ([tmp_path / "k.h5"], None), ([tmp_path / "k.h5"], [-1])):
        spec = CaseSpec(input_files=[str(f) for f in files], slices=slices, **FAST)
        assert case_names(spec) == [c.name for c in load_cases(spec)], (files, slices)
    with pytest.raises(ValueError, match="slices: index 7 is out of range for 5 slices"):
        case_names(CaseSpec(input_files=[str(tmp_path / "vol.nii.gz")], slices=[7], **FAST))
