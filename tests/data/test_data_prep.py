"""Data preparation: slicing, padding/resizing, normalisation, the held-out split, error messages."""

from __future__ import annotations

import os

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch

from monai_ddpm_recon.data import COLIN27_PATH, SliceSplit, load_colin27, normalise_max, pad_to_square, resize_square
from monai_ddpm_recon.data.prepare import build_dataset, main
from monai_ddpm_recon.training import RandomSliceAugment, SliceDataset, check_images, fastmri_rss_slices, nifti_slices

has_colin = pytest.mark.skipif(not os.path.isfile(COLIN27_PATH), reason="mricron-data not installed")


def test_missing_colin27_names_the_debian_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="mricron-data"):
        load_colin27(tmp_path / "ch2.nii.gz")
    with pytest.raises(FileNotFoundError, match="mricron-data"):
        main(["--output", str(tmp_path / "out"), "--colin27", str(tmp_path / "nope.nii.gz"), "--no-mni152"])


def test_pad_resize_keeps_aspect_and_normalise():
    img = np.zeros((20, 10), np.float32)
    img[:, :] = 3.0  # a 20x10 bright rectangle -> centred, half the width of the square
    sq = pad_to_square(img)
    assert sq.shape == (20, 20) and sq[:, 5:15].min() == 3 and sq[:, :5].max() == 0 and sq[:, 15:].max() == 0
    small = resize_square(img, 8)
    assert small.shape == (8, 8)
    np.testing.assert_allclose(small[:, 3:5], 3.0, rtol=1e-5)  # interior stays at the plateau value
    assert small[:, 0].max() < 1e-6 and small[:, 7].max() < 1e-6
    n = normalise_max(small)
    assert n.max() == pytest.approx(1.0) and n.min() >= 0
    with pytest.raises(ValueError, match="empty"):
        normalise_max(np.zeros((4, 4)))


def test_slice_split():
    s = SliceSplit(10, 22, 3)
    assert s.is_heldout(10) and s.is_heldout(21) and not s.is_heldout(22)
    assert s.is_excluded(7) and s.is_excluded(24) and not s.is_excluded(6) and not s.is_excluded(25)
    with pytest.raises(ValueError):
        SliceSplit(10, 10, 0)


@has_colin
def test_colin27_split_is_disjoint_with_gap():
    ds = build_dataset(image_size=16, use_mni152=False)
    split = ds["split"]
    held = set(split["heldout"]["z"])
    train = set(split["train"]["colin27"]["z"])
    assert len(held) >= 12 and held == set(range(split["heldout"]["z_start"], split["heldout"]["z_stop"]))
    assert min(abs(z - h) for z in train for h in held) > split["excluded_gap"]
    assert ds["train"].shape[1:] == (1, 16, 16) and ds["heldout"].shape == (len(held), 1, 16, 16)
    for arr in (ds["train"], ds["heldout"]):
        assert arr.min() >= 0 and np.allclose(arr.reshape(len(arr), -1).max(1), 1.0)


def _write_volume(path, shape=(12, 14, 6)):
    vol = np.zeros(shape, np.float32)
    vol[3:9, 3:11, 1:5] = np.random.rand(6, 8, 4) + 1
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(path))
    return vol


def test_nifti_and_fastmri_sources(tmp_path):
    _write_volume(tmp_path / "v.nii.gz")
    sl = nifti_slices([str(tmp_path / "v.nii.gz")], 8)
    assert sl.shape == (4, 1, 8, 8)  # the empty axial slices 0 and 5 are dropped
    with h5py.File(tmp_path / "f.h5", "w") as f:
        rss = np.zeros((5, 12, 10), np.float32)
        rss[1:4, 2:10, 2:8] = 1
        f["reconstruction_rss"] = rss
    fm = fastmri_rss_slices([str(tmp_path / "f.h5")], 8)
    assert fm.shape == (3, 1, 8, 8) and fm.max() == pytest.approx(1.0)
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f["kspace"] = np.zeros((1, 2, 2), np.complex64)
    with pytest.raises(ValueError, match="reconstruction_rss"):
        fastmri_rss_slices([str(tmp_path / "g.h5")], 8)


def test_check_images_errors():
    with pytest.raises(ValueError, match="empty"):
        check_images("x", np.zeros((0, 1, 8, 8)))
    bad = np.zeros((2, 1, 8, 8), np.float32)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        check_images("x", bad)
    with pytest.raises(ValueError, match="expected \\(16, 16\\)"):
        check_images("x", np.zeros((2, 1, 8, 8)), 16)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_images("x", np.full((2, 1, 8, 8), 2.0))


def test_dataset_range_and_augmentation():
    imgs = np.random.rand(3, 1, 8, 8).astype(np.float32)
    ds = SliceDataset(imgs, 8)
    torch.testing.assert_close(ds[1], torch.from_numpy(imgs[1]) * 2 - 1)
    flip = RandomSliceAugment(flip_prob=1.0, max_rotation_deg=0.0, intensity_range=(1.0, 1.0))
    torch.testing.assert_close(flip(torch.from_numpy(imgs[0])), torch.from_numpy(imgs[0]).flip(-1))
    aug = SliceDataset(imgs, 8, augment=RandomSliceAugment())
    for i in range(3):
        x = aug[i]
        assert x.shape == (1, 8, 8) and x.min() >= -1 and x.max() <= 1
    with pytest.raises(ValueError, match="intensity_range"):
        RandomSliceAugment(intensity_range=(0.9, 1.2))
    with pytest.raises(ValueError, match="zoom_range"):
        RandomSliceAugment(zoom_range=(1.1, 0.9))
    with pytest.raises(ValueError, match="max_shift"):
        RandomSliceAugment(max_shift=0.6)


