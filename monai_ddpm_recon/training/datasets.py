"""Datasets of 2D slices for training the DDPM prior.

Every dataset yields float32 ``(channels, S, S)`` tensors in the prior's ``[-1, 1]`` range (``2 * x - 1`` with
``x`` the slice magnitude divided by its maximum). Sources: arrays already prepared (``.npy``), NIfTI volumes
sliced axially, and fastMRI HDF5 files (``reconstruction_rss``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.slices import load_nifti_ras, normalise_max, resize_square, volume_slices


def check_images(name: str, images: np.ndarray, image_size: int | None = None) -> np.ndarray:
    """Validate ``(N, C, S, S)`` float images in ``[0, 1]``: non-empty, finite, right size."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W) or (N, H, W), got {images.shape}.")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty: no training images. Check the data paths and the foreground threshold.")
    if not np.isfinite(images).all():
        raise ValueError(f"{name} contains {int((~np.isfinite(images)).sum())} NaN/Inf value(s).")
    if image_size is not None and images.shape[-2:] != (image_size, image_size):
        raise ValueError(
            f"{name} has images of size {images.shape[-2:]}, expected ({image_size}, {image_size}); "
            "prepare the data at the configured image_size."
        )
    if images.min() < -1e-6 or images.max() > 1 + 1e-6:
        raise ValueError(f"{name} must hold magnitudes in [0, 1], got range [{images.min():.3g}, {images.max():.3g}].")
    return images


class SliceDataset(Dataset):
    """In-memory ``[0, 1]`` slices ``(N, C, S, S)`` -> ``[-1, 1]`` tensors, with optional augmentation."""

    def __init__(self, images: np.ndarray | str, image_size: int | None = None, augment=None) -> None:
        if isinstance(images, (str, os.PathLike)):
            if not os.path.isfile(images):
                raise FileNotFoundError(f"training array not found: {images}.")
            images = np.load(images)
        self.images = torch.from_numpy(check_images("images", images, image_size))
        self.augment = augment

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.images[i]
        if self.augment is not None:
            x = self.augment(x)
        return x * 2 - 1


def nifti_slices(paths: Sequence[str], image_size: int, min_foreground: float = 0.15) -> np.ndarray:
    """Axial slices of NIfTI volumes, ``(N, 1, S, S)`` in ``[0, 1]``."""
    out = [volume_slices(load_nifti_ras(p), image_size, min_foreground)[0] for p in paths]
    arr = np.concatenate(out) if out else np.zeros((0, image_size, image_size), np.float32)
    return arr[:, None]


def fastmri_rss_slices(paths: Sequence[str], image_size: int, min_rel_energy: float = 0.2) -> np.ndarray:
    """Slices of fastMRI HDF5 ``reconstruction_rss`` (fastMRI: Zbontar et al., arXiv:1811.08839), ``(N, 1, S, S)`` in ``[0, 1]``.

    Edge slices whose total intensity is below ``min_rel_energy`` times the volume's brightest slice are dropped.
    """
    import h5py

    out = []
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"fastMRI file not found: {p}.")
        with h5py.File(p, "r") as f:
            if "reconstruction_rss" not in f:
                raise ValueError(f"{p} has no 'reconstruction_rss' dataset (needed to train the prior).")
            vol = np.asarray(f["reconstruction_rss"], dtype=np.float32)
        energy = vol.reshape(vol.shape[0], -1).sum(1)
        for sl, e in zip(vol, energy):
            if e >= min_rel_energy * energy.max() and sl.max() > 0:
                out.append(normalise_max(resize_square(sl, image_size)))
    arr = np.stack(out) if out else np.zeros((0, image_size, image_size), np.float32)
    return arr[:, None]


def load_prepared(data_dir: str, image_size: int) -> dict:
    """Load ``train.npy`` / ``heldout.npy`` written by ``python -m monai_ddpm_recon.data.prepare``."""
    out = {}
    for key in ("train", "heldout"):
        p = os.path.join(data_dir, f"{key}.npy")
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p} not found; run python -m monai_ddpm_recon.data.prepare --output {data_dir}.")
        out[key] = check_images(key, np.load(p), image_size)
    return out


def training_data(
    image_size: int,
    data_dir: str | None = None,
    use_mni152: bool = True,
    nifti_files: Sequence[str] | None = None,
    fastmri_files: Sequence[str] | None = None,
) -> dict:
    """Training and held-out arrays ``{"train": (N,1,S,S), "heldout": (M,1,S,S)}`` in ``[0, 1]``.

    Default: Colin27 (+ MNI152) with the held-out Colin27 ventricle slab (see :mod:`monai_ddpm_recon.data`).
    ``data_dir`` loads a prepared folder instead; ``nifti_files`` / ``fastmri_files`` add extra training slices
    from other volumes (axial NIfTI slices, fastMRI ``reconstruction_rss``).
    """
    if data_dir:
        data = load_prepared(data_dir, image_size)
    else:
        from ..data.prepare import build_dataset

        ds = build_dataset(image_size=image_size, use_mni152=use_mni152)
        data = {"train": ds["train"], "heldout": ds["heldout"]}
    extra = []
    if nifti_files:
        extra.append(nifti_slices(nifti_files, image_size))
    if fastmri_files:
        extra.append(fastmri_rss_slices(fastmri_files, image_size))
    if extra:
        data["train"] = np.concatenate([data["train"], *extra])
    data["train"] = check_images("training set", data["train"], image_size)
    data["heldout"] = check_images("held-out set", data["heldout"], image_size)
    return data
