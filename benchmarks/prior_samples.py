"""Unconditional sample grids of a prior with the stochastic (η = 1) and the deterministic (η = 0) DDIM sampler.

Both grids start from the same seeded noise and use the same number of network evaluations, so the difference is the
sampler alone. With the shipped CPU-trained prior, η = 0 gives grainy, alike images and η = 1 clean, varied slices
(top of the head to the cerebellum): the trainer's sample grid therefore uses η = 1 (``sample_eta`` in train.json).

Usage::

    python benchmarks/prior_samples.py    # writes bundles/ddpm_recon/docs/prior_samples_64.png and ..._eta0.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from monai_ddpm_recon.priors import DDPMPrior
from monai_ddpm_recon.training import ddim_sample, save_grid

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "ddpm_recon"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=str(BUNDLE / "models" / "model.pt"))
    p.add_argument("--metadata", default=str(BUNDLE / "models" / "model_metadata.json"))
    p.add_argument("--out-dir", default=str(BUNDLE / "docs"))
    p.add_argument("--num-samples", type=int, default=16)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    prior = DDPMPrior.from_checkpoint(a.checkpoint, metadata_path=a.metadata)
    size = prior.image_size[0]
    for eta, suffix in ((1.0, ""), (0.0, "_eta0")):
        x = ddim_sample(prior.network, prior, a.num_samples, a.steps, a.seed, eta)
        path = Path(a.out_dir) / f"prior_samples_{size}{suffix}.png"
        save_grid(x, str(path))
        print(f"eta={eta:g}: {a.num_samples} samples, {a.steps} DDIM steps -> {path}")


if __name__ == "__main__":
    main()
