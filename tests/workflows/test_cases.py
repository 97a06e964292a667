from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from monai_ddpm_recon.operators import MaskedFourier, SenseOperator, fft2c
from monai_ddpm_recon.transforms.io import write_fastmri_h5
from monai_ddpm_recon.workflows import CaseSpec, load_cases
from monai_ddpm_recon.workflows.cases import case_shapes
from monai_ddpm_recon.transforms import CropKspace
from monai_ddpm_recon.workflows.runner import batches, stack_cases


@pytest.fixture
def example_npy(tmp_path):
    yy, xx = np.mgrid[-1:1:32j, -1:1:32j]
    img = ((xx**2 / 0.6 + yy**2 / 0.8) < 1).astype(np.float32) * (0.5 + 0.5 * (xx > 0))
    path = tmp_path / "slices.npy"
    np.save(path, np.stack([img, img * 0.8])[:, None])
    return path


def test_simulated_cases_are_consistent(example_npy):
    spec = CaseSpec(example_data=str(example_npy), image_size=32, num_coils=4, acceleration=4, mask_type="equispaced")
    cases = load_cases(spec, seed=1)
    assert [c.name for c in cases] == ["slices_000", "slices_001"]
    case = cases[0]
    assert case.kspace.shape == (4, 32, 32) and case.maps.shape == (4, 32, 32)
    assert 3.5 < case.acceleration < 5  # 32 columns: 7 or 8 sampled
    # the measured k-space is exactly the SENSE forward model of the ground truth
    op = SenseOperator(case.maps[None], case.mask[None])
    torch.testing.assert_close(op(case.target[None, None]), case.kspace[None], atol=1e-5, rtol=1e-5)
    # magnitude of the ground truth is the input slice; the phase is not trivial
    np.testing.assert_allclose(case.target.abs().numpy(), np.load(example_npy)[0, 0], atol=1e-5)
    assert float(case.target.angle().abs().max()) > 0.1


def test_single_coil_without_phase(example_npy):
    spec = CaseSpec(example_data=str(example_npy), image_size=32, num_coils=1, smooth_phase=False, slices=[1])
    (case,) = load_cases(spec)
    assert case.maps is None and case.kspace.shape == (1, 32, 32)
    assert float(case.target.imag.abs().max()) == 0.0


def test_batches_group_same_shapes(example_npy, tmp_path):
    spec = CaseSpec(example_data=str(example_npy), image_size=32, num_coils=2)
    cases = load_cases(spec)
    assert [len(b) for b in batches(cases, 1)] == [1, 1]
    (batch,) = batches(cases, 8)
    kspace, op = stack_cases(batch, torch.device("cpu"))
    assert kspace.shape == (2, 2, 32, 32) and op.num_coils == 2


def test_fastmri_case_crops_kspace_and_estimates_maps(tmp_path):
    yy, xx = np.mgrid[-1:1:64j, -1:1:32j]
    img = ((xx**2 + yy**2 / 2) < 0.5).astype(np.complex64)
    img64 = np.zeros((64, 64), np.complex64)
    img64[:, 16:48] = img
    from monai_ddpm_recon.operators import birdcage_maps

    maps = birdcage_maps(4, (64, 32))[0].numpy()
    ksp = fft2c(torch.from_numpy(maps * img)).numpy()[None]  # (1 slice, C, H, W)
    path = tmp_path / "file.h5"
    write_fastmri_h5(path, ksp)
    cases = load_cases(CaseSpec(input_files=[str(path)], image_size=32, acceleration=4, calib_width=16))
    assert len(cases) == 1 and cases[0].kspace.shape == (4, 32, 32)
    assert cases[0].maps.shape == (4, 32, 32)


