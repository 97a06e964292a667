"""Our diffusion presets against deepinv's DiffPIR and DPS: the same shipped prior, the same k-space.

Cases: the bundle's held-out Colin27 slab (``bundles/ddpm_recon/data``), built by the bundle's own ``load_cases``
(birdcage coils, 1-D random masks with 8 % centre, phase-free unless ``--smooth-phase``, noiseless unless ``--snr-db``).
Every method is tuned on the tuning slices (default 1 and 15, never evaluated) over its grid at R = 8 (the run's coils),
50 NFE, and evaluated with the chosen value on the evaluation slices (default 0, 2, …, 14).

deepinv runs on our prior through :class:`monai_ddpm_recon.interop.deepinv.PriorDenoiser` and on our operator through
:class:`~monai_ddpm_recon.interop.deepinv.OperatorPhysics`, restricted to real images (the prior is a magnitude prior
and the benchmark images are phase-free), in the units of our solvers' mapping (k-space / scale, so images lie in
[0, 1]); its output is scaled back. NFE = network evaluations per slice.

Usage::

    python benchmarks/peer_deepinv.py --out benchmarks/results/peer_deepinv        # full grid (CPU: ~1 h)
    # a smoke run (one slice each, one grid value, 4 NFE)
    python benchmarks/peer_deepinv.py --nfe 4 --accelerations 8 --tune-slices 1 --eval-slices 0 \
        --methods zero_filled ours_diffpir deepinv_diffpir --grid ours_diffpir 0.001 --grid deepinv_diffpir 0.001 \
        --out /tmp/peer_smoke
    # at native size: the 1 mm slab (217 x 181) with the shipped patch prior, both DiffPIRs over one λ grid
    python benchmarks/peer_deepinv.py --native --nfe 50 --accelerations 4 8 --eval-slices 0 4 8 12 \
        --methods zero_filled ours_diffpir deepinv_diffpir --grid ours_diffpir 1e-4 3e-4 1e-3 3e-3 1e-2 \
        --grid deepinv_diffpir 1e-4 3e-4 1e-3 3e-3 1e-2 --out benchmarks/results/peer_deepinv_native
    # the same with 100 CG iterations per step for ours (re-tuned; rows noiseless_cg100)
    python benchmarks/peer_deepinv.py --native --nfe 50 --accelerations 4 8 --eval-slices 0 4 8 12 \
        --methods ours_diffpir --grid ours_diffpir 1e-4 3e-4 1e-3 3e-3 1e-2 --cg-iterations 100 --tag-suffix _cg100 \
        --out benchmarks/results/peer_deepinv_native
    # re-run a subset with the tuned values of an earlier run, into results_noiseless_new_defaults.csv
    python benchmarks/peer_deepinv.py --methods zero_filled ours_dds --nfe 25 \
        --tuned benchmarks/results/peer_deepinv/tuned_noiseless.json --tag-suffix _new_defaults

Every run also writes ``per_slice_<tag>.csv``: PSNR, zero-filled PSNR and their difference per slice.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monai_ddpm_recon.solvers import (  # noqa: E402
    DecomposedDiffusionSolver,
    DiffPIRSolver,
    LossGuidanceSolver,
    TotalVariationSolver,
    ZeroFilledSolver,
)
from monai_ddpm_recon.solvers.mapping import PriorMapping  # noqa: E402
from monai_ddpm_recon.workflows import CaseSpec, load_cases, load_prior, score_cases  # noqa: E402

DATA = ROOT / "bundles/ddpm_recon/data/colin27_heldout_axial_64.npy"
CKPT = ROOT / "bundles/ddpm_recon/models/model.pt"
# --native: the held-out slab at its own 1 mm matrix (217 x 181) with the shipped patch prior
NATIVE_DATA = ROOT / "bundles/ddpm_recon/data/colin27_heldout_axial_1mm.npy"
NATIVE_CKPT = ROOT / "bundles/ddpm_recon/models/patch/model.pt"

#: tuning grids (the value each method is run with is picked on the tuning slices)
GRIDS = {
    "ours_diffpir": ("lam", [0.001, 0.003, 0.01, 0.03, 0.1]),
    # DiffPIR warm-started at t_start from the least-squares image: λ and t_start tuned together
    "ours_diffpir_warm": ("lam,t_start", [[lam, t] for t in (200, 300, 400) for lam in (0.0003, 0.001, 0.003, 0.01)]),
    "ours_dds": ("rho", [0.01, 0.05]),
    "ours_loss_guidance": ("guidance", [0.5, 1.0]),
    "ours_loss_guidance_warm": ("guidance,t_start", [[g, t] for t in (200, 400) for g in (0.5, 1.0)]),
    "deepinv_diffpir": ("lambda_", [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1]),
    "deepinv_dps": ("weight", [0.3, 1.0, 3.0]),
    "tv": ("lam", [1e-4, 3e-4, 1e-3]),
}


def real_image_physics(operator):
    """deepinv ``LinearPhysics`` on real 1-channel images ``(B, 1, H, W)``: our operator on ``x + 0i``."""
    import deepinv

    from monai_ddpm_recon.interop.deepinv import OperatorPhysics

    full = OperatorPhysics(operator)
    return deepinv.physics.LinearPhysics(
        A=lambda x: full.A(torch.cat([x, torch.zeros_like(x)], dim=1)),
        A_adjoint=lambda y: full.A_adjoint(y)[:, :1],
        max_iter=50, tol=1e-5,
    )


class DeepinvSolver:
    """deepinv's DiffPIR / DPS as ``solver(kspace, operator) -> image`` on our prior, in our mapping's units."""

    def __init__(self, prior, method: str, nfe: int, seed: int = 0, **kw) -> None:
        self.prior, self.method, self.nfe, self.seed, self.kw = prior, method, nfe, seed, kw
        self.info = None

    def __call__(self, kspace, operator):
        import deepinv

        from monai_ddpm_recon.interop.deepinv import PriorDenoiser

        scale = PriorMapping.from_kspace(kspace, operator, 1, "none").scale
        y = kspace / scale
        physics = real_image_physics(operator)
        # deepinv's MRI layout: (B, 2, H, W) single-coil, (B, 2, C, H, W) multi-coil (real, imaginary on dim 1)
        parts = torch.stack([y.real, y.imag], dim=1).float()
        y_dinv = parts[:, :, 0] if operator.num_coils == 1 else parts
        den = PriorDenoiser(self.prior)
        torch.manual_seed(self.seed)
        if self.method == "diffpir":
            model = deepinv.sampling.DiffPIR(den, deepinv.optim.data_fidelity.L2(), sigma=0.05, max_iter=self.nfe,
                                             zeta=self.kw.get("zeta", 1.0), lambda_=self.kw["lambda_"])
            x = model(y_dinv, physics)
        else:
            model = deepinv.sampling.DPS(den, num_steps=self.nfe, weight=self.kw["weight"], dtype=torch.float32)
            x = model(y_dinv, physics)
        return (x[:, :1].double() * scale.double()).to(kspace.dtype)


def make_solver(name: str, prior, nfe: int, value, seed: int = 0, phase: str = "none", num_samples: int = 1,
                cg_iterations: int = 30):
    """``phase``: our presets' phase mode; ``none`` on phase-free data gives them the knowledge deepinv's real-image
    physics has (the image is real). ``num_samples``: posterior samples averaged by our presets (one batch of K).
    ``cg_iterations``: our DiffPIR's CG iterations per step."""
    ours = dict(num_steps=nfe, seed=seed, phase_mode=phase, num_samples=num_samples)
    if name == "zero_filled":
        return ZeroFilledSolver()
    if name == "tv":
        return TotalVariationSolver(lam=value)
    if name == "ours_diffpir":
        return DiffPIRSolver(prior, lam=value, cg_iterations=cg_iterations, t_start=None, **ours)
    if name == "ours_diffpir_warm":
        lam, t_start = value
        return DiffPIRSolver(prior, lam=lam, cg_iterations=cg_iterations, t_start=t_start, **ours)
    if name == "ours_dds":
        return DecomposedDiffusionSolver(prior, rho=value, **ours)
    if name == "ours_loss_guidance":
        return LossGuidanceSolver(prior, guidance=value, **ours)
    if name == "ours_loss_guidance_warm":
        guidance, t_start = value
        return LossGuidanceSolver(prior, guidance=guidance, t_start=t_start, **ours)
    if name == "deepinv_diffpir":
        return DeepinvSolver(prior, "diffpir", nfe, seed, lambda_=value)
    if name == "deepinv_dps":
        return DeepinvSolver(prior, "dps", nfe, seed, weight=value)
    raise ValueError(f"unknown method {name!r}")


