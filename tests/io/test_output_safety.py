"""Output safety of the writers: folders that hold inputs, files that exist already, file modes, roll-back."""

from __future__ import annotations

import contextlib
import os
import stat

import numpy as np
import pytest

from monai_ddpm_recon.io import (
    OutputExistsError,
    RunOutputs,
    atomic_path,
    check_output_dir,
    save_panel,
    write_metrics_table,
    write_nifti,
)


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_output_dir_that_is_or_holds_an_input_is_refused(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    for name in ("scan.nii.gz", "sub/deep.h5"):
        (data / name).write_bytes(b"x")
    with pytest.raises(ValueError, match="is one of the input files"):
        check_output_dir(data / "scan.nii.gz", inputs=[data / "scan.nii.gz"])
    with pytest.raises(ValueError) as info:
        check_output_dir(data, inputs=[data / "scan.nii.gz", None, data / "sub" / "deep.h5"])
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"output_dir={str(data)!r} holds input files")
    assert "scan.nii.gz" in msg and "deep.h5" in msg
    with pytest.raises(ValueError, match="holds input files"):  # at any depth
        check_output_dir(tmp_path, inputs=[data / "sub" / "deep.h5"])
    with pytest.raises(ValueError, match="holds input files"):  # however the path is spelled
        check_output_dir(data / "sub" / "..", inputs=[data / "scan.nii.gz"])
    assert check_output_dir(data / "out", inputs=[data / "scan.nii.gz"]) == data / "out"  # a sibling is fine
    assert not (data / "out").exists()


def test_existing_outputs_are_listed_and_refused_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    (out / "tv").mkdir(parents=True)
    (out / "metrics.csv").write_text("mine")
    (out / "tv" / "a.nii.gz").write_text("mine")
    planned = ["metrics.csv", "summary.md", "tv/a.nii.gz", "tv/b.nii.gz"]
    with pytest.raises(OutputExistsError) as info:
        check_output_dir(out, outputs=planned)
    msg = str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileExistsError) and "\n" not in msg
    assert "2 file(s)" in msg and str(out / "metrics.csv") in msg and str(out / "tv" / "a.nii.gz") in msg
    assert "summary.md" not in msg and "--overwrite true" in msg and "another --output_dir" in msg
    assert check_output_dir(out, outputs=planned, overwrite=True) == out
    many = [f"f{i}.png" for i in range(12)]
    for f in many:
        (out / f).write_text("x")
    with pytest.raises(OutputExistsError, match="and 4 more"):
        check_output_dir(out, outputs=many)
    assert (out / "metrics.csv").read_text() == "mine"


def test_atomic_path_refuses_an_existing_file_without_overwrite(tmp_path):
    target = tmp_path / "sub" / "m.csv"
    with atomic_path(target, overwrite=False) as tmp:  # creates the missing folder
        tmp.write_text("run")
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        with atomic_path(target, overwrite=False) as tmp:
            tmp.write_text("again")
    assert target.read_text() == "run"
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.csv"]


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_respect_the_umask(tmp_path, mask, expected):
    with umask(mask):
        write_nifti(np.ones((4, 4), np.float32), tmp_path / "x.nii.gz")
        write_metrics_table([{"a": 1.0}], tmp_path / "m.csv", tmp_path / "m.md")
        save_panel(np.ones((8, 8)), {"zf": np.ones((8, 8))}, tmp_path / "p.png")
    for name in ("x.nii.gz", "m.csv", "m.md", "p.png"):
        assert mode(tmp_path / name) == expected, name


def test_a_replaced_file_keeps_its_mode(tmp_path):
    target = tmp_path / "m.csv"
    target.write_text("old")
    os.chmod(target, 0o640)
    with umask(0o022):
        write_metrics_table([{"a": 1.0}], target)
    assert mode(target) == 0o640 and "a" in target.read_text()


def test_run_outputs_rolls_back_only_what_it_created(tmp_path):
    out = tmp_path / "out"
    (out / "keep").mkdir(parents=True)
    (out / "keep" / "user.txt").write_text("mine")
    outputs = RunOutputs(out)
    for rel in ("keep/new.txt", "tv/a.nii.gz", "panels/deep/p.png"):
        outputs.file(rel).write_text("run")
    with pytest.raises(OutputExistsError, match="--overwrite true"):
        outputs.file("keep/user.txt")
    outputs.rollback()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["keep", "keep/user.txt"]
    fresh = RunOutputs(tmp_path / "fresh" / "nested")
    fresh.file("a/b.txt").write_text("run")
    fresh.rollback()
    assert not (tmp_path / "fresh").exists()