def test_crop_kspace_keeps_field_of_view():
    from monai_ddpm_recon.operators import ifft2c

    # 2x readout-oversampled (64 x 32) image with an off-centre box; its field of view is the central 32 x 32
    img = torch.zeros(1, 64, 32, dtype=torch.complex64)
    img[0, 20:36, 4:20] = 1  # rows 4:20, columns 4:20 of the 32 x 32 field of view
    k = CropKspace(16)(fft2c(img))
    assert k.shape == (1, 16, 16)
    low = ifft2c(k)[0].abs()
    # the box lands at rows/columns 2:10 of the 16 x 16 image (half scale), with its intensity kept, nothing else
    assert float(low[3:9, 3:9].mean()) > 0.9 and float(low[3:9, 3:9].mean()) < 1.1
    assert float(low[11:, :].abs().max()) < 0.15 and float(low[:, 11:].abs().max()) < 0.15
    # and equals an independent numpy reference: crop the image to 32 x 32, keep its central 16 x 16 k-space
    square = img[0, 16:48].numpy()
    ks = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(square), norm="ortho"))[8:24, 8:24]
    ref = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(ks), norm="ortho")) * (16 / 32)
    np.testing.assert_allclose(ifft2c(k)[0].numpy(), ref, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_files": ["/nonexistent.nii.gz"]}, "does not exist"),
        ({"acceleration": 1}, "acceleration"),
        ({"mask_type": "spiral"}, "mask_type"),
        ({"num_coils": 0}, "num_coils"),
        ({"slices": []}, "slices"),
    ],
)
def test_spec_rejects_bad_input(example_npy, kwargs, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        CaseSpec(example_data=str(example_npy), **kwargs)


def test_spec_rejects_unknown_file_type(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("x")
    with pytest.raises(ValueError, match="unsupported type"):
        CaseSpec(input_files=[str(f)])


def test_out_of_range_slice(example_npy):
    with pytest.raises(ValueError, match="out of range"):
        load_cases(CaseSpec(example_data=str(example_npy), image_size=32, slices=[5]))


def test_smooth_phase_accepts_command_line_strings(tmp_path):
    import numpy as np

    from monai_ddpm_recon.workflows.cases import CaseSpec

    data = tmp_path / "x.npy"
    np.save(data, np.ones((1, 16, 16), np.float32))
    assert CaseSpec(example_data=str(data), smooth_phase="false").smooth_phase is False
    assert CaseSpec(example_data=str(data), smooth_phase="True").smooth_phase is True
    with pytest.raises(ValueError, match="smooth_phase"):
        CaseSpec(example_data=str(data), smooth_phase="maybe")


def test_slices_auto_from_the_command_line(tmp_path):
    import numpy as np

    from monai_ddpm_recon.workflows.cases import CaseSpec

    data = tmp_path / "x.npy"
    np.save(data, np.ones((3, 16, 16), np.float32))
    assert CaseSpec(example_data=str(data), slices="auto").slices == "auto"
    assert CaseSpec(example_data=str(data), slices="null").slices is None
    with pytest.raises(ValueError, match="slices"):
        CaseSpec(example_data=str(data), slices="middle-ish")


def test_slices_auto_picks_central_slices_of_user_files_and_the_demo_slices_of_the_example(tmp_path):
    import json

    import nibabel as nib

    from monai_ddpm_recon.workflows.cases import EXAMPLE_SLICES, case_names

    stack = tmp_path / "stack.npy"
    np.save(stack, np.random.default_rng(0).random((16, 16, 16), dtype=np.float32))
    small = tmp_path / "small.npy"
    np.save(small, np.ones((2, 16, 16), np.float32))
    nib.save(nib.Nifti1Image(np.random.rand(16, 16, 9).astype(np.float32), np.eye(4)), str(tmp_path / "vol.nii.gz"))
    rng = np.random.default_rng(1)
    write_fastmri_h5(tmp_path / "two.h5", (rng.standard_normal((2, 1, 32, 32)) + 1j).astype(np.complex64))
    fast = dict(image_size=16, num_coils=1, acceleration=2, mask_type="equispaced")
    # the shipped example (no input_files): the documented demo slices, the ones that exist in a shorter stack
    assert EXAMPLE_SLICES == (0, 4, 8)
    assert case_names(CaseSpec(example_data=str(stack), slices="auto", **fast)) == ["stack_000", "stack_004", "stack_008"]
    assert case_names(CaseSpec(example_data=str(small), slices="auto", **fast)) == ["small_000"]
    # user files: the central slice of each, a 2-slice h5 included
    user = [str(stack), str(tmp_path / "vol.nii.gz"), str(tmp_path / "two.h5")]
    spec = CaseSpec(input_files=user, slices="auto", **fast)
    assert case_names(spec) == ["stack_008", "vol_004", "two_001"]
    assert [c.name for c in load_cases(spec)] == case_names(spec)
    # null keeps its meaning (every slice of a .npy stack: the benchmark's 16 held-out slices)
    assert len(case_names(CaseSpec(example_data=str(stack), slices=None, **fast))) == 16
    # an explicit out-of-range index is still a one-line error
    with pytest.raises(ValueError, match=r"slices: index 4 is out of range for 2 slices in .*two\.h5"):
        case_names(CaseSpec(input_files=[str(tmp_path / "two.h5")], slices=[4], **fast))
    # the bundle's default is auto
    config = json.loads((Path(__file__).parents[2] / "bundles/ddpm_recon/configs/inference.json").read_text())
    assert config["slices"] == "auto"


def test_resolution_changes_are_logged(tmp_path, caplog):
    import logging

    import nibabel as nib

    np.save(tmp_path / "big.npy", np.ones((1, 24, 20), np.float32))
    np.save(tmp_path / "same.npy", np.ones((1, 16, 16), np.float32))
    nib.save(nib.Nifti1Image(np.random.rand(20, 12, 3).astype(np.float32), np.eye(4)), str(tmp_path / "vol.nii.gz"))
    rng = np.random.default_rng(0)
    write_fastmri_h5(tmp_path / "k.h5", (rng.standard_normal((2, 1, 40, 32)) + 0j).astype(np.complex64))
    files = [str(tmp_path / f) for f in ("big.npy", "same.npy", "vol.nii.gz", "k.h5")]
    with caplog.at_level(logging.INFO, logger="monai_ddpm_recon.workflows.cases"):
        load_cases(CaseSpec(input_files=files, slices="auto", image_size=16, num_coils=1, acceleration=2,
                            mask_type="equispaced"))
    lines = [r.getMessage() for r in caplog.records if "resampled" in r.getMessage()]
    assert len(lines) == 3, lines  # one per file whose matrix changed, none for same.npy
    assert lines[0].startswith(files[0]) and "matrix 24x20 resampled to 16x16" in lines[0]
    assert lines[1].startswith(files[2]) and "matrix 12x20 resampled to 16x16" in lines[1]  # (Y, X) of the slice
    assert lines[2].startswith(files[3]) and "matrix 40x32 resampled to 16x16" in lines[2] and "k-space" in lines[2]


def test_warns_once_when_the_effective_acceleration_is_far_from_the_request(tmp_path, caplog):
    import logging

    np.save(tmp_path / "x.npy", np.ones((3, 64, 64), np.float32))
    fast = dict(example_data=str(tmp_path / "x.npy"), slices=None, image_size=64, num_coils=1)
    with caplog.at_level(logging.WARNING, logger="monai_ddpm_recon.workflows.cases"):
        cases = load_cases(CaseSpec(acceleration=1000, **fast))
    (record,) = caplog.records  # once per case set, not once per case
    assert all(abs(c.acceleration - 12.8) < 1e-6 for c in cases)
    message = record.getMessage()
    assert "R=1000" in message and "R_effective=12.80" in message and "caps R at 12.8" in message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="monai_ddpm_recon.workflows.cases"):
        load_cases(CaseSpec(acceleration=4, mask_type="equispaced", **fast))
    assert not caplog.records  # equispaced R=4 on 64 columns is within 10 %


EXAMPLE = Path(__file__).parents[2] / "bundles/ddpm_recon/data/colin27_heldout_axial_64.npy"


def _reference_cases(spec, seed: int) -> list:
    """The case loop as written before the cases were built by a Compose: array transforms, one simulator whose
    random state runs through the cases, one mask seeded ``seed·10⁴ + index`` per case (``.npy`` at its size)."""
    import itertools
    import math

    from monai_ddpm_recon.transforms import SimulateKspace, UndersampleKspace
    from monai_ddpm_recon.workflows.cases import _indices

    counter = itertools.count()
    simulate = SimulateKspace(num_coils=spec.num_coils, phase_order=2 if spec.smooth_phase else 0,
                              max_phase=math.pi / 2, snr_db=spec.snr_db, seed=seed)
    arr = np.load(spec.files[0])
    out = []
    for i in _indices(arr.shape[0], spec, spec.files[0]):
        sim = simulate(torch.from_numpy(np.ascontiguousarray(arr[i], dtype=np.float32))[None])
        masker = UndersampleKspace(spec.mask_type, spec.acceleration, spec.center_fraction, seed=seed * 10_000 + next(counter))
        kspace, mask = masker(sim.kspace)
        out.append((kspace, mask, sim.sens_maps if spec.num_coils > 1 else None, sim.image[0], masker.effective_acceleration))
    return out


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # the bundle's default: 8 coils, random mask, smooth phase, R 8
        {"num_coils": 1, "smooth_phase": False},
        {"mask_type": "equispaced", "acceleration": 4, "slices": [1, 5, 15]},
        {"snr_db": 25.0, "slices": [0, 3]},
        {"num_coils": 1, "snr_db": 20.0, "mask_type": "equispaced", "slices": None},
    ],
)
@pytest.mark.parametrize("seed", [0, 3])
def test_compose_cases_are_bit_identical_to_the_array_transform_loop(kwargs, seed):
    spec = CaseSpec(example_data=str(EXAMPLE), **{"slices": "auto", **kwargs})
    cases = load_cases(spec, seed=seed)
    reference = _reference_cases(spec, seed)
    assert len(cases) == len(reference) > 0
    for case, (kspace, mask, maps, target, acc) in zip(cases, reference):
        assert torch.equal(case.kspace, kspace) and torch.equal(case.mask, mask) and torch.equal(case.target, target)
        assert (case.maps is None and maps is None) or torch.equal(case.maps, maps)
        assert case.acceleration == acc


