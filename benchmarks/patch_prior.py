"""The patch prior at native 1 mm resolution: denoiser check, reconstruction against TV / ℓ1-wavelet, speed, 64² task.

Stages (each writes ``<out>/<stage>.json`` and a markdown table; ``--stage all`` runs them in order):

- ``denoise``: Tweedie x̂0 of the patch prior (both tilings) vs the best Gaussian filter (σ picked per timestep on
  the eval slices themselves, which favours the filter) at t = 200 and 400 on the held-out 1 mm Colin27 slab
  (217 x 181).
- ``recon``: 8 and 1 coils, R = 4/8/12, phase-free cases of the held-out slab at their own size: zero-filled, TV,
  ℓ1-wavelet and DiffPIR with the patch prior (``--methods``; also ``dds``, the DDS preset). TV/ℓ1-wavelet λ,
  DiffPIR λ and DDS ρ are tuned on tuning slices (default 1 and 15) at R = 8 for each coil count over the grids in
  ``GRIDS`` (``--tune-per-r``: at each R separately); evaluation slices are never used for tuning.
- ``timing``: seconds per slice and peak resident memory of DiffPIR (8 coils, R = 8) at ``--timing-sizes`` (192², 256²,
  320²), ``--timing-nfe`` and ``--timing-tilings`` (both), each in a fresh process.
- ``compare64``: the patch prior vs the shipped 64² whole-image prior on the 64² task (the bundle's 64² held-out
  slab, 8 coils, R = 4 and 8), each with its own tuned DiffPIR λ.
- ``sizes``: the same slab resampled to coarser square matrices (``--sizes``, default 128² and 96², i.e. 1.7 and 2.3 mm
  pixels), 8 coils, R = 4 and 8: DiffPIR with the patch prior, λ tuned at each size and R on the tuning slices. With
  ``--sizes-mode pad`` the slab is instead zero-padded to each (larger) matrix at 1 mm, as the timing stage does.
- ``samples``: unconditional DDIM samples of the patch prior at 217 x 181 (a PNG).
- ``scale``: the diffusion solvers' intensity scale. DiffPIR (λ 3e-4) on the tuning slices, 8 coils, R = 4 and 8, with
  the scale at the 99.5th percentile of ``|Aᴴ y|`` (the default before 2026-12-06) and at its maximum (the default
  since, ``SCALE_PERCENTILE``), each with x̂0 clipped to [-1, 1] (default) and unclipped; and how the zero-filled
  image's 99.5th percentile and maximum compare with the true maximum. ``--snr-db`` adds k-space noise (a noisy
  |Aᴴ y| has a higher maximum); DiffPIR then uses σ_y ``"auto"`` and λ 0.1 (``noise_level.py``'s tuned value at 20 dB).

``compare64`` and ``sizes`` also run ``--compare-checkpoint`` (another patch prior, e.g. an earlier shipped one from git
history) beside ``--checkpoint``, each row labelled with the first 8 hex digits of its checkpoint's sha256.

Usage::

    python benchmarks/patch_prior.py --stage all --out benchmarks/results/patch_prior
    python benchmarks/patch_prior.py --stage recon --quick            # a smoke run (1 slice, 4 NFE)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monai_ddpm_recon.data.slices import intensity_scales  # noqa: E402
from monai_ddpm_recon.metrics import psnr  # noqa: E402
from monai_ddpm_recon.priors import Tiling  # noqa: E402
from monai_ddpm_recon.priors.ddpm import sha256_file  # noqa: E402
from monai_ddpm_recon.solvers import (  # noqa: E402
    DecomposedDiffusionSolver,
    DiffPIRSolver,
    L1WaveletSolver,
    TotalVariationSolver,
    ZeroFilledSolver,
)
from monai_ddpm_recon.solvers.mapping import SCALE_PERCENTILE  # noqa: E402
from monai_ddpm_recon.workflows import CaseSpec, load_cases, load_prior, score_cases, stack_cases  # noqa: E402

BUNDLE = ROOT / "bundles/ddpm_recon"
DATA_1MM = BUNDLE / "data/colin27_heldout_axial_1mm.npy"
DATA_64 = BUNDLE / "data/colin27_heldout_axial_64.npy"
PATCH_CKPT = BUNDLE / "models/patch/model.pt"
WHOLE_CKPT = BUNDLE / "models/model.pt"
OLD_SCALE_PERCENTILE = 99.5  # the diffusion solvers' default before 2026-12-06 (the scale stage compares it)
METHODS = ("zero_filled", "tv", "l1wavelet", "diffpir", "dds")  # table order
DIFFUSION_METHODS = ("diffpir", "dds")
GRIDS = {"tv": [1e-4, 3e-4, 1e-3, 3e-3], "l1wavelet": [1e-4, 3e-4, 1e-3, 3e-3], "diffpir": [0.003, 0.01, 0.03],
         "dds": [0.001, 0.003, 0.01, 0.05]}
# DiffPIR options set from the CLI: CG budget per step (--cg-iterations; 30 = the preset's default) and σ_y
# ("auto", the k-space noise estimate, when --snr-db adds noise to the recon stage's cases)
DIFFPIR_OPTS = {"cg_iterations": 30, "sigma_y": 0.01}


def make_solver(name: str, value, prior=None, nfe: int = 50):
    if name == "zero_filled":
        return ZeroFilledSolver()
    if name == "tv":
        return TotalVariationSolver(lam=value)
    if name == "l1wavelet":
        return L1WaveletSolver(lam=value)
    if name == "diffpir":  # value: λ, or [λ, t_start] for a warm-started run (t_start None: from pure noise)
        lam, t_start = value if isinstance(value, (list, tuple)) else (value, None)
        return DiffPIRSolver(prior, lam=lam, num_steps=nfe, seed=0, phase_mode="none", t_start=t_start, **DIFFPIR_OPTS)
    if name == "dds":  # value: the constant proximal weight ρ
        return DecomposedDiffusionSolver(prior, rho=value, num_steps=nfe, seed=0, phase_mode="none")
    raise ValueError(f"unknown method {name!r}")


def cases(data: Path, slices, R: float, coils: int, image_size=None, snr_db=None):
    spec = CaseSpec(example_data=str(data), slices=list(slices), num_coils=coils, acceleration=R, smooth_phase=False,
                    image_size=image_size, snr_db=snr_db)
    return load_cases(spec, seed=0)


def score(solver, cs, batch: int = 4) -> dict:
    """Mean PSNR / SSIM, seconds per slice, worst PSNR gain over zero-filled (the shared runner's ``score_cases``)."""
    r = score_cases(solver, cs, torch.device("cpu"), batch)
    return {"psnr": r["psnr"], "ssim": r["ssim"], "s_per_slice": r["s_per_slice"],
            "min_gain_over_zf": r["min_gain_over_zf"], "per_slice_psnr": [s["psnr"] for s in r["per_slice"]]}


def tuning_grid(name: str, quick: bool) -> list:
    """``GRIDS[name]``, or its first value for a ``--quick`` smoke run."""
    return GRIDS[name][:1] if quick else GRIDS[name]


def tune(name: str, grid, tune_cases, prior=None, nfe: int = 50) -> tuple[float, list]:
    if len(grid) == 1:  # a value fixed by an earlier tuning run: nothing to choose
        return grid[0], [(grid[0], None)]
    rows = [(v, score(make_solver(name, v, prior, nfe), tune_cases)["psnr"]) for v in grid]
    return max(rows, key=lambda r: r[1])[0], rows


# --- stages ------------------------------------------------------------------------------------------------------
def stage_denoise(args, prior) -> dict:
    """Tweedie x̂0 with each tiling (``"whole"``, ``"patches"``) vs the best Gaussian filter; ``gain_db`` is the
    tiling the run's ``--tiling`` picks for the slab."""
    slices = torch.from_numpy(np.load(DATA_1MM))[list(args.eval_slices)][:, None].float()  # (N, 1, H, W) in [0, 1]
    x0 = slices * 2 - 1
    sigmas = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0]
    out, used = {}, str(prior.tiling_for(x0.shape[-2:]))
    for t in (200, 400):
        g = torch.Generator().manual_seed(t)
        eps = torch.randn(x0.shape, generator=g)
        a = float(prior.alphas_cumprod[t])
        xt = a**0.5 * x0 + (1 - a) ** 0.5 * eps
        tweedie = {}
        with torch.no_grad():
            for tiling in (Tiling.WHOLE, Tiling.PATCHES):
                t0 = time.perf_counter()
                tweedie[str(tiling)] = (prior.with_tiling(tiling).x0(xt, t).clamp(-1, 1), time.perf_counter() - t0)
        scaled = xt / a**0.5
        filt = {s: gaussian_blur(scaled, s).clamp(-1, 1) for s in sigmas}

        def p(img):
            return float(np.mean([float(psnr((x0[i, 0] + 1) / 2, (img[i, 0] + 1) / 2, data_range=1.0)) for i in range(len(x0))]))

        best_sigma = max(sigmas, key=lambda s: p(filt[s]))
        out[t] = {"tweedie_psnr": p(tweedie[used][0]), "tiling": used, "noisy_psnr": p(scaled.clamp(-1, 1)),
                  "best_gaussian_sigma": best_sigma, "best_gaussian_psnr": p(filt[best_sigma]),
                  "tweedie_psnr_by_tiling": {k: p(v[0]) for k, v in tweedie.items()},
                  "seconds_by_tiling": {k: v[1] for k, v in tweedie.items()}}
        out[t]["gain_db"] = out[t]["tweedie_psnr"] - out[t]["best_gaussian_psnr"]
        print(f"t={t}: {out[t]}", flush=True)
    return out


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = int(np.ceil(3 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=x.dtype) ** 2) / (2 * sigma**2))
    k = k / k.sum()
    y = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return torch.nn.functional.conv2d(torch.nn.functional.pad(y, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))


