"""Tune the TV weight λ the bundle uses (``tv_lambda`` in inference.json / evaluate.json) at the bundle's image size.

The CS benchmark (``cs_baselines.py``) tunes λ at 128²/256²; the bundle reconstructs 64² slices, where the best λ
differs. This script runs :func:`monai_ddpm_recon.solvers.tune_lambda` on the bundle's own case pipeline (held-out
Colin27 slices, birdcage coils, smooth phase, 1D random masks) for every coil setting and acceleration of the
benchmark, and reports the mean PSNR per λ plus the single λ with the smallest worst-case loss against the per-setting
best. Tuning uses held-out slices with masks of a different seed than the benchmark (``--seed 1``): this favours TV,
never the diffusion solvers.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/tune_tv.py            # writes benchmarks/results/tv_lambda_64.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from monai_ddpm_recon.solvers import TotalVariationSolver, tune_lambda
from monai_ddpm_recon.workflows.cases import CaseSpec, load_cases
from monai_ddpm_recon.workflows.reconstruct import stack_cases

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bundles" / "ddpm_recon" / "data" / "colin27_heldout_axial_64.npy"
RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slices", type=int, nargs="+", default=[1, 5, 9, 13])
    p.add_argument("--accelerations", type=float, nargs="+", default=[4, 8, 12])
    p.add_argument("--coils", type=int, nargs="+", default=[8, 1])
    p.add_argument("--grid", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2])
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--seed", type=int, default=1, help="mask seed (the benchmark uses 0)")
    p.add_argument("--output", default=str(RESULTS / "tv_lambda_64.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    rows = []
    for coils in args.coils:
        for acc in args.accelerations:
            spec = CaseSpec(example_data=str(DATA), slices=args.slices, image_size=64, num_coils=coils,
                            acceleration=acc, mask_type="random", center_fraction=0.08, smooth_phase=True)
            cases = load_cases(spec, seed=args.seed)
            kspace, operator = stack_cases(cases, torch.device("cpu"))
            target = torch.stack([c.target for c in cases])[:, None]
            t0 = time.perf_counter()
            res = tune_lambda(lambda lam: TotalVariationSolver(lam=lam, max_iter=args.max_iter), kspace, operator,
                              target, args.grid)
            rows.append((coils, acc, res))
            print(f"coils={coils} R={acc:g}: best λ={res.best_lambda:g} "
                  f"({', '.join(f'{m:.2f}' for m in res.mean_psnr)}) in {time.perf_counter() - t0:.1f} s", flush=True)

    grid = rows[0][2].grid
    table = np.array([r[2].mean_psnr for r in rows])  # (settings, λ)
    loss = table.max(axis=1, keepdims=True) - table
    pick = int(np.argmin(loss.max(axis=0)))
    lines = [
        "# TV λ at the bundle's 64² size",
        "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/tune_tv.py` — held-out slices {args.slices}, mask seed "
        f"{args.seed}, TV {args.max_iter} PDHG iterations, mean PSNR (dB) over the slices.",
        "",
        "| coils | R | " + " | ".join(f"λ={g:g}" for g in grid) + " | best λ |",
        "|---|---|" + "---|" * len(grid) + "---|",
    ]
    for (coils, acc, res) in rows:
        lines.append(f"| {coils} | {acc:g} | " + " | ".join(f"{m:.2f}" for m in res.mean_psnr)
                     + f" | {res.best_lambda:g} |")
    lines += [
        "",
        f"One λ for all settings (smallest worst-case loss against each setting's best): **λ = {grid[pick]:g}**, "
        f"worst loss {loss[:, pick].max():.2f} dB. The bundle's `tv_lambda` is set to this value.",
        "",
    ]
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