def _check_case(case, shape, coils):
    """k-space, mask, maps and target of one case agree with each other at ``shape``."""
    h, w = shape
    assert case.kspace.shape == (coils, h, w) and case.target.shape == (h, w)
    assert case.mask.shape in ((1, 1, w), (1, h, w))
    if coils == 1:
        assert case.maps is None
        op = MaskedFourier(case.mask[None], (h, w))
    else:
        assert case.maps.shape == (coils, h, w)
        op = SenseOperator(case.maps[None], case.mask[None])
    return op


@pytest.mark.parametrize("shape", [(217, 181), (192, 224)])
@pytest.mark.parametrize("coils, mask_type, snr_db", [(8, "random", None), (1, "equispaced", None), (4, "poisson", 20.0)])
def test_native_size_keeps_every_npy_and_nifti_input_at_its_own_matrix(tmp_path, caplog, shape, coils, mask_type, snr_db):
    import logging

    import nibabel as nib

    h, w = shape
    rng = np.random.default_rng(0)
    np.save(tmp_path / "s.npy", rng.random((2, 1, h, w)).astype(np.float32))
    vol = rng.random((w, h, 3)).astype(np.float32)  # canonical (X, Y, Z): axial slices are (Y, X) = (h, w)
    nib.save(nib.Nifti1Image(vol, np.diag([0.9, 1.1, 2.0, 1.0])), str(tmp_path / "v.nii.gz"))
    files = [str(tmp_path / "s.npy"), str(tmp_path / "v.nii.gz")]
    spec = CaseSpec(input_files=files, image_size="null", slices=[1], num_coils=coils, mask_type=mask_type,
                    acceleration=4, snr_db=snr_db)
    assert spec.image_size is None
    with caplog.at_level(logging.INFO, logger="monai_ddpm_recon.workflows.cases"):
        cases = load_cases(spec)
    assert not [r for r in caplog.records if "resampled" in r.getMessage()]  # nothing resampled
    assert case_shapes(spec) == [shape]
    np.testing.assert_allclose(cases[0].target.abs().numpy(), np.load(files[0])[1, 0], atol=1e-5)
    np.testing.assert_allclose(cases[1].target.abs().numpy(), np.rot90(vol[:, :, 1]), atol=1e-5)  # as stored
    for case in cases:
        op = _check_case(case, shape, coils)
        clean = op(case.target[None, None])[0]
        residual = float((case.kspace - clean).abs().max()) / float(clean.abs().max())
        assert residual < 1e-5 if snr_db is None else residual > 1e-3  # noise only when asked for
        assert 2.5 < case.acceleration < 6
    geometry = cases[1].geometry
    arr, _ = geometry.volume(np.abs(cases[1].target.numpy()))
    assert arr.shape == (w, h, 1)  # the input's axis order, no padding


