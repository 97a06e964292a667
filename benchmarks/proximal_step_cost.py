"""Cost of one DiffPIR step against its parts: the network forward and the CG iterations' operator applications.

Times, in one process and one batch (the bundle's held-out slices, 8 coils, R = 8): a full ``DiffPIRSolver`` call of
``--nfe`` steps; ``--nfe`` network evaluations alone; and ``--nfe × cg_iterations`` applications of the normal
operator ``AᴴA`` (what the CG iterations cost). Reports seconds per step and the ratio
``step / (forward + CG operator)`` (target ≤ 1.15). Repeats ``--repeats`` times and keeps the fastest of each.

Usage::

    python benchmarks/proximal_step_cost.py --nfe 50 --slices 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monai_ddpm_recon.solvers import DiffPIRSolver  # noqa: E402
from monai_ddpm_recon.workflows import CaseSpec, load_cases, load_prior, stack_cases  # noqa: E402


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nfe", type=int, default=50)
    p.add_argument("--slices", type=int, default=8)
    p.add_argument("--cg-iterations", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    prior = load_prior(ROOT / "bundles/ddpm_recon/models/model.pt", torch.device("cpu"))
    spec = CaseSpec(example_data=str(ROOT / "bundles/ddpm_recon/data/colin27_heldout_axial_64.npy"),
                    slices=list(range(args.slices)), num_coils=8, acceleration=8)
    kspace, op = stack_cases(load_cases(spec, seed=0), torch.device("cpu"))
    solver = DiffPIRSolver(prior, num_steps=args.nfe, cg_iterations=args.cg_iterations)
    x = torch.randn(args.slices, 1, *prior.image_size)
    u = torch.randn(args.slices, 1, *prior.image_size, dtype=kspace.dtype)

    def forwards():
        with torch.no_grad():
            for t in solver.timesteps():
                prior.eps(x, t)

    def cg_ops():
        for _ in range(args.nfe * args.cg_iterations):
            op.normal(u)

    full = best_time(lambda: solver(kspace, op), args.repeats)
    fwd = best_time(forwards, args.repeats)
    cg = best_time(cg_ops, args.repeats)
    n = args.nfe
    print(f"{args.slices} slices of {prior.image_size}, 8 coils, {n} steps, {args.cg_iterations} CG iterations/step, "
          f"{args.threads} threads")
    print(f"step {full / n * 1e3:.1f} ms | forward {fwd / n * 1e3:.1f} ms | CG operator {cg / n * 1e3:.1f} ms | "
          f"ratio step / (forward + CG operator) = {full / (fwd + cg):.3f}")


if __name__ == "__main__":
    main()
