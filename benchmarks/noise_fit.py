"""Do the proximal presets fit the k-space noise? The discrepancy principle on the peer benchmark's noisy cases.

With noisy k-space ``y = M(F S x + n)`` an estimate that explains the data no better than the truth does has the data
residual ``‖A x̂ − y‖ ≈ ‖M n‖`` (Morozov's discrepancy principle); ``‖A x̂ − y‖ / ‖M n‖ ≪ 1`` means the estimate fits the
noise. For DiffPIR (Zhu et al., CVPR 2023) and DDS (Chung et al., ICLR 2024) this script reports, per slice and as a
mean, that ratio and the error to the ground truth (PSNR, relative error), for the tuned weight and over a grid of
weights (λ for DiffPIR, ρ for DDS; smaller = more weight on the data), with and without DDS's final data-consistency
step, and for reference zero-filled, the ground truth itself (whose ratio is 1 by construction: ``A x − y = −M n``) and
the least-squares real image ``argmin_x ‖A x − y‖`` (CG to convergence): the floor of the ratio, reached by an estimate
that fits as much of the noise as a real image can (with 8 coils the data outnumber the image's unknowns, so the
floor is well above 0: about sqrt(1 − N_image / N_data)).

Cases: exactly the peer benchmark's (``benchmarks/peer_deepinv.py``: the shipped held-out slab, ``load_cases`` with 8
birdcage coils, 1-D random masks with 8 % centre, phase-free, complex Gaussian k-space noise at ``--snr-db``), on
evaluation slices (default 0, 4, 8, 12). The tuned values come from ``tuned_snr30.0.json`` of the peer benchmark
where present (its tuning slices 1 and 15), else from ``tuned_noiseless.json``; nothing is tuned here.

Usage::

    python benchmarks/noise_fit.py                      # SNR 30 and 20 dB, R = 8, 50 NFE (~20 min, 1 thread)
    python benchmarks/noise_fit.py --snr-db 30 --accelerations 8 --slices 0 --diffpir-grid 0.03 --dds-grid 0.01
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from peer_deepinv import CKPT, cases_for, make_solver  # noqa: E402

from monai_ddpm_recon.metrics import psnr  # noqa: E402
from monai_ddpm_recon.solvers import ZeroFilledSolver  # noqa: E402
from monai_ddpm_recon.solvers.diffusion import conjugate_gradient  # noqa: E402
from monai_ddpm_recon.workflows import load_prior, stack_cases  # noqa: E402

TUNED = ROOT / "benchmarks/results/peer_deepinv"


def tuned_values() -> dict[str, tuple[float, str]]:
    """``method -> (value, source file)``: the SNR-30 tuning where it has the method, else the noiseless one."""
    out = {}
    for name in ("tuned_noiseless.json", "tuned_snr30.0.json"):  # later files win
        path = TUNED / name
        if path.is_file():
            out.update({k: (float(v), name) for k, v in json.loads(path.read_text()).items()})
    return out


def residual_rows(images: torch.Tensor, kspace: torch.Tensor, operator, noise_norm: torch.Tensor, cases) -> list[dict]:
    """Per slice: ``‖A x̂ − y‖ / ‖M n‖``, ``‖A x̂ − y‖ / ‖y‖``, PSNR and the relative error of the magnitude."""
    res = (operator.forward(images) - kspace).flatten(1).norm(dim=1)
    rows = []
    for i, c in enumerate(cases):
        target = np.abs(c.target.numpy()).astype(np.float64)
        mag = images[i, 0].abs().double().numpy()
        rows.append({
            "case": c.name,
            "residual_over_noise": float(res[i] / noise_norm[i]),
            "residual_over_data": float(res[i] / kspace[i].norm()),
            "psnr": float(psnr(target, mag)),
            "rel_error": float(np.linalg.norm(mag - target) / np.linalg.norm(target)),
        })
    return rows


def least_squares_real(kspace: torch.Tensor, operator, iterations: int = 300) -> torch.Tensor:
    """``argmin_x ‖A x − y‖`` over real images (the benchmark's images are phase-free and the presets run with
    ``phase_mode="none"``), by CG on ``Re(Aᴴ A) x = Re(Aᴴ y)``."""
    def normal(x: torch.Tensor) -> torch.Tensor:
        return operator.normal(x.to(kspace.dtype)).real

    rhs = operator.adjoint(kspace).real
    return conjugate_gradient(normal, rhs, None, iterations, 1e-10).x.to(kspace.dtype)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    p.add_argument("--snr-db", nargs="+", type=float, default=[30.0, 20.0])
    p.add_argument("--accelerations", nargs="+", type=float, default=[8])
    p.add_argument("--slices", nargs="+", type=int, default=[0, 4, 8, 12])
    p.add_argument("--nfe", type=int, default=50)
    p.add_argument("--diffpir-grid", nargs="+", type=float, default=[0.001, 0.01, 0.03, 0.1, 1.0])
    p.add_argument("--dds-grid", nargs="+", type=float, default=[0.001, 0.01, 0.1, 1.0])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    prior = load_prior(CKPT, torch.device("cpu"))
    tuned = tuned_values()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    runs = [("ours_diffpir", v, False) for v in sorted(set(args.diffpir_grid) | {tuned["ours_diffpir"][0]})]
    runs += [("ours_dds", v, False) for v in sorted(set(args.dds_grid) | {tuned["ours_dds"][0]})]
    runs += [("ours_dds", tuned["ours_dds"][0], True)]  # the preset's default: final data consistency on
    rows = []
    for snr in args.snr_db:
        for R in args.accelerations:
            spec = argparse.Namespace(smooth_phase=False, snr_db=snr)
            cases = cases_for(args.slices, R, 8, spec)
            clean = cases_for(args.slices, R, 8, argparse.Namespace(smooth_phase=False, snr_db=None))
            kspace, op = stack_cases(cases, torch.device("cpu"))
            clean_k, _ = stack_cases(clean, torch.device("cpu"))
            if not torch.equal(torch.stack([c.mask for c in cases]), torch.stack([c.mask for c in clean])):
                raise RuntimeError("noisy and noiseless cases have different masks")
            noise_norm = (kspace - clean_k).flatten(1).norm(dim=1)  # ‖M n‖ per slice (the masks zero the rest)
            truth = torch.stack([c.target for c in cases])[:, None].to(kspace.dtype)
            refs = [("ground_truth", None, False, truth), ("zero_filled", None, False, ZeroFilledSolver()(kspace, op)),
                    ("least_squares", None, False, least_squares_real(kspace, op))]
            for method, value, _, img in refs:
                for r in residual_rows(img, kspace, op, noise_norm, cases):
                    rows.append({"snr_db": snr, "R": R, "method": method, "value": value, "final_dc": "",
                                 "tuned": "", "s_per_slice": 0.0, **r})
            for method, value, fdc in runs:
                solver = make_solver(method, prior, args.nfe, value, phase="none")
                if method == "ours_dds":
                    solver.final_data_consistency = fdc
                t0 = time.perf_counter()
                img = solver(kspace, op)
                dt = (time.perf_counter() - t0) / len(cases)
                is_tuned = value == tuned[method][0]
                for r in residual_rows(img, kspace, op, noise_norm, cases):
                    rows.append({"snr_db": snr, "R": R, "method": method, "value": value,
                                 "final_dc": fdc, "tuned": tuned[method][1] if is_tuned else "",
                                 "s_per_slice": round(dt, 2), **r})
                last = [r for r in rows if r["method"] == method and r["value"] == value and r["final_dc"] == fdc
                        and r["snr_db"] == snr and r["R"] == R]
                print(f"SNR {snr:g} R {R:g} {method} {value:g} fdc={fdc}: residual/noise "
                      f"{np.mean([r['residual_over_noise'] for r in last]):.3f}, "
                      f"PSNR {np.mean([r['psnr'] for r in last]):.2f}", flush=True)
            with open(out / "noise_fit.csv", "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    write_markdown(rows, out / "noise_fit.md", args, tuned)


def write_markdown(rows: list[dict], path: Path, args, tuned) -> None:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["snr_db"], r["R"], r["method"], r["value"], r["final_dc"]), []).append(r)
    lines = [
        "# Do the proximal presets fit the k-space noise? (`benchmarks/noise_fit.py`)", "",
        f"Peer-benchmark cases (8 coils, phase-free, slices {args.slices}), {args.nfe} NFE, seed 0, 1 thread. "
        "ratio = ‖A x̂ − y‖ / ‖M n‖ (mean over slices, min–max in brackets): ≈ 1 explains the data as well as the truth "
        "does; ≪ 1 fits the noise. PSNR of the magnitude (dB, mean) and relative error ‖|x̂| − |x|‖/‖x‖. Tuned values: "
        + ", ".join(f"{k} {v:g} ({src})" for k, (v, src) in tuned.items() if k in ("ours_diffpir", "ours_dds")) + ".",
        "",
        "| SNR (dB) | R | method | value (λ or ρ) | final DC | ratio | PSNR | rel. error | s / slice |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (snr, R, method, value, fdc), rs in groups.items():
        ratio = [r["residual_over_noise"] for r in rs]
        mark = " (tuned)" if rs[0]["tuned"] else ""
        val = "" if value is None else f"{value:g}{mark}"
        lines.append(
            f"| {snr:g} | {R:g} | {method} | {val} | {'on' if fdc is True else ('off' if fdc is False else '')} "
            f"| {np.mean(ratio):.3f} [{min(ratio):.3f}–{max(ratio):.3f}] | {np.mean([r['psnr'] for r in rs]):.2f} "
            f"| {np.mean([r['rel_error'] for r in rs]):.3f} | {rs[0]['s_per_slice']} |")
    path.write_text("\n".join(lines) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
