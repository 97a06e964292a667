from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_ddpm_recon.operators import SenseOperator, fft2c
from monai_ddpm_recon.transforms.io import write_fastmri_h5
from monai_ddpm_recon.workflows import CaseSpec, load_cases
from monai_ddpm_recon.workflows.cases import crop_kspace
from monai_ddpm_recon.workflows.reconstruct import batches, stack_cases


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
    img = torch.zeros(1, 64, 32, dtype=torch.complex64)
    img[0, 24:40, 8:24] = 1
    k = crop_kspace(fft2c(img), 16)
    assert k.shape == (1, 16, 16)


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
    assert CaseSpec(example_data=str(data), slices="auto").slices is None
    with pytest.raises(ValueError, match="slices"):
        CaseSpec(example_data=str(data), slices="middle-ish")
