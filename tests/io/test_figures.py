"""Benchmark figures."""

from __future__ import annotations


def test_psnr_vs_acceleration_flat_and_per_group(tmp_path):
    from PIL import Image

    from monai_ddpm_recon.io import save_psnr_vs_acceleration

    flat = {"tv": [(8, 20.0, 1.0), (4, 25.0, 1.0)], "zero_filled": [(4, 18.0, 0.5), (8, 17.0, 0.5)]}
    save_psnr_vs_acceleration(flat, tmp_path / "flat.png", title="one panel")
    save_psnr_vs_acceleration({"8 coils": flat, "1 coil": {"tv": [(4, 19.0, 1.0)]}}, tmp_path / "two.png")
    one, two = (Image.open(tmp_path / f) for f in ("flat.png", "two.png"))
    assert two.size[0] > one.size[0]  # one panel per group, side by side
