"""Score-based samplers (score SDE / SBIM: Song et al., ICLR 2021; MRI: Chung & Ye, Med. Image Anal. 2022; annealed
Langevin: Jalal et al., NeurIPS 2021) next to loss guidance (Peer 2023) at equal network evaluations (NFE).

Rows: zero-filled; guided annealed Langevin (L levels × M steps); guided SBIM without corrector (N steps); guided SBIM
with an M-step Langevin corrector; loss guidance (DDIM/DDPM steps) — each diffusion method given about ``--nfe``
network evaluations — at accelerations R = 4, 8, 12. Metrics: PSNR / SSIM of the magnitude against the ground truth
(``monai_ddpm_recon.metrics``), NFE and wall time per slice.

Data:
  * ``--prior ddpm`` (default): the bundle's held-out slices (``bundles/ddpm_recon/data/colin27_heldout_axial_64.npy``, or the training
    run's copy under ``bundles/ddpm_recon/runs/data/``) simulated with birdcage coils and a smooth phase by the bundle's
    case pipeline (:func:`monai_ddpm_recon.workflows.cases.load_cases`), reconstructed with the shipped prior
    ``bundles/ddpm_recon/models/model.pt``.
  * ``--prior gaussian``: a smoke run without a trained network: images drawn from the analytic
    :class:`~monai_ddpm_recon.priors.gaussian.GaussianPrior` (real, ``--image-size``), so every sampler uses the exact
    score.

Writes ``benchmarks/results/score_based[_<tag>].md`` and ``.csv`` (never overwrites unless ``--overwrite``).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/score_based.py --prior gaussian --slices 2 --nfe 60      # smoke (~1 min CPU)
    python benchmarks/score_based.py --device cuda --slices 16 --nfe 100                          # the real run
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from monai_ddpm_recon.operators import MaskedFourier, SenseOperator, birdcage_maps, make_mask  # noqa: E402
from monai_ddpm_recon.operators.masks import effective_acceleration  # noqa: E402
from monai_ddpm_recon.solvers.score_based import AnnealedLangevinSolver, SBIMSolver  # noqa: E402
from monai_ddpm_recon.workflows import Case, CaseSpec, load_cases, load_prior, run_evaluator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
BUNDLE = ROOT / "bundles" / "ddpm_recon"
DATA_CANDIDATES = [BUNDLE / "data" / "colin27_heldout_axial_64.npy", BUNDLE / "runs" / "data" / "heldout.npy"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prior", choices=["ddpm", "gaussian"], default="ddpm")
    p.add_argument("--checkpoint", default=str(BUNDLE / "models" / "model.pt"))
    p.add_argument("--data", default=None, help="held-out slices .npy (default: the bundle's)")
    p.add_argument("--slices", type=int, default=8, help="number of held-out slices (spread over the slab)")
    p.add_argument("--accelerations", type=float, nargs="+", default=[4, 8, 12])
    p.add_argument("--coils", type=int, default=8)
    p.add_argument("--image-size", type=int, default=32, help="image size of the --prior gaussian smoke run")
    p.add_argument("--nfe", type=int, default=100, help="network evaluations per method (approximately equal)")
    p.add_argument("--langevin-steps", type=int, default=3, help="M of annealed Langevin (L = nfe // M levels)")
    p.add_argument("--corrector-steps", type=int, default=2, help="M of SBIM's Langevin corrector")
    p.add_argument("--epsilon", type=float, default=1e-4)
    p.add_argument("--sigma-y", type=float, default=0.01, help="k-space noise std in normalised units")
    p.add_argument("--data-gradient", default="annealed", choices=["annealed", "likelihood", "normalized"])
    p.add_argument("--loss-guidance", type=float, default=None,
                   help="LossGuidanceSolver's g (default: the mean number of sampled k-space locations, ΣM)")
    p.add_argument("--methods", nargs="+", default=["zero_filled", "langevin", "sbim", "sbim_corrector", "loss_guidance"],
                   help="also: sbim_slides (SBIM + corrector with the slides' literal predictor factor)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default=None, help="suffix of the output files")
    p.add_argument("--overwrite", action="store_true")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------------------
def ddpm_cases(args, accel: float):
    """The bundle's cases (:func:`~monai_ddpm_recon.workflows.load_cases`) on ``--slices`` held-out slices."""
    data = Path(args.data) if args.data else next((p for p in DATA_CANDIDATES if p.is_file()), None)
    if data is None or not data.is_file():
        raise FileNotFoundError(f"held-out slices not found (tried {[str(p) for p in DATA_CANDIDATES]}); pass --data.")
    n = np.load(data, mmap_mode="r").shape[0]
    k = min(args.slices, n)
    idx = sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(k)})
    size = int(np.load(data, mmap_mode="r").shape[-1])
    spec = CaseSpec(example_data=str(data), slices=idx, image_size=size, num_coils=args.coils, acceleration=accel)
    return load_cases(spec, seed=args.seed)


