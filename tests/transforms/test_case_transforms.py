"""The dictionary transforms the bundle's cases are built with: loading at native size, resizing, k-space cropping,
per-item mask seeds, the SENSE-combined zero-filled image; all at non-square sizes."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_ddpm_recon.data.slices import axial_slice, resize_square
from monai_ddpm_recon.operators import SenseOperator, fft2c, ifft2c, make_mask
from monai_ddpm_recon.transforms import (
    CropKspace,
    CropKspaced,
    LoadMagnitudeSliced,
    ResizeSlicesd,
    SimulateKspace,
    UndersampleKspace,
    UndersampleKspaced,
    ZeroFilled,
)


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    stack = rng.random((3, 1, 217, 181)).astype(np.float32)
    np.save(tmp_path / "s.npy", stack)
    vol = rng.random((192, 224, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(tmp_path / "v.nii.gz"))
    return tmp_path, stack, vol


def test_load_magnitude_keeps_the_native_size(inputs):
    tmp, stack, vol = inputs
    load = LoadMagnitudeSliced()
    d = load({"image": str(tmp / "s.npy"), "slice_index": 2})
    assert d["image"].shape == (1, 217, 181) and d["image"].dtype == torch.float32
    np.testing.assert_array_equal(d["image"][0].numpy(), stack[2, 0])
    d = load({"image": str(tmp / "v.nii.gz"), "slice_index": 1})
    assert d["image"].shape == (1, 224, 192)  # axial slice (Y, X), anterior at the top
    np.testing.assert_array_equal(d["image"][0].numpy(), axial_slice(vol, 1))
    assert np.array_equal(d["image_meta_dict"]["affine"], np.eye(4))
    with pytest.raises(ValueError, match="neither a NIfTI"):
        load({"image": str(tmp / "x.png")})


def test_resize_slices_pads_then_resizes_or_keeps(inputs):
    _, stack, _ = inputs
    img = torch.from_numpy(stack[:1, 0])
    assert ResizeSlicesd(spatial_size=None)({"image": img})["image"] is img
    out = ResizeSlicesd(spatial_size=64)({"image": img})["image"]
    assert out.shape == (1, 64, 64)
    np.testing.assert_array_equal(out[0].numpy(), resize_square(stack[0, 0], 64))


def test_crop_kspace_none_keeps_and_size_keeps_the_field_of_view():
    img = torch.zeros(2, 96, 48, dtype=torch.complex64)
    img[:, 40:56, 10:20] = 1  # inside the central 48 x 48 field of view
    k = fft2c(img)
    assert CropKspaced(size=None)({"kspace": k})["kspace"] is k
    low = CropKspace(24)(k)
    assert low.shape == (2, 24, 24)
    # the box keeps its place in the field of view (rows 40-24=16..32 of 48 → 8..16 of 24, columns 10..20 → 5..10)
    mag = ifft2c(low)[0].abs()
    assert float(mag[8:16, 5:10].mean()) > 0.8 and float(mag[:, 14:].abs().max()) < 0.2
    with pytest.raises(ValueError, match="image_size=64 exceeds"):
        CropKspace(64)(k)


def test_per_item_mask_seed():
    k = torch.ones(2, 192, 224, dtype=torch.complex64)
    und = UndersampleKspaced(mask_type="random", acceleration=4)
    a = und({"kspace": k, "seed": 7})
    b = und({"kspace": k, "seed": 8})
    assert not torch.equal(a["mask"], b["mask"])
    ref, mask = UndersampleKspace("random", 4, seed=7)(k)
    assert torch.equal(a["mask"], mask) and torch.equal(a["kspace"], ref)
    assert a["mask"].shape == (1, 1, 224) and a["effective_acceleration"] == pytest.approx(224 / mask.sum().item())


@pytest.mark.parametrize("shape", [(192, 224), (217, 181)])
def test_sense_zero_filled_equals_the_operator_adjoint(shape):
    h, w = shape
    g = torch.Generator().manual_seed(0)
    k = torch.randn(4, h, w, dtype=torch.complex64, generator=g)
    maps = torch.randn(h, w, 4, dtype=torch.complex64, generator=g).permute(2, 0, 1)  # non-contiguous, like ESPIRiT's
    mask = make_mask("poisson", shape, 4, seed=0)[0]
    got = ZeroFilled("sense")(k, sens_maps=maps, mask=mask)
    ref = SenseOperator(maps[None], mask[None]).adjoint(k[None])[0]
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="mask has shape"):
        ZeroFilled("sense")(k, sens_maps=maps, mask=torch.ones(1, 1, w + 1))


@pytest.mark.parametrize("shape", [(192, 224), (217, 181)])
@pytest.mark.parametrize("snr_db", [None, 20.0])
def test_simulation_at_non_square_sizes(shape, snr_db):
    mag = torch.rand(1, *shape)
    sim = SimulateKspace(num_coils=4, snr_db=snr_db, seed=1)(mag)
    assert sim.kspace.shape == (4, *shape) and sim.sens_maps.shape == (4, *shape) and sim.image.shape == (1, *shape)
    torch.testing.assert_close(sim.image.abs(), mag, atol=1e-6, rtol=0)
    clean = fft2c(sim.sens_maps * sim.image)
    noise = sim.kspace - clean
    if snr_db is None:
        assert float(noise.abs().max()) == 0.0
    else:
        snr = 10 * np.log10(float((clean.abs() ** 2).mean()) / float((noise.abs() ** 2).mean()))
        assert abs(snr - snr_db) < 0.2
    phase = sim.image.angle()[0]
    assert 1.0 < float(phase.abs().max()) <= np.pi / 2 + 1e-5  # smooth phase, max π/2, over the whole (H, W) grid