def row_order(r: dict) -> tuple:
    """Table order of recon rows: more coils first, then R, then :data:`METHODS`' order, then tiling."""
    return (-r["coils"], r["R"], METHODS.index(r["method"]), r.get("tiling") or "",
            str(r["value"]))


def stage_recon(args, prior) -> dict:
    """Rows of ``args.methods`` at ``args.coils``; other rows already in ``<out>/recon.json`` are kept (so the
    prior-free baselines can run while the prior trains, or one coil setting can be added later)."""
    path = Path(args.out) / "recon.json"
    old = json.loads(path.read_text()) if path.is_file() else {"rows": [], "tuned": {}}
    rows = [r for r in old["rows"] if r["method"] not in args.methods or r["coils"] not in args.coils]
    tuned = {int(c): {m: v for m, v in d.items() if m.split(" @")[0] not in args.methods or int(c) not in args.coils}
             for c, d in old["tuned"].items()}
    for coils in args.coils:
        tuned.setdefault(coils, {})
        for R in args.accelerations if coils > 1 else args.accelerations_1coil:
            tune_R = R if args.tune_per_r else 8
            key = (lambda name: f"{name} @R{tune_R:g}") if args.tune_per_r else (lambda name: name)
            names = [m for m in METHODS if m != "zero_filled" and m in args.methods]
            if not all(key(n) in tuned[coils] for n in names):  # once per tuning R (without --tune-per-r: once)
                tcases = cases(DATA_1MM, args.tune_slices, tune_R, coils, snr_db=args.snr_db)
                for name in names:
                    grid = tuning_grid(name, args.quick)
                    if name == "diffpir" and args.t_start_grid:  # λ and the warm start's t_start tuned together
                        grid = [[lam, t] for t in args.t_start_grid for lam in grid]
                    best, grid_rows = tune(name, grid, tcases, prior, args.nfe)
                    tuned[coils][key(name)] = {"value": best, "grid": grid_rows}
                    print(f"tuned {key(name)} ({coils} coils): {best} from {grid_rows}", flush=True)
            ecases = cases(DATA_1MM, args.eval_slices, R, coils, snr_db=args.snr_db)
            for name in [m for m in METHODS if m in args.methods]:
                value = tuned[coils].get(key(name), {}).get("value")
                r = score(make_solver(name, value, prior, args.nfe), ecases)
                diffusion = name in DIFFUSION_METHODS
                r.update(method=name, coils=coils, R=R, value=value, nfe=args.nfe if diffusion else None,
                         cg_iterations=DIFFPIR_OPTS["cg_iterations"] if name == "diffpir" else None,
                         snr_db=args.snr_db,
                         size=list(ecases[0].kspace.shape[-2:]),
                         tiling=str(prior.tiling_for(ecases[0].kspace.shape[-2:])) if diffusion else None,
                         tuned_at_R=tune_R if name != "zero_filled" else None)
                rows.append(r)
                print(f"{coils} coils R {R} {name}: {r['psnr']:.2f} dB / {r['ssim']:.3f}, {r['s_per_slice']:.1f} s/slice", flush=True)
    rows.sort(key=row_order)
    return {"rows": rows, "tuned": tuned}