def gaussian_cases(args, prior, accel: float):
    """Real images from the Gaussian prior (physical image = (x + 1)/2), birdcage coils, one random mask per slice."""
    size = args.image_size
    g = torch.Generator().manual_seed(args.seed)
    maps = birdcage_maps(args.coils, (size, size)).reshape(args.coils, size, size) if args.coils > 1 else None
    cases = []
    for i in range(args.slices):
        target = ((prior.sample(1, g, torch.float32)[0, 0] + 1) / 2).to(torch.complex64)
        mask = make_mask("random", (size, size), accel, center_fraction=0.08, seed=args.seed * 10_000 + i)
        op = SenseOperator(maps[None], mask) if maps is not None else MaskedFourier(mask, (size, size))
        kspace = op.forward(target[None, None])[0]
        cases.append(Case(f"gaussian_{i:03d}", kspace, mask.reshape(1, *mask.shape[-2:]), maps, target,
                          effective_acceleration(mask, (size, size))))
    return cases


# ---------------------------------------------------------------------------------------------------------------
# methods at equal NFE
# ---------------------------------------------------------------------------------------------------------------
def build_methods(args, prior) -> dict:
    nfe, m_l, m_c = args.nfe, args.langevin_steps, args.corrector_steps
    common = dict(sigma_y=args.sigma_y, data_gradient=args.data_gradient, epsilon=args.epsilon, seed=args.seed,
                  progress=False)
    if args.prior == "gaussian":
        common["phase_mode"] = "none"
    methods = {}
    for name in args.methods:
        if name == "zero_filled":
            from monai_ddpm_recon.solvers.baselines import ZeroFilledSolver

            methods[name] = (ZeroFilledSolver(), "adjoint (SENSE-combined)")
        elif name == "langevin":
            levels = max(1, nfe // m_l)
            methods[name] = (AnnealedLangevinSolver(prior, num_levels=levels, steps_per_level=m_l, **common),
                             f"L={levels} geometric levels x M={m_l}")
        elif name == "sbim":
            methods[name] = (SBIMSolver(prior, num_steps=nfe, corrector_steps=0, **common), f"N={nfe} steps")
        elif name == "sbim_corrector":
            steps = max(2, (nfe - 1) // (1 + m_c) + 1)
            methods[name] = (SBIMSolver(prior, num_steps=steps, corrector_steps=m_c, **common),
                             f"{steps} levels, corrector M={m_c}")
        elif name == "sbim_slides":  # the slides' literal predictor factor σ_t/sqrt(1+σ_t²), with corrector
            steps = max(2, (nfe - 1) // (1 + m_c) + 1)
            methods[name] = (SBIMSolver(prior, num_steps=steps, corrector_steps=m_c, predictor="slides", **common),
                             f"{steps} levels, corrector M={m_c}, slides' factor")
        elif name == "loss_guidance":
            try:
                from monai_ddpm_recon.solvers.loss_guidance import LossGuidanceSolver
            except ImportError as err:  # another helper's module; skip the row if it is not there
                print(f"skipping loss_guidance: {err}", file=sys.stderr)
                continue
            kw = dict(num_steps=nfe, seed=args.seed, step_rule="absolute")  # g in absolute units, as this script reports it
            if args.loss_guidance is not None:
                kw["guidance"] = args.loss_guidance
            if args.prior == "gaussian":
                kw.update(phase_mode="none", clip_x0=False)
            solver = LossGuidanceSolver(prior, **kw)
            methods[name] = (solver, f"{nfe} steps")
        else:
            raise ValueError(f"unknown method {name!r}")
    return methods


def evaluate(solver, cases, args, device) -> dict:
    """Mean PSNR / SSIM, NFE and seconds per slice of ``solver`` over ``cases`` (the workflows' runner)."""
    res = run_evaluator(solver, cases, device, args.batch_size)
    return {"psnr": float(np.mean(res["psnr"])), "ssim": float(np.mean(res["ssim"])), "nfe": res["nfe"],
            "time_s": res["seconds"], "n": len(cases)}


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.prior == "gaussian":
        from monai_ddpm_recon.priors.gaussian import GaussianPrior

        prior = GaussianPrior((args.image_size, args.image_size), std=0.3)
    else:
        prior = load_prior(args.checkpoint, device)
    tag = args.tag or ("gaussian" if args.prior == "gaussian" else None)
    stem = "score_based" + (f"_{tag}" if tag else "")
    md_path, csv_path = RESULTS / f"{stem}.md", RESULTS / f"{stem}.csv"
    if not args.overwrite and (md_path.exists() or csv_path.exists()):
        raise FileExistsError(f"{md_path} or {csv_path} exists; pass --overwrite or --tag.")
    methods = build_methods(args, prior)
    rows = []
    for accel in args.accelerations:
        cases = gaussian_cases(args, prior, accel) if args.prior == "gaussian" else ddpm_cases(args, accel)
        r_eff = sum(c.acceleration for c in cases) / len(cases)
        for name, (solver, desc) in methods.items():
            if name == "loss_guidance":
                if args.loss_guidance is None:  # g = ΣM: half of the one-step-consistent 2ΣM, well inside < 4ΣM
                    solver.guidance = sum(float(c.mask.expand(1, *c.kspace.shape[-2:]).sum()) for c in cases) / len(cases)
                desc = f"{args.nfe} steps, g={solver.guidance:.4g}"
            try:
                res = evaluate(solver, cases, args, device)
            except (FloatingPointError, RuntimeError, ValueError) as err:
                print(f"R={accel:g} {name}: FAILED {err}", file=sys.stderr)
                res = {"psnr": math.nan, "ssim": math.nan, "nfe": 0, "time_s": math.nan, "n": 0}
            row = {"R": accel, "R_eff": round(r_eff, 2), "method": name, "config": desc, **res}
            rows.append(row)
            print(f"R={accel:g} {name:15s} PSNR {res['psnr']:6.2f} SSIM {res['ssim']:.4f} NFE {res['nfe']:4d} "
                  f"{res['time_s']:.3f} s/slice", flush=True)
    write(rows, args, md_path, csv_path, prior, device)
    return rows


def write(rows, args, md_path: Path, csv_path: Path, prior, device) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    lines = [
        "# Score-based samplers vs loss guidance at equal NFE",
        "",
        f"Command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`",
        "",
        f"Prior: {args.prior} ({'exact analytic score' if args.prior == 'gaussian' else args.checkpoint}), "
        f"image {tuple(prior.image_size)}, {args.coils} coil(s), {rows[0]['n']} slice(s) per R, device {dev}. "
        f"Score samplers: data term `{args.data_gradient}`, σ_y = {args.sigma_y:g} (normalised units), "
        f"ε = {args.epsilon:g}. PSNR/SSIM of the magnitude, data range = target max per slice.",
        "",
        "| R | R_eff | method | config | PSNR (dB) | SSIM | NFE | time / slice (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['R']:g} | {r['R_eff']:.2f} | {r['method']} | {r['config']} | {r['psnr']:.2f} | "
                     f"{r['ssim']:.4f} | {r['nfe']} | {r['time_s']:.3f} |")
    md_path.write_text("\n".join(lines) + "\n")
    print(f"wrote {md_path} and {csv_path}")


if __name__ == "__main__":
    main()
