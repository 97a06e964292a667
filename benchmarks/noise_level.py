"""DiffPIR's data weight from the measured noise level: does a λ tuned at one SNR transfer to another?

DiffPIR's proximal weight is ``ρ_t = λ σ_y² / σ̄_t²`` (Zhu et al., CVPR 2023). With ``σ_y`` fixed (0.01, the preset
default) λ alone must follow the noise, so a λ tuned at 30 dB is too small at 20 dB. With ``sigma_y="auto"`` σ_y is
the noise std estimated from each slice's own k-space (:func:`monai_ddpm_recon.operators.noise.estimate_noise_std`).

Two parts, both on the bundle's 64² held-out slab (peer-benchmark cases: 8 coils, phase-free, 1-D random masks):

- ``estimate``: estimated / true noise std per SNR (true σ from the simulation's rule
  ``σ² = mean |F(S x)|² / 10^(SNR/10)``), R = 8, all 16 slices, and at native 1 mm (217 x 181) on the same slab.
- ``transfer``: λ tuned at ``--tune-snr`` on the tuning slices (1, 15; R = 8; 50 NFE) for ``sigma_y`` fixed and
  ``"auto"``, then evaluated on the evaluation slices (0, 2, …, 14) at every ``--eval-snr`` with that λ, next to the λ
  re-tuned at each SNR (what an oracle tuning would give).

Usage::

    python benchmarks/noise_level.py --out benchmarks/results            # ~10 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monai_ddpm_recon.operators import SenseOperator, fft2c  # noqa: E402
from monai_ddpm_recon.operators.noise import estimate_noise_std  # noqa: E402
from monai_ddpm_recon.solvers import DiffPIRSolver  # noqa: E402
from monai_ddpm_recon.solvers.mapping import PriorMapping  # noqa: E402
from monai_ddpm_recon.workflows import CaseSpec, load_cases, load_prior, score_cases  # noqa: E402

BUNDLE = ROOT / "bundles/ddpm_recon"
DATA = {"64": BUNDLE / "data/colin27_heldout_axial_64.npy", "1mm": BUNDLE / "data/colin27_heldout_axial_1mm.npy"}
CKPT = BUNDLE / "models/model.pt"
GRID = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]


def cases(data: str, slices, snr, R: float = 8.0):
    spec = CaseSpec(example_data=str(DATA[data]), slices=list(slices), num_coils=8, acceleration=R, smooth_phase=False,
                    snr_db=snr, image_size=None)  # each slab at its own matrix
    return load_cases(spec, seed=0)


def true_std(case, snr: float) -> float:
    """The simulation's noise std: ``σ² = mean |F(S x)|² / 10^(SNR/10)`` over the fully sampled coil k-space."""
    return math.sqrt(float((fft2c(case.maps * case.target).abs() ** 2).mean()) / 10 ** (snr / 10))


def part_estimate(snrs) -> list[dict]:
    rows = []
    for data, slices in (("64", range(16)), ("1mm", range(16))):
        for snr in snrs:
            ratios, normalised = [], []
            for c in cases(data, slices, snr):
                est = float(estimate_noise_std(c.kspace[None], c.mask[None])[0])
                if snr is not None:
                    ratios.append(est / true_std(c, snr))
                op = SenseOperator(c.maps[None], c.mask[None])
                normalised.append(est / float(PriorMapping.from_kspace(c.kspace[None], op, 1, "none").scale))
            row = {"data": data, "snr_db": snr, "n": len(normalised),
                   "ratio_mean": sum(ratios) / len(ratios) if ratios else None,
                   "ratio_min": min(ratios) if ratios else None, "ratio_max": max(ratios) if ratios else None,
                   "sigma_y_auto_mean": sum(normalised) / len(normalised)}
            rows.append(row)
            print(row, flush=True)
    return rows


def solver(prior, lam: float, sigma_y, t_start, nfe: int = 50) -> DiffPIRSolver:
    return DiffPIRSolver(prior, lam=lam, sigma_y=sigma_y, num_steps=nfe, seed=0, phase_mode="none", t_start=t_start)


def tune(prior, sigma_y, snr, t_start) -> tuple[float, list]:
    tc = cases("64", [1, 15], snr)
    grid = [(lam, score_cases(solver(prior, lam, sigma_y, t_start), tc, torch.device("cpu"), 2)["psnr"]) for lam in GRID]
    return max(grid, key=lambda r: r[1])[0], grid


