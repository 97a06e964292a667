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


def test_metrics_table(tmp_path):
    rows = [{"solver": "tv", "psnr": 30.123456}, {"solver": "zf", "psnr": 20.0}]
    write_metrics_table(rows, tmp_path / "m.csv", tmp_path / "m.md", title="T")
    with open(tmp_path / "m.csv") as f:
        assert list(csv.DictReader(f))[0] == {"solver": "tv", "psnr": "30.123456"}
    md = (tmp_path / "m.md").read_text()
    assert "| tv | 30.1235 |" in md and md.startswith("# T")
    with pytest.raises(ValueError, match="empty"):
        write_metrics_table([], tmp_path / "e.csv")


def _cells(fig):
    """Image cells (title → images) and colour bars of a panel figure."""
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    cells = {ax.get_title(): ax.images for ax in fig.axes if ax not in bars}
    return cells, bars


def test_panel_shows_mask_and_errors_on_one_scale_with_a_colour_bar(tmp_path):
    import matplotlib.image

    from monai_ddpm_recon.io.figures import error_scale

    rng = np.random.default_rng(0)
    gt = rng.random((16, 16))
    zf, tv = gt * 0.5, gt + 0.01 * rng.standard_normal(gt.shape)
    mask = np.zeros((1, 1, 16), np.float32)
    mask[..., 6:10] = 1
    fig = save_panel(gt, {"zf": zf, "tv": tv}, tmp_path / "p.png", titles={"tv": "TV 30 dB"}, mask=mask)
    png = matplotlib.image.imread(tmp_path / "p.png")
    assert png.shape[:2] == (round(fig.get_figheight() * 110), round(fig.get_figwidth() * 110))
    cells, bars = _cells(fig)
    # 2 rows x 3 columns, every cell holds exactly one image: no empty cells
    mask_title = "k-space mask (25.0% sampled)"
    assert sorted(cells) == sorted(["ground truth", "zf", "TV 30 dB", mask_title, "|error| zf", "|error| tv"])
    assert all(len(images) == 1 for images in cells.values())
    np.testing.assert_array_equal(cells[mask_title][0].get_array(), np.broadcast_to(mask[0], (16, 16)))
    # one common error scale, set by the data (99th percentile of the pooled errors), and one colour bar for it
    emax = error_scale([np.abs(zf - gt), np.abs(tv - gt)])
    assert 0.01 < emax < np.abs(zf - gt).max()
    assert cells["|error| zf"][0].get_clim() == cells["|error| tv"][0].get_clim() == (0, emax)
    np.testing.assert_allclose(cells["|error| tv"][0].get_array(), np.abs(tv - gt))
    assert len(bars) == 1 and bars[0].get_ylabel() == "|error|"


def test_panel_shows_the_std_map_of_posterior_samples(tmp_path):
    gt = np.random.default_rng(1).random((16, 16))
    std = np.full((16, 16), 0.1)
    fig = save_panel(gt, {"zf": gt * 0.5, "diffusion": gt + 0.05}, tmp_path / "p.png", mask=np.ones((1, 16, 16)),
                     stds={"diffusion": std})
    cells, bars = _cells(fig)
    assert len(cells) == 8 and all(len(images) == 1 for images in cells.values())  # 2 rows x 4 columns, all filled
    std_im = cells["std diffusion (error scale)"][0]
    assert std_im.get_clim() == cells["|error| zf"][0].get_clim()  # comparable with the errors
    np.testing.assert_allclose(std_im.get_array(), std)
    np.testing.assert_allclose(cells["|error| / std diffusion"][0].get_array(), 0.5)  # 0.05 / 0.1
    assert len(bars) == 2
    # without a mask (the benchmark's panel) there is no empty cell either
    cells, _ = _cells(save_panel(gt, {"zf": gt * 0.5}, tmp_path / "q.png"))
    assert sorted(cells) == ["ground truth", "zf", "|error| zf"]
