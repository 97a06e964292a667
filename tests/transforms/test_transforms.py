"""fastMRI h5 round trip, NIfTI loading, transform composition, bad input."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import Compose

from monai_ddpm_recon.operators import SenseOperator, fft2c
from monai_ddpm_recon.transforms import (
    DenormalizeIntensityRanged,
    LoadFastMRISliced,
    LoadNiftiSliced,
    MissingFileError,
    NormalizeIntensityRanged,
    SimulateKspaced,
    UndersampleKspaced,
    ZeroFilledd,
    read_fastmri_slice,
    write_fastmri_h5,
)


def _kspace(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


@pytest.mark.parametrize("multicoil", [True, False])
def test_fastmri_round_trip(tmp_path, multicoil):
    from fastmri.data import SliceDataset

    shape = (3, 4, 16, 12) if multicoil else (3, 16, 12)
    k = _kspace(shape)
    rec = np.abs(np.random.default_rng(1).standard_normal((3, 8, 8))).astype(np.float32)
    key = "reconstruction_rss" if multicoil else "reconstruction_esc"
    mask = np.zeros(12, bool)
    mask[::2] = True
    path = write_fastmri_h5(tmp_path / "vol.h5", k, reconstruction=rec, recon_key=key, mask=mask)
    out = read_fastmri_slice(path, slice_index=1)
    exp = k[1] if multicoil else k[1][None]
    assert out["kspace"].dtype == torch.complex64 and np.array_equal(out["kspace"].numpy(), exp)
    assert np.array_equal(out["target"][0].numpy(), rec[1])
    assert out["mask"].shape == (1, 1, 12) and np.array_equal(out["mask"].numpy().ravel(), mask.astype(np.float32))
    assert out["meta"]["encoding_size"] == (16, 12, 1) and out["meta"]["recon_size"] == (8, 8, 1)
    # fastMRI's own reader accepts the file and sees the same data
    ds = SliceDataset(tmp_path, challenge="multicoil" if multicoil else "singlecoil")
    kspace, fmask, target, attrs, _, idx = ds[1]
    assert idx == 1 and np.array_equal(kspace, k[1]) and np.array_equal(target, rec[1])
    assert attrs["padding_left"] == out["meta"]["padding_left"]
    with pytest.raises(ValueError, match="exists"):
        write_fastmri_h5(path, k)


def test_fastmri_bad_input(tmp_path):
    with pytest.raises(MissingFileError, match="not found"):
        read_fastmri_slice(tmp_path / "nope.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="HDF5"):
        read_fastmri_slice(bad)
    import h5py

    with h5py.File(tmp_path / "nok.h5", "w") as hf:
        hf.create_dataset("image", data=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="kspace"):
        read_fastmri_slice(tmp_path / "nok.h5")
    k = _kspace((2, 8, 8))
    p = write_fastmri_h5(tmp_path / "ok.h5", k)
    with pytest.raises(ValueError, match="slice_index"):
        read_fastmri_slice(p, slice_index=5)
    with pytest.raises(ValueError, match="recon_key"):
        read_fastmri_slice(p, recon_key="reconstruction_rss")
    k[0, 1, 1] = np.nan
    p2 = write_fastmri_h5(tmp_path / "nan.h5", k)
    with pytest.raises(ValueError, match="kspace"):
        read_fastmri_slice(p2, slice_index=0)


def _nifti(tmp_path, data):
    p = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(p))
    return p


def test_nifti_slices_and_errors(tmp_path):
    vol = np.random.default_rng(0).random((20, 30, 5)).astype(np.float32)
    p = _nifti(tmp_path, vol)
    d = LoadNiftiSliced(slice_index=2, spatial_size=None, pad_to_square=False)({"image": p})
    assert d["image"].shape == (1, 30, 20) and d["image"].dtype == torch.float32
    assert np.allclose(d["image"][0].numpy(), np.rot90(vol[:, :, 2]))
    d = LoadNiftiSliced(spatial_size=16)({"image": p})
    assert d["image"].shape == (5, 16, 16)
    with pytest.raises(ValueError, match="slice_index"):
        LoadNiftiSliced(slice_index=7)({"image": p})
    p4 = tmp_path / "v4.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.float32), np.eye(4)), str(p4))
    with pytest.raises(ValueError, match="2D"):
        LoadNiftiSliced()({"image": p4})
    with pytest.raises(MissingFileError):
        LoadNiftiSliced()({"image": tmp_path / "missing.nii.gz"})


def _pipeline(num_coils=4, snr_db=None):
    return Compose(
        [
            LoadNiftiSliced(slice_index=2, spatial_size=32),
            SimulateKspaced(num_coils=num_coils, snr_db=snr_db, seed=0),
            UndersampleKspaced(mask_type="equispaced", acceleration=4, full_key="kspace_full"),
            ZeroFilledd(),
            NormalizeIntensityRanged(),
        ]
    )


@pytest.mark.parametrize("num_coils", [1, 4])
def test_compose_pipeline_consistent(tmp_path, num_coils):
    vol = np.zeros((32, 32, 4), np.float32)
    vol[8:24, 6:26, :] = np.random.default_rng(0).random((16, 20, 4)) + 1
    d = _pipeline(num_coils)({"image": _nifti(tmp_path, vol)})
    c = num_coils
    assert d["kspace"].shape == (c, 32, 32) and d["sens_maps"].shape == (c, 32, 32)
    assert d["mask"].shape == (1, 1, 32) and d["zf_rss"].shape == d["zf_sense"].shape == (1, 32, 32)
    assert abs(d["effective_acceleration"] - 4) < 1 and d["acceleration"] == 4
    # the dicts give a solver a consistent forward model (noiseless): A(image) == kspace
    op = SenseOperator(d["sens_maps"][None], d["mask"][None])
    assert torch.allclose(op(d["image"][None])[0], d["kspace"], atol=1e-5)
    assert torch.allclose(fft2c(d["sens_maps"] * d["image"]), d["kspace_full"], atol=1e-5)
    assert torch.allclose(d["image"].abs(), (d["target"] + 1) / 2, atol=1e-5)
    assert float(d["zf_rss"].min()) >= -1 - 1e-6
    back = DenormalizeIntensityRanged()(d)
    ref = _pipeline(num_coils).transforms[0]({"image": _nifti(tmp_path, vol)})["image"]
    assert torch.allclose(back["target"], ref, atol=1e-4)


def test_simulation_noise_snr_and_reproducibility(tmp_path):
    img = torch.rand(1, 32, 32)
    clean = SimulateKspaced(num_coils=4, seed=3)({"image": img})
    noisy = SimulateKspaced(num_coils=4, snr_db=20, seed=3)({"image": img})
    noise = noisy["kspace"] - clean["kspace"]
    snr = 10 * torch.log10((clean["kspace"].abs() ** 2).mean() / (noise.abs() ** 2).mean())
    assert abs(float(snr) - 20) < 0.5
    again = SimulateKspaced(num_coils=4, snr_db=20, seed=3)({"image": img})
    assert torch.equal(again["kspace"], noisy["kspace"])
    # the phase is smooth and bounded by max_phase
    assert float(clean["image"].angle().abs().max()) <= np.pi / 2 + 1e-5


def test_transform_bad_input():
    with pytest.raises(TypeError, match="image"):
        SimulateKspaced()({"image": torch.ones(1, 8, 8, dtype=torch.complex64)})
    k = torch.randn(2, 8, 8, dtype=torch.complex64)
    k[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="kspace"):
        UndersampleKspaced()({"kspace": k})
    with pytest.raises(TypeError, match="kspace"):
        ZeroFilledd()({"kspace": torch.randn(2, 8, 8)})
    with pytest.raises(ValueError, match="sens_maps"):
        ZeroFilledd(modes="sense")({"kspace": torch.randn(2, 8, 8, dtype=torch.complex64)})
    with pytest.raises(ValueError, match="ref_key"):
        NormalizeIntensityRanged()({"target": torch.ones(1, 8, 8)})
    with pytest.raises(ValueError, match="all zero"):
        NormalizeIntensityRanged()({"zf_rss": torch.zeros(1, 8, 8)})
