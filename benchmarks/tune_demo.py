"""Tune the demo's DiffPIR weight λ (``diffpir_lambda`` in inference.json) by running the bundle itself.

Each λ of the grid runs ``python -m monai.bundle run --config_file bundles/ddpm_recon/configs/inference.json`` on the
tuning slices (default 1 and 15 of the shipped 1 mm slab; the demo shows slices 0, 4 and 8) with every other setting
as the demo has it (prior, R, coils, smooth phase, NFE), and reads the diffusion solver's PSNR from ``metrics.csv``.
The best mean PSNR is the value to put into inference.json.

Usage::

    python benchmarks/tune_demo.py            # writes benchmarks/results/demo_lambda.md
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "bundles" / "ddpm_recon" / "configs" / "inference.json"


def run_bundle(lam: float, slices: list[int], out: Path, extra: list[str]) -> tuple[float, float]:
    """Mean PSNR / SSIM of the demo's diffusion solver with ``diffpir_lambda = lam`` on ``slices``."""
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIG), "--diffpir_lambda", repr(lam),
           "--slices", str(slices), "--baselines", "[]", "--save_figures", "false", "--save_images", "false",
           "--output_dir", str(out), *extra]
    run = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if run.returncode:
        sys.exit(f"the bundle failed for diffpir_lambda={lam!r}:\n{run.stderr[-3000:]}")
    with open(out / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["solver"] == "diffusion"]
    return float(np.mean([float(r["psnr"]) for r in rows])), float(np.mean([float(r["ssim"]) for r in rows]))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    p.add_argument("--slices", type=int, nargs="+", default=[1, 15])
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "demo_lambda.md"))
    args, extra = p.parse_known_args(argv)  # the rest are bundle overrides, e.g. --num_steps 25
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, lam in enumerate(args.grid):
            t0 = time.perf_counter()
            psnr, ssim = run_bundle(lam, args.slices, Path(tmp) / f"lam{i}", extra)
            rows.append((lam, psnr, ssim))
            print(f"λ {lam:g}: {psnr:.2f} dB / {ssim:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    best = max(rows, key=lambda r: r[1])
    command = " ".join(["python benchmarks/tune_demo.py", *(sys.argv[1:] if argv is None else argv)])
    lines = ["# The demo's DiffPIR λ (inference.json `diffpir_lambda`)", "",
             f"Command: `{command}` — the bundle's inference.json on slices {args.slices} of the shipped slab (not shown by the demo), diffusion solver, "
             "mean over the slices.", "", "| λ | PSNR dB | SSIM |", "|---|---|---|",
             *(f"| {lam:g} | {ps:.2f} | {ss:.3f} |" for lam, ps, ss in rows), "",
             f"Best: **λ = {best[0]:g}** ({best[1]:.2f} dB).", ""]
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {os.path.relpath(out, ROOT)}")


if __name__ == "__main__":
    main()
