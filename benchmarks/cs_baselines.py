"""Benchmark of the compressed-sensing baselines on a Colin27 axial slice with simulated birdcage coils.

Measures (one slice at a time, on this CPU):
  * PSNR and wall time per slice of zero-filled, SENSE, TV and ℓ1-wavelet for 128² and 256², 8 coils, R = 4 and 8;
  * our TotalVariationSolver wrapper vs the raw ``sigpy.mri.app.TotalVariationRecon`` call on the same problem;
  * sigpy TV vs BART TV (``bart pics -R T:3:0:λ``) at each one's best λ (tuned on a log grid), time and PSNR;
  * PSNR vs iterations for TV (PDHG) and ℓ1-wavelet (FISTA), written as CSV + PNG.

Writes ``benchmarks/results/cs_baselines.md``, ``cs_convergence.csv`` and ``cs_convergence.png``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/cs_baselines.py            # full run (a few minutes on 2 cores)
    OMP_NUM_THREADS=1 python benchmarks/cs_baselines.py --quick    # smoke run: 64², fewer iterations
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from monai_ddpm_recon.data.slices import COLIN27_PATH, axial_slice, load_colin27, normalise_max, resize_square  # noqa: E402
from monai_ddpm_recon.operators import SenseOperator, birdcage_maps, make_mask  # noqa: E402
from monai_ddpm_recon.solvers.baselines import SenseSolver, ZeroFilledSolver, kspace_scale  # noqa: E402
from monai_ddpm_recon.solvers.cs import L1WaveletSolver, TotalVariationSolver  # noqa: E402
from monai_ddpm_recon.solvers.tuning import psnr, tune_lambda  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def colin27_slice(size: int, z_mm: float = 18.0, path: str = COLIN27_PATH) -> torch.Tensor:
    """Axial Colin27 slice through the lateral ventricles (MNI z = ``z_mm``), prepared as the training slices are
    (:mod:`monai_ddpm_recon.data.slices`: RAS, anterior up, zero-padded square, resized, divided by its maximum).

    Returns:
        float32 tensor ``(size, size)`` in [0, 1].
    """
    import nibabel as nib

    affine = nib.as_closest_canonical(nib.load(path)).affine
    k = int(round((np.linalg.inv(affine) @ [0.0, 0.0, z_mm, 1.0])[2]))
    return torch.from_numpy(normalise_max(resize_square(axial_slice(load_colin27(path), k), size)))


def smooth_phase(size: int, seed: int = 0) -> torch.Tensor:
    """A smooth (low-order polynomial) phase map in radians, ``(size, size)``, peak-to-peak about 2 rad."""
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(5, generator=g) * 2 - 1
    u = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    return c[0] * xx + c[1] * yy + 0.5 * (c[2] * xx * yy + c[3] * xx**2 + c[4] * yy**2)


def make_problem(size: int, accel: int, coils: int = 8, noise: float = 0.0, seed: int = 0):
    """Ground truth ``(1, 1, N, N)`` complex64, its k-space ``(1, C, N, N)`` and a SenseOperator (random columns).

    ``noise``: std of the complex white k-space noise relative to ``max |x|`` (with the orthonormal FFT and
    ``Σ|S|² = 1`` this is also the noise std of the fully sampled SENSE-combined image).
    """
    mag = colin27_slice(size)
    x = (mag * torch.exp(1j * smooth_phase(size, seed))).to(torch.complex64)[None, None]
    maps = birdcage_maps(coils, (size, size))
    mask = make_mask("random", (size, size), accel, center_fraction=0.08, seed=seed)
    op = SenseOperator(maps, mask)
    y = op.forward(x)
    if noise > 0:
        g = torch.Generator().manual_seed(seed + 1)
        n = torch.randn(y.shape, generator=g, dtype=torch.complex64) * noise * float(x.abs().max())
        y = op.mask * (y + n)
    return x, y, op


def timed(fn, repeats: int = 1, clock=time.perf_counter):
    """Best-of-``repeats`` time of ``fn()`` (wall clock by default) and its last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = clock()
        out = fn()
        best = min(best, clock() - t0)
    return best, out


