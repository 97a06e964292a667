"""Patch dataset (crops, coordinates, mixed sizes) and training a patch prior through the trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from monai_ddpm_recon.data.native import SlicePiece
from monai_ddpm_recon.priors import DDPMPrior, PatchDDPMPrior, coordinate_grid
from monai_ddpm_recon.training import EMA, DDPMTrainer, PatchDataset, crop_piece, fixed_patches


def _piece(h=40, w=30, rows=(0, 40), full_h=40):
    rng = np.random.default_rng(1)
    img = rng.random((h, w)).astype(np.float32)
    return SlicePiece(img, (rows[0] - (full_h - 1) / 2, -(w - 1) / 2), "r", "axial", 0, rows)


def test_crop_coordinates_are_the_whole_slice_coordinates():
    piece = _piece(20, 30, rows=(10, 30), full_h=40)  # rows 10..29 of a 40-row slice
    x = crop_piece(piece, 3, 5, 8, coord_scale=4.0)
    full = coordinate_grid(40, 30, 4.0)
    torch.testing.assert_close(x[1:], full[:, 13:21, 5:13])
    torch.testing.assert_close(x[0], torch.from_numpy(piece.image[3:11, 5:13]) * 2 - 1)


def test_flip_mirrors_the_image_and_its_coordinates():
    piece = _piece(16, 30)
    x = crop_piece(piece, 0, 0, 16, coord_scale=1.0, flip=True)
    torch.testing.assert_close(x[0], torch.from_numpy(piece.image[:, ::-1][:, :16].copy()) * 2 - 1)
    full = coordinate_grid(16, 30, 1.0)
    torch.testing.assert_close(x[2], -full[1, :, 29 - 15 : 30].flip(-1))  # column c of the mirror sits at -c


def test_crop_larger_than_piece_is_centred_on_background():
    piece = _piece(6, 30)
    ds = PatchDataset([piece], patch_sizes=(8, 16), coord_scale=1.0)
    x = ds[0]
    assert x.shape == (3, 16, 16)
    assert bool((x[0, :5] == -1).all()) and bool((x[0, -5:] == -1).all())  # 5 background rows above and below


def test_collate_splits_crops_into_tiles_of_one_size():
    torch.manual_seed(0)
    ds = PatchDataset([_piece()], patch_sizes=(8, 16), patch_probs=(1.0, 0.0), coord_scale=1.0)
    items = [ds[i] for i in range(2)]
    batch = ds.collate(items)
    assert batch.shape == (8, 3, 8, 8)
    torch.testing.assert_close(batch[1], items[0][:, :8, 8:16])
    torch.testing.assert_close(batch[6], items[1][:, 8:16, :8])
    sizes = {PatchDataset([_piece()], (8, 16), (0.5, 0.5)).collate(items).shape[-1] for _ in range(20)}
    assert sizes == {8, 16}


def test_bad_patch_settings():
    with pytest.raises(ValueError, match="divide the largest"):
        PatchDataset([_piece()], patch_sizes=(12, 16))
    with pytest.raises(ValueError, match="patch_probs"):
        PatchDataset([_piece()], patch_sizes=(8, 16), patch_probs=(1.0,))
    with pytest.raises(ValueError, match="empty"):
        PatchDataset([], patch_sizes=(8, 16))


def test_fixed_patches_for_validation():
    slices = np.random.default_rng(0).random((2, 1, 40, 36)).astype(np.float32)
    out = fixed_patches(slices, 8, coord_scale=1.0)
    assert out.shape == (8, 3, 8, 8)
    assert out[:, 0].min() >= 0 and out[:, 0].max() <= 1  # image channel stays in [0, 1]


def test_trainer_trains_and_exports_a_patch_prior(tmp_path):
    torch.manual_seed(0)
    pieces = [_piece(40, 36, (0, 40), 40)]
    prior = PatchDDPMPrior(16, network_kwargs={"channels": (8, 8)}, train_patch_sizes=(8, 16), coord_scale=8.0)
    ds = PatchDataset(pieces, patch_sizes=(8, 16), coord_scale=8.0)
    held = fixed_patches(np.stack([p.image for p in pieces])[:, None], 16, 8.0)
    trainer = DDPMTrainer(
        prior, ds, held, str(tmp_path), max_steps=3, batch_size=2, checkpoint_every=2, val_every=2, sample_every=0,
        num_samples=1, ddim_steps=2, sample_size=(20, 12), progress=False, export_path=str(tmp_path / "model.pt"),
        export_metadata=str(tmp_path / "model_metadata.json"),
    )
    summary = trainer.run()
    assert summary["steps"] == 3 and np.isfinite(summary["final_val"]["heldout_eps_mse_mean"])
    loaded = DDPMPrior.from_checkpoint(tmp_path / "model.pt")
    assert isinstance(loaded, PatchDDPMPrior) and loaded.coord_scale == 8.0
    assert loaded.eps(torch.zeros(1, 1, 23, 17), 10).shape == (1, 1, 23, 17)
    # resuming reads last.pt with weights_only=True
    DDPMTrainer(prior, ds, held, str(tmp_path), max_steps=4, batch_size=2, sample_every=0, val_every=0,
                num_samples=1, ddim_steps=2, sample_size=(20, 12), progress=False).run()
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 4

    # fine-tuning starts from a patch checkpoint (its coordinate inputs count in the network check) ...
    fresh = PatchDDPMPrior(16, network_kwargs={"channels": (8, 8)}, train_patch_sizes=(8, 16), coord_scale=8.0)
    ft = DDPMTrainer(fresh, ds, held, str(tmp_path / "ft"), init_checkpoint=str(tmp_path / "model.pt"))
    ft.ema = EMA(fresh.network, 0.998)
    ft._init_from_checkpoint()
    for k, v in torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"].items():
        torch.testing.assert_close(fresh.network.state_dict()[k], v)
    # ... and refuses a whole-image checkpoint by name
    DDPMPrior(16, network_kwargs={"channels": (8, 8)}).save_checkpoint(str(tmp_path / "whole.pt"))
    with pytest.raises(ValueError, match="holds a 'whole_image' prior, the configured prior is 'patch'"):
        DDPMTrainer(fresh, ds, held, str(tmp_path / "ft2"), init_checkpoint=str(tmp_path / "whole.pt"))._init_from_checkpoint()


def test_downsampled_crop_is_the_coarse_slice():
    piece = _piece(40, 40, rows=(0, 40), full_h=40)
    x = crop_piece(piece, 0, 0, 10, coord_scale=2.0, downsample=4.0)  # the whole slice with pixels 4x larger
    coarse = F.interpolate(torch.from_numpy(piece.image)[None, None], size=(10, 10), mode="bilinear", antialias=True,
                           align_corners=False)[0, 0].clamp_min(0)
    torch.testing.assert_close(x[0], coarse * 2 - 1)
    torch.testing.assert_close(x[1:], coordinate_grid(10, 10, 2.0))
    y = crop_piece(piece, 8, 4, 4, coord_scale=2.0, downsample=4.0)  # fine rows 8..23, cols 4..19: coarse 2..5, 1..4
    torch.testing.assert_close(y[1:], coordinate_grid(10, 10, 2.0)[:, 2:6, 1:5])
    f = crop_piece(piece, 0, 0, 10, coord_scale=2.0, flip=True, downsample=4.0)
    torch.testing.assert_close(f[0], x[0].flip(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(f[2], -x[2].flip(-1))


def test_dataset_downsamples_a_share_of_crops():
    torch.manual_seed(0)
    piece = _piece(64, 64, rows=(0, 64), full_h=64)
    always = PatchDataset([piece], patch_sizes=(8, 16), coord_scale=1.0, downsample_prob=1.0, downsample_range=(2.0, 2.0))
    for i in range(4):
        x = always[i]
        assert torch.allclose(x[1, 1:, 0] - x[1, :-1, 0], torch.ones(15))  # one coarse pixel per row
        assert float(x[1].abs().max()) <= 15.5  # inside the 32 x 32 coarse slice
    checker = SlicePiece((np.indices((64, 64)).sum(0) % 2).astype(np.float32), (-31.5, -31.5), "c", "axial", 0, (0, 64))
    mixed = PatchDataset([checker], patch_sizes=(8, 16), coord_scale=1.0, downsample_prob=0.5, downsample_range=(2.0, 4.0))
    coarse = [float(mixed[0][0].std()) < 0.3 for _ in range(200)]  # averaging >= 2 pixels greys a 1-pixel checkerboard
    assert 0.4 < float(np.mean(coarse)) < 0.6
    with pytest.raises(ValueError, match="downsample_range"):
        PatchDataset([piece], patch_sizes=(8, 16), downsample_prob=0.5, downsample_range=(0.5, 2.0))
    with pytest.raises(ValueError, match="downsample_prob"):
        PatchDataset([piece], patch_sizes=(8, 16), downsample_prob=1.5)


def test_full_view_is_the_whole_slice_as_the_whole_image_data_are_made():
    from monai_ddpm_recon.data.slices import resize_square
    from monai_ddpm_recon.training import full_view_corner_and_scale

    piece = _piece(40, 30, rows=(0, 40), full_h=40)
    top, left, s = full_view_corner_and_scale(piece, 16)
    x = crop_piece(piece, top, left, 16, coord_scale=2.0, downsample=s)
    torch.testing.assert_close(x[0], torch.from_numpy(resize_square(piece.image, 16)) * 2 - 1, atol=1e-6, rtol=0)
    torch.testing.assert_close(x[1:], coordinate_grid(16, 16, 2.0))  # the frame of a whole 16 x 16 image
    top, left, s = full_view_corner_and_scale(piece, 16, zoom=1.1, shift=(0.05, 0.0))
    assert s == pytest.approx(40 * 1.1 / 16) and (top, left) == (0, -7)  # region 44: centred at (-2, -7), 2 rows down


def test_dataset_full_views_come_only_from_whole_slices():
    torch.manual_seed(0)
    whole = _piece(64, 48, rows=(0, 64), full_h=64)
    cut = _piece(32, 48, rows=(0, 32), full_h=64)  # the top half of a slice whose lower rows were excluded
    ds = PatchDataset([whole, cut], patch_sizes=(8, 16), coord_scale=1.0, full_view_prob=1.0)
    kinds = {}
    for i in range(len(ds)):
        x = ds[i]
        piece = int(ds.index[i])
        step = float(x[1, 1, 0] - x[1, 0, 0])  # coordinate step of one crop pixel, in coarse pixels
        kinds.setdefault(piece, set()).add(step == 1.0 and float(x[1].abs().max()) < 8.5)
    assert kinds[0] == {True}  # every crop of the whole slice is a full view: a 16 x 16 coarse image's own frame
    assert ds.describe()["whole_slice_pieces"] == 1
    cut_crops = [ds[i] for i in range(len(ds)) if ds.index[i] == 1]
    assert all(float(c[1].abs().max()) > 8.5 for c in cut_crops)  # 1-pixel crops of the cut piece: 1 mm coordinates
    with pytest.raises(ValueError, match="full_view_prob"):
        PatchDataset([whole], patch_sizes=(8, 16), full_view_prob=-0.1)