@pytest.mark.parametrize("coils", [1, 4])
def test_native_size_keeps_fastmri_kspace_as_stored(tmp_path, coils):
    from monai_ddpm_recon.operators import birdcage_maps

    h, w = 96, 50
    yy, xx = np.mgrid[-1:1:complex(h), -1:1:complex(w)]
    img = (((xx**2 + yy**2 / 2) < 0.5) * (1 + 0.3 * xx)).astype(np.complex64)
    maps = birdcage_maps(coils, (h, w))[0].numpy() if coils > 1 else np.ones((1, h, w), np.complex64)
    k = fft2c(torch.from_numpy(maps * img)).numpy()[None]
    write_fastmri_h5(tmp_path / "f.h5", k if coils > 1 else k[:, 0])
    spec = CaseSpec(input_files=[str(tmp_path / "f.h5")], image_size=None, acceleration=4, calib_width=16)
    (case,) = load_cases(spec)
    op = _check_case(case, (h, w), coils)
    assert case_shapes(spec) == [(h, w)]
    # the measured k-space is the stored k-space, masked: nothing cropped or rescaled
    torch.testing.assert_close(case.kspace, torch.from_numpy(k[0]) * case.mask, atol=0, rtol=0)
    if coils == 1:
        torch.testing.assert_close(case.target, torch.from_numpy(img), atol=1e-5, rtol=0)
        torch.testing.assert_close(op(case.target[None, None])[0], case.kspace, atol=1e-5, rtol=0)
    else:  # ESPIRiT maps: the SENSE-combined target is the image up to a smooth phase
        assert np.corrcoef(case.target.abs().numpy().ravel(), np.abs(img).ravel())[0, 1] > 0.99


@pytest.mark.parametrize("value, expected", [(64, 64), ("32", 32), (None, None), ("null", None), ("None", None)])
def test_image_size_accepts_ints_and_null(example_npy, value, expected):
    assert CaseSpec(example_data=str(example_npy), image_size=value).image_size == expected


@pytest.mark.parametrize("value", [4, "big", 32.5, [32, 32]])
def test_image_size_rejects_bad_values_in_one_line(example_npy, value):
    with pytest.raises(ValueError, match=r"^image_size must be") as err:
        CaseSpec(example_data=str(example_npy), image_size=value)
    assert "\n" not in str(err.value)


def test_default_image_size_is_unchanged(example_npy):
    assert CaseSpec(example_data=str(example_npy)).image_size == 64
    assert case_shapes(CaseSpec(example_data=str(example_npy), image_size=32)) == [(32, 32)]