def stage_timing(args, prior) -> dict:
    out = {}
    for tiling in args.timing_tilings:
        for size in args.timing_sizes:
            for nfe in args.timing_nfe:
                cmd = [sys.executable, __file__, "--time-one", str(size), "--nfe", str(nfe), "--checkpoint",
                       str(args.checkpoint), "--tiling", tiling, "--threads", str(args.threads),
                       "--cg-iterations", str(args.cg_iterations)]
                res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
                line = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
                if not line:
                    raise RuntimeError(res.stderr[-2000:])
                key = f"{size}x{size}, {nfe} NFE, {tiling}"
                out[key] = {**json.loads(line[-1]), "size": size, "nfe": nfe, "tiling": tiling}
                print(key, out[key], flush=True)
    return out


def padded_slab(size: int, slices=None) -> Path:
    """The 1 mm slab (``slices`` of it, default all) centre-cropped / zero-padded to ``size x size`` pixels of 1 mm,
    saved as a ``.npy`` under /tmp; returns its path."""
    slab = np.load(DATA_1MM)
    slab = slab if slices is None else slab[list(slices)]
    img = np.zeros((*slab.shape[:-2], size, size), np.float32)
    h, w = slab.shape[-2:]
    hs, ws = min(h, size), min(w, size)
    img[..., (size - hs) // 2 : (size - hs) // 2 + hs, (size - ws) // 2 : (size - ws) // 2 + ws] = \
        slab[..., (h - hs) // 2 : (h - hs) // 2 + hs, (w - ws) // 2 : (w - ws) // 2 + ws]
    path = Path(f"/tmp/patch_prior_slab_{size}_{len(img)}.npy")
    np.save(path, img)
    return path


def time_one(size: int, nfe: int, checkpoint: str, threads: int, tiling: str) -> None:
    torch.set_num_threads(threads)
    prior = load_prior(checkpoint, torch.device("cpu")).with_tiling(tiling)
    cs = cases(padded_slab(size, [0]), [0], 8, 8)
    r = score(make_solver("diffpir", 0.01, prior, nfe), cs)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"s_per_slice": r["s_per_slice"], "peak_rss_mib": rss, "threads": threads, "psnr": r["psnr"]}))