def part_transfer(prior, tune_snr: float, eval_snrs, t_start) -> dict:
    out = {"tune_snr_db": tune_snr, "t_start": t_start, "grid": GRID, "rows": [], "tuning": {}}
    for sigma_y in (0.01, "auto"):
        lam, grid = tune(prior, sigma_y, tune_snr, t_start)
        out["tuning"][f"{sigma_y}@{tune_snr:g}"] = grid
        print(f"sigma_y={sigma_y}: λ tuned at {tune_snr} dB = {lam} ({grid})", flush=True)
        for snr in eval_snrs:
            own, own_grid = (lam, grid) if snr == tune_snr else tune(prior, sigma_y, snr, t_start)
            out["tuning"].setdefault(f"{sigma_y}@{snr:g}", own_grid)
            ec = cases("64", range(0, 16, 2), snr)
            for label, value in (("transferred", lam), ("re-tuned", own)):
                if label == "re-tuned" and own == lam:
                    continue
                r = score_cases(solver(prior, value, sigma_y, t_start), ec, torch.device("cpu"), 8)
                row = {"sigma_y": str(sigma_y), "eval_snr_db": snr, "lam": value, "lam_from": label,
                       "psnr": r["psnr"], "ssim": r["ssim"], "s_per_slice": r["s_per_slice"]}
                out["rows"].append(row)
                print(row, flush=True)
    return out


def write_markdown(path: Path, est: list[dict], tr: dict) -> None:
    lines = ["# DiffPIR's data weight from the measured noise level (`benchmarks/noise_level.py`)", "",
             "## Noise-level estimate (8 coils, R = 8, 16 held-out slices)", "",
             "| data | SNR (dB) | estimated / true σ: mean [min–max] | σ_y auto (normalised), mean |", "|---|---|---|---|"]
    for r in est:
        ratio = "—" if r["ratio_mean"] is None else f"{r['ratio_mean']:.2f} [{r['ratio_min']:.2f}–{r['ratio_max']:.2f}]"
        lines.append(f"| {r['data']} | {r['snr_db'] if r['snr_db'] is not None else 'noiseless'} | {ratio} | "
                     f"{r['sigma_y_auto_mean']:.4f} |")
    lines += ["", f"## λ tuned at {tr['tune_snr_db']:g} dB, evaluated at other SNRs (DiffPIR, 64², 8 coils, R = 8, "
              f"50 NFE, t_start {tr['t_start']}, 8 evaluation slices)", "",
              "| σ_y | SNR (dB) | λ | λ from | PSNR | SSIM | s/slice |", "|---|---|---|---|---|---|---|"]
    for r in tr["rows"]:
        lines.append(f"| {r['sigma_y']} | {r['eval_snr_db']:g} | {r['lam']:g} | {r['lam_from']} | {r['psnr']:.2f} | "
                     f"{r['ssim']:.3f} | {r['s_per_slice']:.1f} |")
    grids = {k: [[lam, round(ps, 2)] for lam, ps in v] for k, v in tr["tuning"].items()}
    lines += ["", "Tuning grids (σ_y@SNR: [λ, PSNR dB] on tuning slices 1 and 15): " + json.dumps(grids), ""]
    path.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    ap.add_argument("--tune-snr", type=float, default=30.0)
    ap.add_argument("--eval-snr", type=float, nargs="+", default=[30.0, 20.0, 10.0])
    ap.add_argument("--t-start", type=lambda v: None if v == "none" else int(v), default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--part", choices=["all", "estimate"], default="all",
                    help="'estimate': re-run only the estimate, keeping the transfer rows of noise_level.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    out = Path(args.out)
    est = part_estimate([None, 40.0, 30.0, 20.0, 10.0])
    if args.part == "estimate":
        tr = json.loads((out / "noise_level.json").read_text())["transfer"]
    else:
        tr = part_transfer(load_prior(CKPT, torch.device("cpu")), args.tune_snr, args.eval_snr, args.t_start)
    (out / "noise_level.json").write_text(json.dumps({"estimate": est, "transfer": tr}, indent=1))
    write_markdown(out / "noise_level.md", est, tr)
    print(f"wrote {out / 'noise_level.md'} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
