"""The one slice preprocessing and the one intensity scale rule (data/slices.py), shared by training and inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from monai_ddpm_recon.data.slices import (
    axial_slice,
    intensity_scale,
    intensity_scales,
    normalise_max,
    pad_to_square,
    resize,
    resize_square,
)
from monai_ddpm_recon.transforms import ResizeSlices, robust_scale
from monai_ddpm_recon.transforms.io import load_nifti_slices


def _reference_resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """The training pipeline as it was written before the preprocessing was shared (numpy pad, then torch)."""
    h, w = img.shape
    s = max(h, w)
    sq = np.zeros((s, s), np.float32)
    sq[(s - h) // 2 : (s - h) // 2 + h, (s - w) // 2 : (s - w) // 2 + w] = img
    out = F.interpolate(torch.from_numpy(sq)[None, None], size=(size, size), mode="bilinear", antialias=True,
                        align_corners=False)
    return out[0, 0].clamp_min(0).numpy()


@pytest.mark.parametrize("shape", [(217, 181), (192, 224), (64, 64), (33, 47)])
@pytest.mark.parametrize("size", [64, 48])
def test_resize_square_is_bit_identical_to_the_training_reference(shape, size):
    img = np.random.default_rng(0).random(shape).astype(np.float32) - 0.1  # negative values: clipped like before
    np.testing.assert_array_equal(resize_square(img, size), _reference_resize_square(img, size))


def test_pad_to_square_numpy_and_torch_agree_and_keep_dtype():
    img = np.arange(12, dtype=np.float64).reshape(3, 4) + 1
    out = pad_to_square(img)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (4, 4)
    np.testing.assert_array_equal(out[:3], img)  # top pad (4 - 3) // 2 = 0, the extra row at the bottom
    np.testing.assert_array_equal(out[3], 0)
    np.testing.assert_array_equal(pad_to_square(torch.from_numpy(img)[None]).numpy()[0], out)


def test_resize_none_or_same_size_returns_the_input():
    x = torch.rand(2, 217, 181) - 0.5
    assert resize(x, None) is x and resize(x, (217, 181)) is x
    assert ResizeSlices(None)(x) is x
    with pytest.raises(ValueError, match="spatial_size"):
        resize(x, (0, 3))


def test_inference_loader_uses_the_training_preprocessing(tmp_path):
    """load_nifti_slices (inference) at a size gives exactly volume → axial_slice → resize_square (training)."""
    import nibabel as nib

    vol = np.random.default_rng(1).random((50, 60, 4)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(tmp_path / "v.nii.gz"))
    slices, _ = load_nifti_slices(tmp_path / "v.nii.gz", [1, 3], spatial_size=32)
    for got, z in zip(slices, (1, 3)):
        np.testing.assert_array_equal(got.numpy(), resize_square(axial_slice(vol, z), 32))
    native, _ = load_nifti_slices(tmp_path / "v.nii.gz", 2, spatial_size=None, pad_to_square=False)
    np.testing.assert_array_equal(native[0].numpy(), axial_slice(vol, 2))  # (Y, X) = (60, 50), as stored


def test_one_scale_rule():
    rng = np.random.default_rng(2)
    img = rng.random((40, 30)).astype(np.float32)
    img[3, 4] = 50.0  # a hot pixel sets the maximum but not the 99.5th percentile
    assert intensity_scale(img, 100) == float(img.max())
    np.testing.assert_array_equal(normalise_max(img), img / float(img.max()))
    robust = intensity_scale(img, 99.5)
    assert robust == float(np.quantile(img.astype(np.float64), 0.995)) and robust < 2
    assert robust_scale(torch.from_numpy(img)) == robust  # the inference transforms use the same rule
    z = np.zeros((4, 4), np.float32)
    z[0, 0] = 1.0  # the percentile is 0 here: the rule falls back to the maximum
    assert intensity_scale(z, 50) == 1.0
    with pytest.raises(ValueError, match="empty"):
        normalise_max(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="NaN"):
        intensity_scale(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="percentile"):
        intensity_scale(img, 0)


def test_batched_scale_rule_is_the_per_item_rule():
    """Solvers scale a batch at once; each item must get exactly the single-image rule's value."""
    rng = np.random.default_rng(3)
    batch = torch.from_numpy(rng.random((3, 1, 12, 10)) * np.array([1.0, 7.0, 0.1])[:, None, None, None])
    batch = torch.complex(batch, batch.flip(-1)).to(torch.complex64)
    batch[2] = 0
    batch[2, 0, 0, 0] = 2.0  # percentile 0 for this item: falls back to its maximum
    for p in (99.0, 99.5, 100.0):
        got = intensity_scales(batch, p)
        assert got.dtype == torch.float64 and got.shape == (3,)
        assert got.tolist() == [intensity_scale(b, p) for b in batch]
    zero = intensity_scales(torch.zeros(2, 4, 4), 99)
    assert zero.tolist() == [0.0, 0.0]  # the caller decides: CS baselines use 1, the prior mapping refuses
    with pytest.raises(ValueError, match="batch"):
        intensity_scales(torch.tensor(1.0))
