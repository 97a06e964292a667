"""Build the demo prior's training set and the held-out example slab from Colin27 (+ optional MNI152).

Usage::

    python -m monai_ddpm_recon.data.prepare --output bundles/ddpm_recon/runs/data --image-size 64

Writes ``train.npy`` (float32 ``(N, 1, S, S)`` magnitude in ``[0, 1]``), ``heldout.npy`` (the held-out Colin27
slab, same layout) and ``split.json`` (which slices went where). Never overwrites an existing file unless
``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from .slices import COLIN27_PATH, SliceSplit, load_colin27, load_mni152, volume_slices

COLIN27_MIN_Z = 20  # below this the Colin27 axial slices show the face and neck, not the brain


def build_dataset(
    image_size: int = 64,
    colin27_path: str = COLIN27_PATH,
    use_mni152: bool = True,
    split: SliceSplit | None = None,
    min_foreground: float = 0.15,
) -> dict:
    """Training slices (Colin27 outside the held-out slab and its gap, plus MNI152) and the held-out slab.

    Returns:
        dict with ``train`` float32 ``(N, 1, S, S)``, ``heldout`` float32 ``(M, 1, S, S)`` (both in ``[0, 1]``)
        and ``split`` (json-serialisable provenance).
    """
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}.")
    split = split or SliceSplit()
    colin = load_colin27(colin27_path)
    if split.stop > colin.shape[2]:
        raise ValueError(f"held-out slab [{split.start}, {split.stop}) lies outside the volume depth {colin.shape[2]}.")
    train_c, z_c = volume_slices(
        colin, image_size, min_foreground, exclude=lambda z: z < COLIN27_MIN_Z or split.is_excluded(z)
    )
    held, z_h = volume_slices(colin, image_size, min_foreground=0.0, exclude=lambda z: not split.is_heldout(z))
    parts, info = [train_c], {"colin27": {"path": str(colin27_path), "z": z_c.tolist()}}
    if use_mni152:
        train_m, z_m = volume_slices(load_mni152(), image_size, min_foreground)
        parts.append(train_m)
        info["mni152"] = {"source": "nilearn.datasets.load_mni152_template(resolution=1)", "z": z_m.tolist()}
    train = np.concatenate(parts)[:, None]
    if len(train) == 0:
        raise ValueError("the training set is empty: no slice passed the foreground threshold.")
    split_info = {
        "image_size": image_size,
        "orientation": "axial slices only, RAS volume, anterior at the top",
        "normalisation": "per slice: pad to square, antialiased bilinear resize, divide by slice max -> [0, 1]; "
        "the prior sees 2*x-1 in [-1, 1]",
        "heldout": {"volume": "colin27", "z_start": split.start, "z_stop": split.stop, "z": z_h.tolist()},
        "excluded_gap": split.gap,
        "colin27_min_z": COLIN27_MIN_Z,
        "min_foreground": min_foreground,
        "train": info,
        "num_train": int(len(train)),
        "num_heldout": int(len(held)),
    }
    return {"train": train.astype(np.float32), "heldout": held[:, None].astype(np.float32), "split": split_info}


def _write(path: str, save, overwrite: bool) -> None:
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it.")
    save(path)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--colin27", default=COLIN27_PATH, help="path of Colin27 ch2.nii.gz (Debian package mricron-data)")
    p.add_argument("--no-mni152", action="store_true", help="train on Colin27 only")
    p.add_argument("--heldout-start", type=int, default=SliceSplit.start)
    p.add_argument("--heldout-stop", type=int, default=SliceSplit.stop)
    p.add_argument("--gap", type=int, default=SliceSplit.gap)
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    ds = build_dataset(a.image_size, a.colin27, not a.no_mni152, SliceSplit(a.heldout_start, a.heldout_stop, a.gap))
    os.makedirs(a.output, exist_ok=True)
    _write(os.path.join(a.output, "train.npy"), lambda f: np.save(f, ds["train"]), a.overwrite)
    _write(os.path.join(a.output, "heldout.npy"), lambda f: np.save(f, ds["heldout"]), a.overwrite)

    def _json(f):
        with open(f, "w") as fh:
            json.dump(ds["split"], fh, indent=1)

    _write(os.path.join(a.output, "split.json"), _json, a.overwrite)
    print(f"train {ds['train'].shape}, heldout {ds['heldout'].shape} -> {a.output}")
    return ds


if __name__ == "__main__":
    main()
