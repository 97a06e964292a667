from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest

from monai_ddpm_recon.io import atomic_path, check_output_dir, save_panel, write_metrics_table, write_nifti


def test_write_nifti_round_trip(tmp_path):
    arr = np.random.rand(8, 6).astype(np.float32)
    path = write_nifti(arr, tmp_path / "x.nii.gz", spacing=(2.0, 3.0, 1.0))
    img = nib.load(str(path))
    np.testing.assert_allclose(np.asarray(img.dataobj)[:, :, 0], arr)
    assert img.header.get_zooms()[:2] == (2.0, 3.0)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_write_nifti_rejects_complex(tmp_path):
    with pytest.raises(TypeError, match="real"):
        write_nifti(np.ones((2, 2), np.complex64), tmp_path / "x.nii.gz")


def test_atomic_path_refuses_input_and_cleans_up(tmp_path):
    inp = tmp_path / "input.nii.gz"
    inp.write_bytes(b"original")
    with pytest.raises(ValueError, match="overwrite the input"):
        with atomic_path(inp, protected=[inp]):
            pass
    assert inp.read_bytes() == b"original"
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.txt") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("crash")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.nii.gz"]


def test_check_output_dir(tmp_path):
    assert check_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()  # validation creates nothing; the writers create folders when they write
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        check_output_dir(f)
    with pytest.raises(ValueError, match="input files"):
        check_output_dir(tmp_path / "in", inputs=[tmp_path / "in"])


def test_metrics_table_and_panel(tmp_path):
    rows = [{"solver": "tv", "psnr": 30.123456}, {"solver": "zf", "psnr": 20.0}]
    write_metrics_table(rows, tmp_path / "m.csv", tmp_path / "m.md", title="T")
    with open(tmp_path / "m.csv") as f:
        assert list(csv.DictReader(f))[0] == {"solver": "tv", "psnr": "30.123456"}
    md = (tmp_path / "m.md").read_text()
    assert "| tv | 30.1235 |" in md and md.startswith("# T")
    with pytest.raises(ValueError, match="empty"):
        write_metrics_table([], tmp_path / "e.csv")
    gt = np.random.rand(16, 16)
    save_panel(gt, {"zf": gt * 0.5, "tv": gt}, tmp_path / "p.png", titles={"tv": "TV 30 dB"})
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
