"""NIfTI outputs keep the input's geometry: the input's affine at the slice position and the input's axis order, so an
output overlays its input slice voxel for voxel; ``.npy`` inputs give an identity affine (1 mm)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from monai_ddpm_recon.io.geometry import nifti_slice_geometry
from monai_ddpm_recon.workflows import CaseSpec, ReconstructionWorkflow, SolverName, load_cases

SPEC = {"image_size": 64, "num_coils": 1, "acceleration": 2, "mask_type": "equispaced", "smooth_phase": False}


def rotation(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [a for a in range(3) if a != axis]
    r = np.eye(3)
    r[i, i] = r[j, j] = c
    r[i, j], r[j, i] = -s, s
    return r


def phantom(shape: tuple[int, int, int], slice_axis: int) -> np.ndarray:
    """An asymmetric phantom (off-centre ellipse + ramp), different in every slice: rotations and flips show."""
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    u, v = [g for a, g in enumerate(grids) if a != slice_axis]
    w = grids[slice_axis]
    vol = ((u - 0.2) ** 2 / 0.3 + (v + 0.1) ** 2 / 0.6 < 1) * (1.0 + 0.8 * u + 0.3 * v) + 0.2 * (w + 1) * (u > 0.5)
    vol = vol + 2.0 * ((u > -0.9) & (u < -0.5) & (v > 0.3) & (v < 0.9))  # a block in one corner
    return np.abs(vol).astype(np.float32) * 100.0  # physical units, not [0, 1]


@pytest.fixture(params=["oblique", "permuted"])
def volume(request, tmp_path):
    """64×64×5 oblique (stored RAS-like), or 5×64×64 with the slice axis first, pointing inferior, and a flipped
    in-plane axis."""
    linear = rotation(0, 0.25) @ rotation(2, -0.15)
    if request.param == "oblique":
        shape, slice_axis = (64, 64, 5), 2
        axes = np.diag([0.9, 1.1, 3.0])
    else:
        shape, slice_axis = (5, 64, 64), 0
        axes = np.array([[0.0, -0.9, 0.0], [0.0, 0.0, 1.1], [-3.0, 0.0, 0.0]])  # i → I, j → L, k → A
    affine = np.eye(4)
    affine[:3, :3] = linear @ axes
    affine[:3, 3] = [-28.0, 31.5, -7.25]
    path = tmp_path / f"{request.param}.nii.gz"
    nib.save(nib.Nifti1Image(phantom(shape, slice_axis), affine), str(path))
    return path, slice_axis


def check_overlay(out_path, in_path, slice_axis: int) -> None:
    """Every output voxel lies exactly on an input voxel of one slice and holds its value; shapes keep axis order."""
    src, out = nib.load(str(in_path)), nib.load(str(out_path))
    vol, data = np.asarray(src.dataobj), np.asarray(out.dataobj)
    expected_shape = list(vol.shape)
    expected_shape[slice_axis] = 1
    assert list(data.shape) == expected_shape  # the input's axis order, one slice
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in data.shape], indexing="ij"), -1).reshape(-1, 3)
    world = out.affine @ np.c_[idx, np.ones(len(idx))].T
    vox = (np.linalg.inv(src.affine) @ world)[:3].T
    r = np.rint(vox).astype(int)
    np.testing.assert_allclose(vox, r, atol=1e-4)  # same world coordinates as input voxels
    assert len(np.unique(r[:, slice_axis])) == 1  # all in one input slice
    np.testing.assert_array_equal(data.reshape(-1), vol[tuple(r.T)])  # voxel for voxel


def test_target_written_through_the_workflow_overlays_the_input(volume, tmp_path):
    path, slice_axis = volume
    spec = CaseSpec(input_files=[str(path)], slices=[0, 3], **SPEC)
    out = tmp_path / "out"
    wf = ReconstructionWorkflow(out, ["zero_filled"], spec, save_figures=False, progress=False)
    cases = load_cases(spec, seed=wf.seed)
    # a fully sampled run reconstructs the target exactly; spec needs R > 1, so write the target through _write
    targets = [np.abs(c.target.numpy()) for c in cases]
    rows = [{"case": c.name, "solver": "zero_filled", "R": 1, "R_effective": 1.0, "coils": 1, "psnr": 0.0,
             "ssim": 1.0, "nmse": 0.0, "nfe": 0, "seconds": 0.0} for c in cases]
    wf._write(cases, {SolverName.ZERO_FILLED: targets}, {SolverName.ZERO_FILLED: [None, None]}, rows)
    for case, index in zip(cases, (0, 3)):
        written = out / "zero_filled" / f"{case.name}.nii.gz"
        check_overlay(written, path, slice_axis)
        src, img = nib.load(str(path)), nib.load(str(written))
        # the slice position: along the slice axis, output voxel 0 is input slice `index` (counted in RAS order)
        world0 = img.affine @ [0, 0, 0, 1]
        k = (np.linalg.inv(src.affine) @ world0)[slice_axis]
        stored = index if slice_axis == 2 else 4 - index  # `slices` count inferior → superior (RAS)
        assert abs(k - stored) < 1e-4
        if slice_axis == 2:  # stored RAS-like: the input's affine translated to the slice, the slice itself unchanged
            shift = np.eye(4)
            shift[2, 3] = index
            np.testing.assert_allclose(img.affine, src.affine @ shift, atol=1e-5)
            np.testing.assert_array_equal(np.asarray(img.dataobj)[:, :, 0], np.asarray(src.dataobj)[:, :, index])
        assert img.header.get_xyzt_units()[0] == "mm" and int(img.header["sform_code"]) > 0


def test_zero_filled_run_writes_outputs_on_the_input_grid(volume, tmp_path):
    path, slice_axis = volume
    spec = CaseSpec(input_files=[str(path)], slices="auto", **SPEC)
    out = tmp_path / "run"
    ReconstructionWorkflow(out, ["zero_filled"], spec, save_figures=False, progress=False).run()
    (case,) = load_cases(spec)
    written = nib.load(str(out / "zero_filled" / f"{case.name}.nii.gz"))
    arr, affine = case.geometry.volume(np.abs(case.target.numpy()))
    np.testing.assert_allclose(written.affine, affine, atol=1e-5)
    assert written.shape == arr.shape
    recon, truth = np.asarray(written.dataobj).ravel(), arr.ravel()
    # R = 2 zero-filled aliases, but it must overlay the truth far better than a rotated or flipped copy would
    same = np.corrcoef(recon, truth)[0, 1]
    plane = np.squeeze(arr)
    others = [np.corrcoef(recon, wrong.ravel())[0, 1] for wrong in (np.rot90(plane), plane[::-1], plane[:, ::-1], plane.T)]
    assert same > 0.9 and max(others) < same - 0.3, (same, others)


def test_geometry_with_padding_and_resizing_maps_pixels_to_world(tmp_path):
    """A 40×64×7 volume loaded at 32: the model pixel centres land where the loader sampled the input."""
    from monai_ddpm_recon.transforms.io import load_nifti_slices

    affine = np.eye(4)
    affine[:3, :3] = rotation(1, 0.3) @ np.diag([1.2, 0.8, 2.0])
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((40, 64, 7), np.float32), affine), str(path))
    affine = nib.load(str(path)).affine
    geometry = nifti_slice_geometry(path, 4, 32)
    arr, out_affine = geometry.volume(np.zeros((32, 32)))
    assert arr.shape == (32, 32, 1)
    # pad 40 → 64 (12 each side along x), then 64 → 32: output voxel a samples input x = 2a + 0.5 − 12, y = 2b + 0.5
    for a, b in ((0, 0), (6, 9), (31, 31)):
        vox = np.linalg.inv(affine) @ out_affine @ [a, b, 0, 1]
        np.testing.assert_allclose(vox[:3], [2 * a + 0.5 - 12, 2 * b + 0.5, 4], atol=1e-5)
    # and a bright input voxel appears at the matching output pixel after the loader's pad + resize
    vol = np.zeros((40, 64, 7), np.float32)
    vol[20:22, 30:32, 4] = 1.0
    nib.save(nib.Nifti1Image(vol, affine), str(path))
    sl, _ = load_nifti_slices(path, 4, spatial_size=32)
    out, _ = nifti_slice_geometry(path, 4, 32).volume(sl[0].numpy())
    a, b = np.unravel_index(np.argmax(out[:, :, 0]), (32, 32))
    assert (a, b) == ((20 + 12) // 2, 30 // 2)


def test_npy_outputs_get_an_identity_affine(tmp_path):
    img = np.zeros((16, 16), np.float32)
    img[2:6, 3:12] = 1.0
    np.save(tmp_path / "slices.npy", img[None, None])
    spec = CaseSpec(example_data=str(tmp_path / "slices.npy"), **{**SPEC, "image_size": 16})
    ReconstructionWorkflow(tmp_path / "out", ["zero_filled"], spec, save_figures=False, progress=False).run()
    written = nib.load(str(tmp_path / "out" / "zero_filled" / "slices_000.nii.gz"))
    np.testing.assert_array_equal(written.affine, np.eye(4))  # 1 mm voxels, origin at the first voxel
    data = np.asarray(written.dataobj)
    assert data.shape == (16, 16, 1)
    assert np.corrcoef(data[:, :, 0].ravel(), img.ravel())[0, 1] > 0.8  # rows → i, columns → j, as in the array


@pytest.mark.parametrize("kind", ["oblique", "permuted"])
def test_native_size_output_is_the_input_slice_voxel_for_voxel(tmp_path, kind):
    """image_size=None: a non-square (odd) slice is reconstructed as stored; the written target overlays the input
    voxel for voxel and, for a RAS-stored volume, equals the input slice with the input's affine at the slice."""
    linear = rotation(0, 0.25) @ rotation(2, -0.15)
    if kind == "oblique":
        shape, slice_axis, axes = (45, 37, 4), 2, np.diag([0.9, 1.1, 3.0])
    else:
        shape, slice_axis, axes = (4, 37, 45), 0, np.array([[0.0, -0.9, 0.0], [0.0, 0.0, 1.1], [-3.0, 0.0, 0.0]])
    affine = np.eye(4)
    affine[:3, :3] = linear @ axes
    affine[:3, 3] = [-28.0, 31.5, -7.25]
    path = tmp_path / f"{kind}.nii.gz"
    nib.save(nib.Nifti1Image(phantom(shape, slice_axis), affine), str(path))
    spec = CaseSpec(input_files=[str(path)], slices=[1], **{**SPEC, "image_size": None})
    out = tmp_path / "out"
    wf = ReconstructionWorkflow(out, ["zero_filled"], spec, save_figures=False, progress=False)
    (case,) = load_cases(spec, seed=wf.seed)
    h, w = case.kspace.shape[-2:]
    assert {h, w} == {37, 45}  # the slice as stored: no padding, no resizing
    target = np.abs(case.target.numpy())
    rows = [{"case": case.name, "solver": "zero_filled", "R": 1, "R_effective": 1.0, "coils": 1, "psnr": 0.0,
             "ssim": 1.0, "nmse": 0.0, "nfe": 0, "seconds": 0.0}]
    wf._write([case], {SolverName.ZERO_FILLED: [target]}, {SolverName.ZERO_FILLED: [None]}, rows)
    written = out / "zero_filled" / f"{case.name}.nii.gz"
    check_overlay(written, path, slice_axis)
    if slice_axis == 2:
        src, img = nib.load(str(path)), nib.load(str(written))
        shift = np.eye(4)
        shift[2, 3] = 1
        np.testing.assert_allclose(img.affine, src.affine @ shift, atol=1e-5)
        np.testing.assert_allclose(np.asarray(img.dataobj)[:, :, 0], np.asarray(src.dataobj)[:, :, 1], rtol=1e-6)
