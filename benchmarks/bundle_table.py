"""Compact README table from the bundle benchmark (``evaluate.json``'s ``benchmark.csv``).

One row per solver, one column per (coils, R): ``PSNR ± std / SSIM``, plus NFE and seconds per slice.

Usage::

    python -m monai.bundle run --config_file bundles/ddpm_recon/configs/evaluate.json
    python benchmarks/bundle_table.py bundles/ddpm_recon/output/benchmark/benchmark.csv [--figure out.png]
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path


def compact_table(rows: list[dict]) -> str:
    settings = sorted({(int(r["coils"]), float(r["R"])) for r in rows}, key=lambda s: (-s[0], s[1]))
    solvers = list(dict.fromkeys(r["solver"] for r in rows))
    cell: dict[tuple, dict] = {(r["solver"], int(r["coils"]), float(r["R"])): r for r in rows}
    best = defaultdict(float)
    for (name, coils, acc), r in cell.items():
        best[(coils, acc)] = max(best[(coils, acc)], float(r["psnr_mean"]))
    head = ["solver"] + [f"{'1 coil' if c == 1 else f'{c} coils'}, R={a:g}" for c, a in settings] + ["NFE", "s / slice"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in solvers:
        cells = [name]
        secs, nfe = [], set()
        for c, a in settings:
            r = cell.get((name, c, a))
            if r is None:
                cells.append("–")
                continue
            p = float(r["psnr_mean"])
            text = f"{p:.2f} ± {float(r['psnr_std']):.2f} / {float(r['ssim_mean']):.3f}"
            cells.append(f"**{text}**" if abs(p - best[(c, a)]) < 1e-9 else text)
            secs.append(float(r["s_per_slice"]))
            nfe.add(int(float(r["nfe"])))
        cells += ["/".join(str(n) for n in sorted(nfe)), f"{min(secs):.2f}–{max(secs):.2f}" if secs else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("csv", type=Path)
    p.add_argument("--figure", type=Path, default=None, help="also (re)draw PSNR vs acceleration to this PNG")
    args = p.parse_args(argv)
    with open(args.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"{args.csv}: no rows")
    print("PSNR (dB, mean ± std over slices) / SSIM; best PSNR per column in bold.\n")
    print(compact_table(rows))
    if args.figure is not None:
        from monai_ddpm_recon.io import save_psnr_vs_acceleration
        from monai_ddpm_recon.workflows.evaluate import psnr_curves

        save_psnr_vs_acceleration(psnr_curves(sorted(rows, key=lambda r: -int(r["coils"]))), args.figure)


if __name__ == "__main__":
    main()
