"""How well does a prior generalise? ε-MSE on the held-out Colin27 slab against three sets of training slices.

The trainer's validation compares the held-out slab with 16 evenly spaced (unaugmented) training slices. That
ratio mixes two effects: memorisation (the network knows its training slices better) and content (the slab runs
through the ventricles, a busier part of the brain than the average training slice, which includes the simpler
top and bottom of the head). This script separates them by scoring the same prior, with the same fixed noise
(:func:`monai_ddpm_recon.training.eps_mse`), on

- ``train (trainer's 16)``: the subset the trainer logs, i.e. the issue's "training ε-MSE";
- ``train (all)``: every training slice;
- ``train (slab neighbours)``: the Colin27 training slices within ``--neighbours`` slices of the excluded
  gap around the slab — anatomy most like the slab, but seen in training.

A ratio held-out / neighbours near 1 with a larger held-out / all ratio means the gap is mostly content, not
over-fitting.

Usage::

    python -m monai_ddpm_recon.data.prepare --output bundles/ddpm_recon/runs/data --image-size 64
    python benchmarks/prior_generalisation.py --checkpoint bundles/ddpm_recon/models/model.pt \\
        --checkpoint bundles/ddpm_recon/runs/prior_v1.pt   # writes benchmarks/results/prior_generalisation.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from monai_ddpm_recon.priors import DDPMPrior
from monai_ddpm_recon.priors.ddpm import sha256_file
from monai_ddpm_recon.training import eps_mse, train_eval_indices
from monai_ddpm_recon.training.trainer import VAL_TIMESTEPS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
TIMESTEPS = VAL_TIMESTEPS  # the trainer's validation timesteps, so its logged ratio and this table agree
NUM_EVAL = 16  # the trainer's num_train_eval
VAL_SEED = 1234  # the trainer's val_seed


def training_subsets(split: dict, num_train: int, num_eval: int = NUM_EVAL, neighbours: int = 10) -> dict[str, list[int]]:
    """Indices into ``train.npy`` of the trainer's evaluation subset, all slices, and the slab's neighbours."""
    held = split["heldout"]
    lo = held["z_start"] - split["excluded_gap"] - neighbours
    hi = held["z_stop"] + split["excluded_gap"] + neighbours
    colin_z = split["train"]["colin27"]["z"]  # Colin27 slices come first in train.npy
    trainer_subset = train_eval_indices(num_train, num_eval)
    return {
        f"train (trainer's {len(trainer_subset)})": trainer_subset,
        "train (all)": list(range(num_train)),
        f"train (slab neighbours, ±{neighbours})": [i for i, z in enumerate(colin_z) if lo <= z < hi],
    }


def score(prior: DDPMPrior, images: torch.Tensor, seed: int = VAL_SEED) -> dict:
    per_t = eps_mse(prior.network, prior, images * 2 - 1, TIMESTEPS, seed=seed)
    return {"mean": float(np.mean(list(per_t.values()))), **{str(t): v for t, v in per_t.items()}}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", action="append", required=True, help="prior checkpoint(s) to score")
    p.add_argument("--data-dir", default=str(ROOT / "bundles" / "ddpm_recon" / "runs" / "data"))
    p.add_argument("--neighbours", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--noise-seeds", type=int, default=8, help="noise draws for the ratio's spread (first = the trainer's seed)"
    )
    p.add_argument("--out", default=str(RESULTS / "prior_generalisation.md"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    data = Path(a.data_dir)
    train = torch.from_numpy(np.load(data / "train.npy"))
    held = torch.from_numpy(np.load(data / "heldout.npy"))
    split = json.loads((data / "split.json").read_text())
    subsets = training_subsets(split, len(train), neighbours=a.neighbours)
    trainer_idx = train_eval_indices(len(train), NUM_EVAL)
    seeds = [VAL_SEED + 1000 * k for k in range(a.noise_seeds)]

    lines = [
        "# Prior generalisation: held-out slab vs training slices",
        "",
        "`python benchmarks/prior_generalisation.py " + " ".join(f"--checkpoint {c}" for c in a.checkpoint) + "`",
        "",
        f"ε-MSE of the EMA network at t ∈ {{{', '.join(map(str, TIMESTEPS))}}} (fixed noise), mean over timesteps; "
        f"{len(held)} held-out slices, {len(train)} training slices. Ratio = held-out / that set.",
        "",
        "| checkpoint (sha256) | set | slices | ε-MSE mean | t=50 | t=250 | t=500 | t=750 | held-out / set |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    spread = [
        "",
        f"Noise-draw spread of the trainer's ratio (held-out / trainer's {len(trainer_idx)} training slices): "
        f"{a.noise_seeds} noise seeds, {VAL_SEED} (the trainer's) + 1000·k.",
        "",
        f"| checkpoint (sha256) | ratio at seed {VAL_SEED} | mean | min | max |",
        "|---|---|---|---|---|",
    ]
    for ckpt in a.checkpoint:
        prior = DDPMPrior.from_checkpoint(ckpt)
        label = f"{Path(ckpt).name} ({sha256_file(ckpt)[:12]})"
        h = score(prior, held)
        train_scores = {name: score(prior, train[idx]) for name, idx in subsets.items()}
        rows = [("held-out slab", len(held), h)] + [(name, len(subsets[name]), t) for name, t in train_scores.items()]
        for name, n, s in rows:
            ratio = "" if s is h else f"{h['mean'] / s['mean']:.2f}"
            lines.append(
                f"| {label} | {name} | {n} | {s['mean']:.4f} | "
                + " | ".join(f"{s[str(t)]:.4f}" for t in TIMESTEPS)
                + f" | {ratio} |"
            )
            print(lines[-1], flush=True)
        # the trainer's seed was scored above: only the further draws are new work
        trainer = next(train_scores[name] for name, idx in subsets.items() if idx == trainer_idx)
        ratios = [h["mean"] / trainer["mean"]] + [
            score(prior, held, s)["mean"] / score(prior, train[trainer_idx], s)["mean"] for s in seeds[1:]
        ]
        spread.append(
            f"| {label} | {ratios[0]:.3f} | {np.mean(ratios):.3f} | {min(ratios):.3f} | {max(ratios):.3f} |"
        )
        print(spread[-1], flush=True)
    lines += spread
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