def overhead_table(sizes: list[int], accel: int, coils: int, noise: float, lam: float, iters: int, repeats: int):
    """Markdown rows: raw ``TotalVariationRecon`` vs ``TotalVariationSolver`` on the same normalised problem.

    Both wall and process CPU time are reported (single-threaded, so CPU time is immune to other jobs' load);
    calls are interleaved and the best of ``repeats`` is kept.
    """
    from sigpy.mri.app import TotalVariationRecon

    rows = ["| size | R | raw sigpy wall / CPU (s) | TotalVariationSolver wall / CPU (s) | ratio wall / CPU | max rel. diff |",
            "|---|---|---|---|---|---|"]
    for size in sizes:
        x, y, op = make_problem(size, accel, coils, noise)
        s = float(kspace_scale(y, op)[0])
        y_np = (y[0].numpy() / s).astype(np.complex64)
        mps = op.sens_maps[0].numpy()
        w = np.ascontiguousarray(torch.broadcast_to(op.mask, (1, 1, size, size))[0, 0].numpy())  # as the wrapper
        solver = TotalVariationSolver(lam=lam, max_iter=iters)
        sigma, tau = solver.steps(mps, w)  # same step sizes in both calls

        def raw():
            return TotalVariationRecon(
                y_np, mps, lam, weights=w, max_iter=iters, sigma=sigma, tau=tau, show_pbar=False
            ).run() * s

        best = {k: float("inf") for k in ("raw_wall", "raw_cpu", "ours_wall", "ours_cpu")}
        for _ in range(repeats):  # interleaved, so background load drift hits both alike
            for key, fn in (("raw", raw), ("ours", lambda: solver(y, op))):
                t0, c0 = time.perf_counter(), time.process_time()
                out = fn()
                best[f"{key}_wall"] = min(best[f"{key}_wall"], time.perf_counter() - t0)
                best[f"{key}_cpu"] = min(best[f"{key}_cpu"], time.process_time() - c0)
                if key == "raw":
                    r_raw = out
                else:
                    r_ours = out
        diff = float(np.abs(r_ours[0, 0].numpy() - r_raw).max() / np.abs(r_raw).max())
        rows.append(
            f"| {size}² | {accel} | {best['raw_wall']:.3f} / {best['raw_cpu']:.3f} | {best['ours_wall']:.3f} / "
            f"{best['ours_cpu']:.3f} | {best['ours_wall'] / best['raw_wall']:.3f} / "
            f"{best['ours_cpu'] / best['raw_cpu']:.3f} | {diff:.1e} |"
        )
        print(rows[-1], flush=True)
    return rows