def patch_priors(args, prior) -> dict:
    """``{label: prior}``: the patch prior of ``--checkpoint`` and, with ``--compare-checkpoint``, that one too."""
    out = {f"patch {sha256_file(args.checkpoint)[:8]}": prior}
    if args.compare_checkpoint:
        other = load_prior(args.compare_checkpoint, torch.device("cpu"), expected_sha256=args.compare_sha256)
        other.tiling = prior.tiling
        out[f"patch {sha256_file(args.compare_checkpoint)[:8]}"] = other
    return out


def stage_compare64(args, prior) -> dict:
    whole = load_prior(WHOLE_CKPT, torch.device("cpu"))
    out = {}
    for label, p in (*patch_priors(args, prior).items(), ("whole_image_64", whole)):
        tcases = cases(DATA_64, args.tune_slices, 8, 8, image_size=64)
        best, grid_rows = tune("diffpir", tuning_grid("diffpir", args.quick), tcases, p, args.nfe)
        out[label] = {"lam": best, "grid": grid_rows}
        for R in args.accelerations_64:
            r = score(make_solver("diffpir", best, p, args.nfe), cases(DATA_64, args.eval_slices, R, 8, image_size=64))
            out[label][f"R{R}"] = r
            print(f"64² {label} R {R}: {r['psnr']:.2f} dB / {r['ssim']:.3f}", flush=True)
    return out


