"""ε-MSE of priors on whole 64² views of the tuning slices: how well a patch prior models the 64² task's images.

The 64² held-out slab's tuning slices (1 and 15; never the evaluation slices 0/4/8/12), noised at t = 50 / 250 / 500 /
750 with 8 seeded noise draws each; every prior predicts ε of the whole 64² image (a patch prior with its default
tiling). Lower is better; the whole-image 64² prior is the reference.

Usage::

    python benchmarks/full_view_eps.py bundles/ddpm_recon/models/model.pt stage1.pt stage2.pt \\
        bundles/ddpm_recon/models/patch/model.pt --expected-sha256 6e3ba084… 7c2ac0b4… b64e6638… 7a410e89…
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monai_ddpm_recon.training.trainer import VAL_TIMESTEPS as TIMESTEPS  # noqa: E402  (the trainer's validation t)
from monai_ddpm_recon.workflows import load_prior  # noqa: E402

DATA_64 = ROOT / "bundles/ddpm_recon/data/colin27_heldout_axial_64.npy"


def full_view_eps_mse(prior, images: torch.Tensor, noise: torch.Tensor) -> list[float]:
    """Mean ε-MSE at each of ``TIMESTEPS`` over the noise draws ``noise (D, *images.shape)``."""
    out = []
    for t in TIMESTEPS:
        with torch.no_grad():
            errs = [float(((prior.eps(prior.add_noise(images, n, t), t) - n) ** 2).mean()) for n in noise]
        out.append(float(np.mean(errs)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--expected-sha256", nargs="+", default=None, help="one per checkpoint (else the records beside them)")
    ap.add_argument("--slices", type=int, nargs="+", default=[1, 15])
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/patch_prior/full_view_eps.md"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    shas = args.expected_sha256 or [None] * len(args.checkpoints)
    if len(shas) != len(args.checkpoints):
        sys.exit(f"--expected-sha256 has {len(shas)} values for {len(args.checkpoints)} checkpoints")
    data = torch.from_numpy(np.load(DATA_64)).float().reshape(-1, 1, 64, 64)[args.slices] * 2 - 1
    noise = torch.randn((args.draws, *data.shape), generator=torch.Generator().manual_seed(0))
    rows = []
    for ckpt, sha in zip(args.checkpoints, shas):
        prior = load_prior(ckpt, torch.device("cpu"), expected_sha256=sha)
        mse = full_view_eps_mse(prior, data, noise)
        rows.append(f"| {Path(ckpt).name} ({type(prior).__name__}) | " + " | ".join(f"{v:.4f}" for v in mse) + f" | {np.mean(mse):.4f} |")
        print(rows[-1], flush=True)
    lines = ["# ε-MSE on whole 64² views (tuning slices " + ", ".join(map(str, args.slices)) + f", {args.draws} noise draws)", "",
             "Command: `python benchmarks/full_view_eps.py " + " ".join(sys.argv[1:]) + "`", "",
             "| prior | " + " | ".join(f"t = {t}" for t in TIMESTEPS) + " | mean |", "|---|" + "---|" * (len(TIMESTEPS) + 1), *rows, ""]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