# ---------------------------------------------------------------------------------------------------------------
def convergence(
    size: int, accel: int, iters: list[int], tv_lam: float, l1_lam: float, out_dir: Path, noise: float
) -> list[dict]:
    """PSNR vs iterations for TV (our steps and sigpy's default steps) and ℓ1-wavelet; writes CSV + PNG."""
    x, y, op = make_problem(size, accel, noise=noise)
    rows = []
    for n in iters:
        tv = TotalVariationSolver(lam=tv_lam, max_iter=n)
        tv_default = TotalVariationSolver(lam=tv_lam, max_iter=n, step_ratio=None)  # sigpy's σ = 1, τ = 1/L
        l1 = L1WaveletSolver(lam=l1_lam, max_iter=n)
        row = {"iterations": n}
        for name, s in (("tv", tv), ("tv_sigpy_steps", tv_default), ("l1wavelet", l1)):
            rec = s(y, op)
            row[f"{name}_psnr"] = round(float(psnr(x, rec)), 3)
            row[f"{name}_time_s"] = round(s.info.wall_time_s, 3)
        rows.append(row)
        print("convergence", row, flush=True)
    with open(out_dir / "cs_convergence.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogx([r["iterations"] for r in rows], [r["tv_psnr"] for r in rows], "o-", label=f"TV (PDHG), λ={tv_lam:g}")
    ax.semilogx(
        [r["iterations"] for r in rows], [r["tv_sigpy_steps_psnr"] for r in rows], "^--", label="TV, sigpy default steps"
    )
    ax.semilogx(
        [r["iterations"] for r in rows], [r["l1wavelet_psnr"] for r in rows], "s-", label=f"ℓ1-wavelet (FISTA), λ={l1_lam:g}"
    )
    ax.set_xlabel("iterations")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"Colin27 {size}², 8 coils, R={accel}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "cs_convergence.png", dpi=120)
    plt.close(fig)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--accels", type=int, nargs="+", default=[4, 8])
    p.add_argument("--coils", type=int, default=8)
    p.add_argument("--noise", type=float, default=0.01, help="k-space noise std relative to max |x|")
    p.add_argument("--tv-iters", type=int, default=None, help="TV iterations (default: the solver's default)")
    p.add_argument("--l1-iters", type=int, default=None, help="ℓ1-wavelet iterations (default: the solver's default)")
    p.add_argument("--tune-size", type=int, default=128, help="image size of the λ tuning / BART comparison")
    p.add_argument("--grid", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    p.add_argument("--conv-iters", type=int, nargs="+", default=[10, 25, 50, 100, 200, 400])
    p.add_argument("--repeats", type=int, default=3, help="best-of repeats for the overhead timing")
    p.add_argument("--no-bart", action="store_true")
    p.add_argument("--quick", action="store_true", help="smoke run: 64², short grids")
    p.add_argument(
        "--overhead-only", type=float, default=None, metavar="LAMBDA",
        help="only time the TV wrapper vs raw sigpy at this λ; writes cs_overhead.md",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    if a.quick:
        a.sizes, a.accels, a.tune_size = [64], [4], 64
        a.grid, a.conv_iters, a.repeats = [1e-3, 1e-2], [10, 50], 1
    a.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    tv_iters = a.tv_iters or TotalVariationSolver().max_iter
    l1_iters = a.l1_iters or L1WaveletSolver().max_iter
    if a.overhead_only is not None:
        rows = overhead_table(a.sizes, a.accels[0], a.coils, a.noise, a.overhead_only, tv_iters, a.repeats)
        cmd = f"OMP_NUM_THREADS=1 python benchmarks/cs_baselines.py {' '.join(argv or sys.argv[1:])}"
        text = [f"# TV wrapper overhead (λ={a.overhead_only:g}, {tv_iters} iterations, best of {a.repeats})", "",
                f"Command: `{cmd}`", "", *rows]
        (a.out / "cs_overhead.md").write_text("\n".join(text) + "\n")
        return 0
    md: list[str] = [
        "# Compressed-sensing baselines",
        "",
        f"Colin27 axial slice (MNI z=+18 mm), smooth phase, {a.coils} birdcage coils, complex k-space noise "
        f"σ = {a.noise:g}·max|x|, 1D random column "
        "masks (8% centre). Single slice, one CPU thread (`OMP_NUM_THREADS=1`). "
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/cs_baselines.py {' '.join(argv or sys.argv[1:])}`.".rstrip(),
        "",
        f"Iterations: TV {tv_iters} (PDHG), ℓ1-wavelet {l1_iters} (FISTA), SENSE 30 (CG, μ = 0: no regularisation, so it "
        "amplifies noise at high R). Wall times are single runs on a 2-core machine shared with other jobs "
        "(expect ±30%); the overhead ratio interleaves the two calls to cancel load drift.",
        "",
    ]

    # 1) λ tuning at the tuning size, R = 4 (validation = a second slice position, so λ is not tuned on the test)
    print("tuning λ ...", flush=True)
    val = [make_problem(a.tune_size, acc, a.coils, a.noise, seed=1) for acc in a.accels]
    tuned, tune_results = {}, {}
    for name, factory in (
        ("tv", lambda lam: TotalVariationSolver(lam=lam, max_iter=tv_iters)),
        ("l1wavelet", lambda lam: L1WaveletSolver(lam=lam, max_iter=l1_iters)),
    ):
        res = tune_lambda(factory, [v[1] for v in val], [v[2] for v in val], [v[0] for v in val], a.grid)
        tuned[name] = res.best_lambda
        tune_results[name] = res
        print(name, res, flush=True)
    md += [f"## λ tuning (mean PSNR in dB over R ∈ {a.accels}, {a.tune_size}², validation masks with seed 1)", ""]
    md += ["| solver | " + " | ".join(f"λ={g:g}" for g in a.grid) + " | best λ |", "|---|" + "---|" * (len(a.grid) + 1)]
    for name, res in tune_results.items():
        md.append(f"| {name} | " + " | ".join(f"{m:.2f}" for m in res.mean_psnr) + f" | {res.best_lambda:g} |")

    # 2) convergence curve
    print("convergence ...", flush=True)
    conv = convergence(a.tune_size, a.accels[0], a.conv_iters, tuned["tv"], tuned["l1wavelet"], a.out, a.noise)

    # 3) per-slice PSNR / time table
    md += ["", "## PSNR (dB) and wall time per slice", ""]
    md += ["| size | R | zero-filled | SENSE (CG) | TV (sigpy) | ℓ1-wavelet (sigpy) |", "|---|---|---|---|---|---|"]
    for size in a.sizes:
        for acc in a.accels:
            x, y, op = make_problem(size, acc, a.coils, a.noise)
            cells = []
            for s in (
                ZeroFilledSolver(),
                SenseSolver(mu=0.0, max_iter=30),
                TotalVariationSolver(lam=tuned["tv"], max_iter=tv_iters),
                L1WaveletSolver(lam=tuned["l1wavelet"], max_iter=l1_iters),
            ):
                t, rec = timed(lambda: s(y, op))
                cells.append(f"{float(psnr(x, rec)):.2f} / {t:.2f} s")
            md.append(f"| {size}² | {acc} | " + " | ".join(cells) + " |")
            print(md[-1], flush=True)

    # 4) wrapper overhead: TotalVariationSolver vs raw sigpy on the same normalised problem
    md += ["", f"## Wrapper overhead (TV, {tv_iters} iterations, best of {a.repeats}, interleaved)", ""]
    md += overhead_table(a.sizes, a.accels[0], a.coils, a.noise, tuned["tv"], tv_iters, a.repeats)

    # 5) BART
    if not a.no_bart and shutil.which("bart"):
        from monai_ddpm_recon.solvers.bart import BartPicsSolver

        print("BART ...", flush=True)
        md += ["", f"## sigpy TV vs BART TV ({a.tune_size}², each at its best λ on the grid, tuned on the same data)", ""]
        md += ["| R | sigpy λ | sigpy PSNR | sigpy time (s) | BART λ | BART PSNR | BART time (s) | ΔPSNR |"]
        md += ["|---|---|---|---|---|---|---|---|"]
        for acc in a.accels:
            x, y, op = make_problem(a.tune_size, acc, a.coils, a.noise)
            r_sp = tune_lambda(lambda lam: TotalVariationSolver(lam=lam, max_iter=tv_iters), [y], [op], [x], a.grid)
            r_bt = tune_lambda(lambda lam: BartPicsSolver(lam=lam, max_iter=tv_iters), [y], [op], [x], a.grid)
            t_sp, rec_sp = timed(lambda: TotalVariationSolver(lam=r_sp.best_lambda, max_iter=tv_iters)(y, op))
            t_bt, rec_bt = timed(lambda: BartPicsSolver(lam=r_bt.best_lambda, max_iter=tv_iters)(y, op))
            p_sp, p_bt = float(psnr(x, rec_sp)), float(psnr(x, rec_bt))
            md.append(
                f"| {acc} | {r_sp.best_lambda:g} | {p_sp:.2f} | {t_sp:.2f} | {r_bt.best_lambda:g} | {p_bt:.2f} | "
                f"{t_bt:.2f} | {p_sp - p_bt:+.2f} |"
            )
            print(md[-1], flush=True)

    md += ["", f"## Convergence (PSNR vs iterations, {a.tune_size}², R={a.accels[0]}; `cs_convergence.png`)", ""]
    md += ["| iterations | TV PSNR | TV time (s) | TV PSNR, sigpy default steps | ℓ1-wavelet PSNR | ℓ1-wavelet time (s) |",
           "|---|---|---|---|---|---|"]
    md += [
        f"| {r['iterations']} | {r['tv_psnr']:.2f} | {r['tv_time_s']:.2f} | {r['tv_sigpy_steps_psnr']:.2f} | "
        f"{r['l1wavelet_psnr']:.2f} | "
        f"{r['l1wavelet_time_s']:.2f} |"
        for r in conv
    ]
    (a.out / "cs_baselines.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