def stage_sizes(args, prior) -> dict:
    rows, priors = [], patch_priors(args, prior)
    for size in args.sizes:
        # resize: the slab resampled to size² (coarser pixels); pad: zero-padded to size² at 1 mm
        data, image_size = (padded_slab(size), None) if args.sizes_mode == "pad" else (DATA_1MM, size)
        for R in args.accelerations_64:
            tcases = cases(data, args.tune_slices, R, 8, image_size=image_size)
            ecases = cases(data, args.eval_slices, R, 8, image_size=image_size)
            for label, p in priors.items():
                lam, grid_rows = tune("diffpir", tuning_grid("diffpir", args.quick), tcases, p, args.nfe)
                r = score(make_solver("diffpir", lam, p, args.nfe), ecases)
                rows.append({"size": size, "R": R, "prior": label, "lam": lam, "grid": grid_rows, "mode": args.sizes_mode,
                             "tiling": str(p.tiling_for((size, size))), **r})
                print(f"{size}² R {R} {label}: {r['psnr']:.2f} dB / {r['ssim']:.3f} (λ {lam})", flush=True)
    return {"rows": rows}


def stage_samples(args, prior) -> dict:
    from monai_ddpm_recon.training import ddim_sample, save_grid

    t0 = time.perf_counter()
    x = ddim_sample(prior.network, prior, num_samples=4, num_inference_steps=4 if args.quick else 50, seed=0, size=(217, 181))
    path = Path(args.out) / "samples_217x181.png"
    save_grid(x, str(path), nrow=4)
    return {"path": str(path.relative_to(ROOT)) if path.is_absolute() else str(path), "seconds": time.perf_counter() - t0}


def zero_filled_peak_ratios(tcases) -> dict:
    """Mean over ``tcases`` of the zero-filled image's old-default percentile and maximum over the true maximum."""
    ratios = []
    for c in tcases:
        kspace, op = stack_cases([c], torch.device("cpu"))
        zf, peak = op.adjoint(kspace), float(c.target.abs().max())
        ratios.append([float(intensity_scales(zf, p)[0]) / peak for p in (OLD_SCALE_PERCENTILE, 100.0)])
    return {"p99.5_over_true_max": float(np.mean([r[0] for r in ratios])),
            "max_over_true_max": float(np.mean([r[1] for r in ratios]))}


