"""Training workflow of the DDPM prior (wired by bundles/ddpm_recon/configs/train.json)."""

from __future__ import annotations

from .augment import RandomSliceAugment, affine_resample, smooth_random_field
from .datasets import SliceDataset, check_images, fastmri_rss_slices, load_prepared, nifti_slices, training_data
from .ema import EMA
from .patches import PatchDataset, crop_piece, fixed_patches, full_view_corner_and_scale, native_patch_data
from .trainer import DDPMTrainer, ddim_sample, eps_mse, network_input, save_grid, train_eval_indices

__all__ = [
    "DDPMTrainer",
    "EMA",
    "PatchDataset",
    "crop_piece",
    "full_view_corner_and_scale",
    "fixed_patches",
    "native_patch_data",
    "network_input",
    "RandomSliceAugment",
    "SliceDataset",
    "affine_resample",
    "smooth_random_field",
    "check_images",
    "ddim_sample",
    "eps_mse",
    "fastmri_rss_slices",
    "load_prepared",
    "nifti_slices",
    "save_grid",
    "train_eval_indices",
    "training_data",
]