def _centre_of_mass(img: torch.Tensor) -> torch.Tensor:
    h, w = img.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h, dtype=img.dtype), torch.arange(w, dtype=img.dtype), indexing="ij")
    m = img.sum()
    return torch.stack([(img * yy).sum() / m, (img * xx).sum() / m])


def test_augmentation_zoom_and_shift():
    img = torch.zeros(1, 32, 32)
    img[:, 12:20, 12:20] = 1.0  # centred 8x8 square
    keep = dict(flip_prob=0.0, max_rotation_deg=0.0, intensity_range=(1.0, 1.0))
    zoomed = RandomSliceAugment(zoom_range=(2.0, 2.0), **keep)(img)
    # zoom 2 enlarges the square to ~16x16 about the centre: 4x the mass, centre kept
    assert abs(float(zoomed.sum()) / float(img.sum()) - 4.0) < 0.2
    torch.testing.assert_close(_centre_of_mass(zoomed), _centre_of_mass(img), atol=0.05, rtol=0)
    g = torch.Generator().manual_seed(0)
    shift = RandomSliceAugment(max_shift=0.2, generator=g, **keep)
    moves = torch.stack([_centre_of_mass(shift(img)) - _centre_of_mass(img) for _ in range(20)])
    assert moves.abs().max() <= 0.2 * 32 + 0.5  # never more than max_shift of the side
    assert moves.abs().max() > 2.0  # and it does move
    assert RandomSliceAugment(**keep)(img).equal(img)  # identity settings do not resample


def test_augmentation_elastic_and_bias_field():
    img = torch.zeros(1, 32, 32)
    img[:, 8:24, 8:24] = torch.linspace(0.2, 1.0, 16)  # a ramp inside a square
    keep = dict(flip_prob=0.0, max_rotation_deg=0.0, intensity_range=(1.0, 1.0))
    g = torch.Generator().manual_seed(0)
    elastic = RandomSliceAugment(elastic_std=0.02, generator=g, **keep)
    warped = [elastic(img) for _ in range(8)]
    # a smooth displacement of ~0.6 px rms: the image changes, the centre of mass barely moves, values stay in [0, 1]
    assert all(not w.equal(img) for w in warped)
    assert all(float(w.min()) >= 0 and float(w.max()) <= 1 for w in warped)
    com = torch.stack([_centre_of_mass(w) - _centre_of_mass(img) for w in warped])
    assert com.abs().max() < 2.0
    # the field is smooth: neighbouring displacements differ far less than the field itself
    from monai_ddpm_recon.training import smooth_random_field

    field = smooth_random_field((32, 32), 2, 1.0, 5, torch.Generator().manual_seed(1))
    assert field.shape == (2, 32, 32)
    assert float(field.diff(dim=-1).abs().mean()) < 0.2 * float(field.abs().mean())
    # the bias field is multiplicative: zero stays zero, the maximum is renormalised to 1, the ratio is smooth
    bias = RandomSliceAugment(bias_std=0.3, generator=torch.Generator().manual_seed(2), **keep)
    b = bias(img)
    assert float(b[img == 0].abs().max()) == 0.0
    assert abs(float(b.max()) - 1.0) < 1e-6
    ratio = b[:, 8:24, 8:24] / img[:, 8:24, 8:24]
    assert float(ratio.max() / ratio.min()) > 1.05  # it shades the image
    # slowly: the largest one-pixel step of the log shading is a small part of its whole range
    log_ratio = ratio.log()
    assert float(log_ratio.diff(dim=-1).abs().max()) < 0.25 * float(log_ratio.max() - log_ratio.min())
    with pytest.raises(ValueError, match="elastic_std"):
        RandomSliceAugment(elastic_std=0.5)
    with pytest.raises(ValueError, match="bias_std"):
        RandomSliceAugment(bias_std=-0.1)
    with pytest.raises(ValueError, match="control_points"):
        RandomSliceAugment(control_points=1)
    with pytest.raises(ValueError, match="displacement"):
        from monai_ddpm_recon.training import affine_resample

        affine_resample(img, displacement=torch.zeros(16, 16, 2))


def test_augmentation_describe_names_active_options():
    d = RandomSliceAugment(zoom_range=(0.9, 1.1), max_shift=0.05, elastic_std=0.02, bias_std=0.15).describe()
    for part in ("flip p=0.5", "rotation U(-10, 10) deg", "zoom U(0.9, 1.1)", "shift U(-5, 5) %", "2 % of side",
                 "bias field", "intensity x U(0.9, 1)"):
        assert part in d
    assert RandomSliceAugment(flip_prob=0.0, max_rotation_deg=0.0, intensity_range=(1.0, 1.0)).describe() == "none"