def stage_scale(args, prior) -> dict:
    """DiffPIR on the tuning slices at two intensity-scale percentiles, x̂0 clipped or not; zero-filled peak ratios."""
    # with noise: σ_y estimated per slice and λ 0.1, the values benchmarks/noise_level.py tuned at 20 dB
    noisy = args.snr_db is not None
    out = {"lam": 0.1 if noisy else 3e-4, "sigma_y": DIFFPIR_OPTS["sigma_y"], "rows": [], "ratios": {}, "snr_db": args.snr_db}
    for R in [4, 8][:1 if args.quick else 2]:
        tcases = cases(DATA_1MM, args.tune_slices, R, 8, snr_db=args.snr_db)
        out["ratios"][f"R{R}"] = zero_filled_peak_ratios(tcases)
        for pct in (OLD_SCALE_PERCENTILE, SCALE_PERCENTILE):
            for clip in (True, False):
                solver = DiffPIRSolver(prior, lam=out["lam"], num_steps=args.nfe, seed=0, phase_mode="none",
                                       scale_percentile=pct, clip_x0=clip, **DIFFPIR_OPTS)
                r = score(solver, tcases)
                out["rows"].append({"R": R, "percentile": pct, "clip_x0": clip, "psnr": r["psnr"], "ssim": r["ssim"]})
                print(f"scale R {R} p {pct} clip {clip}: {r['psnr']:.2f} dB / {r['ssim']:.3f}", flush=True)
    return out


def table(title: str, header: list[str], rows: list[list]) -> list[str]:
    """A markdown section: title, header, rows, blank line."""
    return [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows), ""]


