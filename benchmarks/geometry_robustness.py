"""Does a prior depend on where the head sits in the image? Diffusion solvers on the held-out slab moved and resized.

The held-out slab is Colin27, the subject most of the training slices come from, at the position and scale of
training. A prior can therefore profit from knowing that one head's outline — an advantage a user's own scan does
not give it. This script reconstructs the slab as shipped and after a fixed geometric change (the same for every
slice: zoom and shift, one bilinear resampling by :func:`monai_ddpm_recon.training.affine_resample`), with each given
prior, through the bundle's own ``evaluate.json`` (same masks, coils, phase and solver settings), and tabulates PSNR.

Usage::

    python benchmarks/geometry_robustness.py --checkpoint bundles/ddpm_recon/models/model.pt \\
        --checkpoint <older prior>.pt          # writes benchmarks/results/geometry_robustness.md
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

from monai_ddpm_recon.priors.ddpm import sha256_file
from monai_ddpm_recon.training import affine_resample

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "ddpm_recon"
RESULTS = Path(__file__).resolve().parent / "results"
# name -> (zoom, (shift x, shift y) as a fraction of the side)
GEOMETRIES = {
    "as shipped": (1.0, (0.0, 0.0)),
    "zoom 0.9, shift (+5 %, -5 %)": (0.9, (0.05, -0.05)),
    "zoom 1.15": (1.15, (0.0, 0.0)),
}


def moved_slab(src: Path, dst: Path, zoom: float, shift: tuple[float, float]) -> Path:
    """Write the held-out slab after the geometric change (never over ``src``); each slice re-scaled to max 1."""
    slab = torch.from_numpy(np.load(src))
    out = torch.stack([affine_resample(s[None], 0.0, zoom, shift)[0] for s in slab]).clamp(0, 1)
    out = out / out.flatten(1).amax(1).clamp_min(1e-8)[:, None, None]
    dst.parent.mkdir(parents=True, exist_ok=True)
    np.save(dst, out.numpy().astype(np.float32))
    return dst


def run_evaluate(checkpoint: str, data: Path, out: Path, solvers, accelerations, coils) -> list[dict]:
    from monai.bundle import run

    run(
        config_file=str(BUNDLE / "configs" / "evaluate.json"),
        prior_checkpoint=str(checkpoint),
        example_data=str(data),
        output_dir=str(out),
        solvers=list(solvers),
        accelerations=list(accelerations),
        coil_settings=list(coils),
    )
    with open(out / "benchmark.csv") as f:
        return list(csv.DictReader(f))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", action="append", required=True)
    p.add_argument("--solvers", nargs="+", default=["loss_guidance", "frequency_replacement"])
    p.add_argument("--accelerations", type=float, nargs="+", default=[8])
    p.add_argument("--coils", type=int, nargs="+", default=[8])
    p.add_argument("--work-dir", default=str(BUNDLE / "output" / "geometry"))
    p.add_argument("--out", default=str(RESULTS / "geometry_robustness.md"))
    a = p.parse_args(argv)
    work = Path(a.work_dir)
    src = BUNDLE / "data" / "colin27_heldout_axial_64.npy"
    rows = []
    t0 = time.time()
    for g, (zoom, shift) in enumerate(GEOMETRIES.values()):
        data = src if zoom == 1 and shift == (0.0, 0.0) else moved_slab(src, work / f"slab_{g}.npy", zoom, shift)
        for c, ckpt in enumerate(a.checkpoint):
            for r in run_evaluate(ckpt, data, work / f"g{g}_p{c}", a.solvers, a.accelerations, a.coils):
                rows.append({"geometry": g, "prior": c, **r})
    names = list(GEOMETRIES)
    lines = [
        "# Geometry robustness: held-out slab as shipped vs moved / resized",
        "",
        "`python benchmarks/geometry_robustness.py " + " ".join(f"--checkpoint {c}" for c in a.checkpoint) + "`",
        f" ({time.time() - t0:.0f} s). evaluate.json settings (16 slices, smooth phase, seeded 1D random masks, 100 NFE);",
        "PSNR in dB, mean ± std over slices.",
        "",
        "priors: " + "; ".join(f"p{c} = `{Path(ck).name}` (sha256 {sha256_file(ck)[:12]})" for c, ck in enumerate(a.checkpoint)),
        "",
        "| solver | coils | R | prior | " + " | ".join(names) + " |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    keys = sorted({(r["solver"], r["coils"], r["R"], r["prior"]) for r in rows}, key=lambda k: (k[0], k[1], float(k[2]), k[3]))
    for solver, coils, R, prior in keys:
        cells = []
        for g in range(len(names)):
            hit = [r for r in rows if (r["solver"], r["coils"], r["R"], r["prior"], r["geometry"]) == (solver, coils, R, prior, g)]
            cells.append(f"{float(hit[0]['psnr_mean']):.2f} ± {float(hit[0]['psnr_std']):.2f}" if hit else "")
        lines.append(f"| {solver} | {coils} | {float(R):g} | p{prior} | " + " | ".join(cells) + " |")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