def evaluate(solver, cases) -> tuple[float, float, float, float, list[dict]]:
    """Mean PSNR, SSIM over the cases, seconds per slice, the worst PSNR gain over zero-filled, and per-slice rows
    (``case``, ``psnr``, ``zf_psnr``, ``gain``), all cases in one batch (the shared runner's ``score_cases``)."""
    r = score_cases(solver, cases, torch.device("cpu"), len(cases))
    per_slice = [{"case": s["case"], **{k: round(s[k], 2) for k in ("psnr", "zf_psnr", "gain")}} for s in r["per_slice"]]
    return r["psnr"], r["ssim"], r["s_per_slice"], r["min_gain_over_zf"], per_slice


def cases_for(slices, R, coils, args):
    data, size = (NATIVE_DATA, None) if args.native else (DATA, 64)
    spec = CaseSpec(example_data=str(data), slices=slices, num_coils=coils, acceleration=R, image_size=size,
                    smooth_phase=args.smooth_phase, snr_db=args.snr_db)
    return load_cases(spec, seed=0)


def write_table(out: Path) -> Path:
    """``results.md``: every ``results_*.csv`` of ``out`` as one markdown table (PSNR / SSIM, s/slice), followed by
    ``notes.md`` of ``out`` if there is one."""
    lines = ["# Same prior, same k-space: our presets vs deepinv", "",
             "PSNR (dB) / SSIM, mean over the evaluation slices; value = the tuned parameter; worst gain = the smallest "
             "PSNR gain over zero-filled on any slice.", "",
             "| setting | method | value | R | coils | NFE | PSNR / SSIM | s / slice | worst gain (dB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(out.glob("results_*.csv")):
        with open(path) as f:
            for r in csv.DictReader(f):
                lines.append(f"| {r['noise']} | {r['method']} | {r['value']} | {float(r['R']):g} | {r['coils']} | {r['nfe']} "
                             f"| {r['psnr']} / {r['ssim']} | {r['s_per_slice']} | {r['worst_gain_over_zf_db']} |")
    notes = out / "notes.md"  # hand-written remarks on the rows (e.g. re-runs after a change of defaults)
    if notes.is_file():
        lines += ["", notes.read_text().strip()]
    md = out / "results.md"
    md.write_text("\n".join(lines) + "\n")
    return md


def write_figure(out: Path) -> Path | None:
    """``psnr_vs_nfe.png``: PSNR against NFE per method, one panel per (R, coils), from ``results_noiseless.csv``,
    any ``nfe*/results_noiseless.csv`` beside it, ``results_noiseless_new_defaults.csv`` — a re-run of presets
    whose defaults changed, whose rows replace the older rows of the same method, R, coils and NFE, so the figure
    shows what the presets do today — and ``results_noiseless_regrid*.csv`` (both DiffPIRs re-tuned over wider λ grids
    and the warm-started DiffPIR), whose rows replace the older ones in the same way, and the warm-started loss guidance
    (``results_noiseless_lg_warm.csv``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latest = {}
    sources = [out / "results_noiseless.csv", *sorted(out.glob("nfe*/results_noiseless.csv")),
               out / "results_noiseless_new_defaults.csv", out / "results_noiseless_regrid.csv",
               out / "results_noiseless_regrid_nfe200.csv", out / "results_noiseless_lg_warm.csv"]
    for path in sources:
        if path.is_file():
            with open(path) as f:
                for r in csv.DictReader(f):
                    latest[(r["method"], float(r["R"]), int(r["coils"]), int(r["nfe"]))] = r
    rows = list(latest.values())
    if not rows:
        return None
    panels = sorted({(float(r["R"]), int(r["coils"])) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (R, coils) in zip(axes[0], panels):
        sel = [r for r in rows if float(r["R"]) == R and int(r["coils"]) == coils]
        for method in dict.fromkeys(r["method"] for r in sel):
            pts = sorted((int(r["nfe"]), float(r["psnr"])) for r in sel if r["method"] == method)
            if pts[0][0] == 0:  # no network: a horizontal reference line
                ax.axhline(pts[0][1], ls="--", lw=1, label=method, color="grey" if method == "zero_filled" else "k")
            else:
                ax.plot(*zip(*pts), marker="o", label=method)
        ax.set_xscale("log")
        ticks = sorted({int(r["nfe"]) for r in sel if int(r["nfe"]) > 0})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_title(f"R = {R:g}, {coils} coil(s)")
        ax.set_xlabel("NFE")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    path = out / "psnr_vs_nfe.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/peer_deepinv"))
    p.add_argument("--methods", nargs="+", default=["zero_filled", "tv", "ours_loss_guidance", "ours_dds", "ours_diffpir",
                                                     "deepinv_diffpir", "deepinv_dps"])
    p.add_argument("--nfe", nargs="+", type=int, default=[25, 50, 100])
    p.add_argument("--accelerations", nargs="+", type=float, default=[4, 8, 12])
    p.add_argument("--coils", nargs="+", type=int, default=[8])
    p.add_argument("--tune-slices", nargs="+", type=int, default=[1, 15])
    p.add_argument("--eval-slices", nargs="+", type=int, default=list(range(0, 16, 2)))
    p.add_argument("--snr-db", type=float, default=None)
    p.add_argument("--smooth-phase", action="store_true")
    p.add_argument("--tuned", default=None, help="JSON of already tuned values (skips tuning)")
    p.add_argument("--tag-suffix", default="", help="appended to the output tag (results_<tag><suffix>.csv), so a "
                   "re-run of a subset does not overwrite the full run's files")
    p.add_argument("--num-samples", type=int, default=1, help="posterior samples averaged by our presets (evaluation "
                   "only; tuning always uses 1)")
    p.add_argument("--final-dc", choices=["default", "on", "off"], default="default",
                   help="override our presets' final data-consistency step (evaluation only)")
    p.add_argument("--native", action="store_true",
                   help="the 1 mm slab at its own matrix with the patch prior (default: the 64² slab, whole-image prior)")
    p.add_argument("--grid", nargs="+", action="append", default=[], metavar=("METHOD", "VALUE"),
                   help="replace a method's tuning grid, e.g. --grid deepinv_diffpir 1e-4 3e-4 1e-3 (repeatable)")
    p.add_argument("--cg-iterations", type=int, default=30, help="our DiffPIR's CG iterations per step (deepinv's "
                   "prox runs CG to 1e-5 or 50 iterations)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--table", action="store_true", help="only (re)write results.md from the CSVs in --out")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.table:
        print("wrote", write_table(out), write_figure(out))
        return
    for method, *values in args.grid:
        if method not in GRIDS or not values or isinstance(GRIDS[method][1][0], list):
            scalar = sorted(m for m, (_, g) in GRIDS.items() if not isinstance(g[0], list))
            p.error(f"--grid: expected one of {scalar} followed by values, got {[method, *values]}")
        GRIDS[method] = (GRIDS[method][0], [float(v) for v in values])
    prior = load_prior(NATIVE_CKPT if args.native else CKPT, torch.device("cpu"))
    tag = f"{'snr' + str(args.snr_db) if args.snr_db else 'noiseless'}{'_phase' if args.smooth_phase else ''}"
    tag += "" if args.coils == [8] else "_" + "-".join(map(str, args.coils)) + "coil"
    tag += args.tag_suffix
    phase = "smooth" if args.smooth_phase else "none"

    tuned = json.loads(Path(args.tuned).read_text()) if args.tuned else {}
    tune_rows = []
    tune_cases = cases_for(args.tune_slices, 8, args.coils[0], args)  # R = 8 at the run's (first) coil count
    for name in args.methods:
        if name in tuned or name not in GRIDS:
            continue
        key, grid = GRIDS[name]
        best = None
        for v in grid:
            ps, ss, dt, _, _ = evaluate(make_solver(name, prior, 50, v, phase=phase, cg_iterations=args.cg_iterations),
                                        tune_cases)
            tune_rows.append({"method": name, key: v, "psnr": round(ps, 2), "ssim": round(ss, 3)})
            print(f"tune {name} {key}={v}: {ps:.2f} dB", flush=True)
            if best is None or ps > best[1]:
                best = (v, ps)
        tuned[name] = best[0]
    if tune_rows:  # a run with --tuned keeps the tuned values and the tuning record of the run that tuned
        (out / f"tuned_{tag}.json").write_text(json.dumps(tuned, indent=1))
        with open(out / f"tuning_{tag}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=sorted({k for r in tune_rows for k in r}, key=lambda k: (k != "method", k)))
            w.writeheader()
            w.writerows(tune_rows)

    rows, slice_rows = [], []
    csv_path = out / f"results_{tag}.csv"
    for coils in args.coils:
        for R in args.accelerations:
            cases = cases_for(args.eval_slices, R, coils, args)
            for name in args.methods:
                nfes = [0] if name in ("zero_filled", "tv") else args.nfe
                for nfe in nfes:
                    solver = make_solver(name, prior, nfe, tuned.get(name), phase=phase, num_samples=args.num_samples,
                                         cg_iterations=args.cg_iterations)
                    if args.final_dc != "default" and name.startswith("ours_"):
                        solver.final_data_consistency = args.final_dc == "on"
                    ps, ss, dt, worst, per_slice = evaluate(solver, cases)
                    row = {"method": name, "value": tuned.get(name), "R": R, "coils": coils, "nfe": nfe,
                           "psnr": round(ps, 2), "ssim": round(ss, 3), "s_per_slice": round(dt, 2),
                           "worst_gain_over_zf_db": round(worst, 2), "noise": tag}
                    rows.append(row)
                    slice_rows += [{"method": name, "R": R, "coils": coils, "nfe": nfe, **r} for r in per_slice]
                    print(row, flush=True)
                    for path, table in ((csv_path, rows), (out / f"per_slice_{tag}.csv", slice_rows)):
                        with open(path, "w", newline="") as f:
                            w = csv.DictWriter(f, fieldnames=list(table[0]))
                            w.writeheader()
                            w.writerows(table)
    print("wrote", csv_path, write_table(out), write_figure(out))


if __name__ == "__main__":
    main()