def write_markdown(out: Path, results: dict) -> None:
    lines = ["# Patch prior at native resolution", "",
             "Written by `benchmarks/patch_prior.py` from the JSON files beside this one (the runs' commands are in the "
             "README, section \"Native resolution: the patch prior\"; logs `log_*.txt`).", ""]
    if "denoise" in results:
        lines += table("Denoiser check (held-out 1 mm slices, PSNR dB)",
                       ["t", "noisy", "best Gaussian (σ)", "Tweedie x̂0, whole", "Tweedie x̂0, patches", "gain (tiling)"],
                       [[t, f"{r['noisy_psnr']:.2f}", f"{r['best_gaussian_psnr']:.2f} ({r['best_gaussian_sigma']})",
                         *(f"{r['tweedie_psnr_by_tiling'][k]:.2f} ({r['seconds_by_tiling'][k]:.1f} s)" for k in ("whole", "patches")),
                         f"{r['gain_db']:+.2f} ({r['tiling']})"] for t, r in results["denoise"].items()])
    if "recon" in results:
        # the other tiling's DiffPIR rows (runs with --out <out>/tiling_<name>) and warm-started runs
        # (--out <out>/warm_start) go in the same table
        other = [json.loads(f.read_text()) for f in sorted([*out.glob("tiling_*/recon.json"), *out.glob("warm_*/recon.json")])]
        rows = sorted([*results["recon"]["rows"], *(r for o in other for r in o["rows"])], key=row_order)
        lines += table("Reconstruction at native size (PSNR dB / SSIM, s/slice)",
                       ["coils", "R", "method", "λ or ρ (or [λ, t_start])", "PSNR", "SSIM", "min gain over ZF", "s/slice"],
                       [[r["coils"], r["R"], r["method"] + (f" ({r['tiling']})" if r.get("tiling") else ""), r["value"] if r["value"] is not None else "", f"{r['psnr']:.2f}",
                         f"{r['ssim']:.3f}", f"{r['min_gain_over_zf']:+.2f}", f"{r['s_per_slice']:.1f}"]
                        for r in rows])
        main_tiling = next((r["tiling"] for r in results["recon"]["rows"] if r.get("tiling")), None)
        label = lambda m, t: f"{m} ({t})" if m.split(" @")[0] in DIFFUSION_METHODS and t else m  # noqa: E731
        grids = {c: {label(m, main_tiling): v["grid"] for m, v in d.items()} for c, d in results["recon"]["tuned"].items()}
        for o in other:
            tiling = next(r["tiling"] for r in o["rows"])
            warm = any(isinstance(r["value"], list) for r in o["rows"])
            for c, d in o["tuned"].items():
                grids.setdefault(c, {}).update({label(m, tiling) + (" warm" if warm else ""): v["grid"] for m, v in d.items()})
        lines[-1:] = ["", "Tuning grids (tuning slices; at R = 8 unless the key names the R, \"@R4\"): " + json.dumps(grids), ""]
    if "timing" in results:
        lines += table("Speed (CPU, DiffPIR, 8 coils, R = 8; each in a fresh process)",
                       ["size, NFE, tiling", "s/slice", "peak RSS MiB", "threads"],
                       [[k, f"{r['s_per_slice']:.1f}", f"{r['peak_rss_mib']:.0f}", r["threads"]] for k, r in results["timing"].items()])
    if "compare64" in results:
        lines += table("64² task: patch prior vs whole-image prior (DiffPIR, 8 coils)", ["prior", "λ", "R", "PSNR", "SSIM"],
                       [[label, d["lam"], k[1:], f"{r['psnr']:.2f}", f"{r['ssim']:.3f}"]
                        for label, d in results["compare64"].items() for k, r in d.items() if k.startswith("R")])
    if "sizes" in results:
        slab_side = max(np.load(DATA_1MM, mmap_mode="r").shape[-2:])  # the slab is padded to a square, then resized
        padded = lambda r: r.get("mode") == "pad"  # noqa: E731
        lines += table("Other matrices: the 1 mm slab resampled, or zero-padded (DiffPIR, 8 coils, λ tuned per size and R)",
                       ["matrix", "pixel mm", "R", "prior (tiling)", "λ", "PSNR", "SSIM"],
                       [[f"{r['size']}²" + (" zero-padded" if padded(r) else ""), f"{1.0 if padded(r) else slab_side / r['size']:.2f}",
                         r["R"], r["prior"] + (f" ({r['tiling']})" if r.get("tiling") else ""), r["lam"], f"{r['psnr']:.2f}", f"{r['ssim']:.3f}"]
                        for r in results["sizes"]["rows"]])
    if "scale" in results:
        sc = results["scale"]
        noise = f", k-space SNR {sc['snr_db']:g} dB, σ_y auto" if sc.get("snr_db") is not None else ", noiseless"
        lines += table(f"Intensity scale (DiffPIR λ {sc['lam']:g}, 8 coils, tuning slices{noise})",
                       ["R", "scale percentile of abs(Aᴴy)", "x̂0 clipped", "PSNR", "SSIM"],
                       [[r["R"], r["percentile"], "yes" if r["clip_x0"] else "no", f"{r['psnr']:.2f}", f"{r['ssim']:.3f}"]
                        for r in sc["rows"]])
        lines[-1:] = ["", "Zero-filled peaks / true maximum: " + ", ".join(
            f"{k}: 99.5th percentile {v['p99.5_over_true_max']:.3f}, maximum {v['max_over_true_max']:.3f}"
            for k, v in sc["ratios"].items()), ""]
    (out / "results.md").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", default="all", choices=["all", "denoise", "recon", "timing", "compare64", "sizes", "samples", "scale"])
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/patch_prior"))
    ap.add_argument("--checkpoint", default=str(PATCH_CKPT))
    ap.add_argument("--compare-checkpoint", default=None, help="another patch prior for compare64 and sizes")
    ap.add_argument("--compare-sha256", default=None, help="its sha256 (needed when no metadata lies beside it)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 96], help="square matrices of the sizes stage")
    ap.add_argument("--sizes-mode", default="resize", choices=["resize", "pad"],
                    help="sizes stage: resample the slab to each matrix, or zero-pad it there at 1 mm")
    ap.add_argument("--nfe", type=int, default=50)
    ap.add_argument("--coils", type=int, nargs="+", default=[8, 1])
    ap.add_argument("--accelerations", type=float, nargs="+", default=[4, 8, 12])
    ap.add_argument("--accelerations-1coil", type=float, nargs="+", default=[4, 8])
    ap.add_argument("--accelerations-64", type=float, nargs="+", default=[4, 8])
    ap.add_argument("--methods", nargs="+", default=["zero_filled", "tv", "l1wavelet", "diffpir"], choices=METHODS)
    ap.add_argument("--diffpir-grid", type=float, nargs="+", default=None, help="DiffPIR λ grid (default GRIDS)")
    ap.add_argument("--tv-grid", type=float, nargs="+", default=None, help="TV λ grid (default GRIDS)")
    ap.add_argument("--dds-grid", type=float, nargs="+", default=None, help="DDS ρ grid (default GRIDS)")
    ap.add_argument("--l1wavelet-grid", type=float, nargs="+", default=None, help="ℓ1-wavelet λ grid (default GRIDS)")
    ap.add_argument("--t-start-grid", type=lambda v: None if v == "none" else int(v), nargs="+", default=None,
                    help="DiffPIR warm-start t_start values tuned together with λ ('none': from pure noise)")
    ap.add_argument("--tune-per-r", action="store_true",
                    help="tune every method's λ at each acceleration (default: once, at R = 8, for all R)")
    ap.add_argument("--snr-db", type=float, default=None,
                    help="k-space SNR of added noise in the scale and recon stages (default: noiseless)")
    ap.add_argument("--tune-slices", type=int, nargs="+", default=[1, 15])
    ap.add_argument("--eval-slices", type=int, nargs="+", default=[0, 4, 8, 12])
    ap.add_argument("--cg-iterations", type=int, default=30, help="DiffPIR's CG iterations per step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timing-nfe", type=int, nargs="+", default=[50, 100])
    ap.add_argument("--timing-sizes", type=int, nargs="+", default=[192, 256, 320])
    ap.add_argument("--timing-tilings", nargs="+", default=[str(Tiling.WHOLE), str(Tiling.PATCHES)],
                    choices=[str(t) for t in Tiling])
    ap.add_argument("--tiling", default=str(Tiling.AUTO), choices=[str(t) for t in Tiling],
                    help="how the patch prior covers a whole slice (PatchDDPMPrior.tiling; auto: by the longer side)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 eval slice, 1 grid value, 4 NFE")
    ap.add_argument("--time-one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    DIFFPIR_OPTS.update(cg_iterations=args.cg_iterations, sigma_y="auto" if args.snr_db is not None else 0.01)
    if args.time_one is not None:
        return time_one(args.time_one, args.nfe, args.checkpoint, args.threads, args.tiling)
    torch.set_num_threads(args.threads)
    for name in GRIDS:
        if getattr(args, f"{name}_grid"):
            GRIDS[name] = list(getattr(args, f"{name}_grid"))
    if args.quick:
        args.nfe, args.eval_slices, args.tune_slices, args.coils, args.accelerations = 4, [0], [1], [8], [8]
        args.accelerations_1coil = [8]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    needs_prior = args.stage != "recon" or any(m in DIFFUSION_METHODS for m in args.methods)
    prior = load_prior(args.checkpoint, torch.device("cpu")) if needs_prior else None
    if prior is not None:
        prior.tiling = args.tiling
    stages = ["denoise", "recon", "compare64", "sizes", "samples", "timing"] if args.stage == "all" else [args.stage]
    results = {}
    for f in out.glob("*.json"):
        results[f.stem] = json.loads(f.read_text())
    fns = {"denoise": stage_denoise, "recon": stage_recon, "timing": stage_timing, "compare64": stage_compare64,
           "sizes": stage_sizes, "samples": stage_samples, "scale": stage_scale}
    for st in stages:
        t0 = time.perf_counter()
        results[st] = fns[st](args, prior)
        results[st + "_seconds"] = time.perf_counter() - t0
        (out / f"{st}.json").write_text(json.dumps(results[st], indent=1, default=float))
        print(f"stage {st}: {time.perf_counter() - t0:.0f} s", flush=True)
    write_markdown(out, results)


if __name__ == "__main__":
    main()
