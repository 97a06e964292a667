"""Training workflow: train.json runs and resumes, EMA/lr maths, validation helpers, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from monai_ddpm_recon.priors import DDPMPrior
from monai_ddpm_recon.training import EMA, DDPMTrainer, RandomSliceAugment, SliceDataset, ddim_sample, eps_mse, save_grid

CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / "ddpm_recon" / "configs"


def _prepared(tmp_path, size=16, n_train=12, n_held=4):
    d = tmp_path / "data"
    d.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2).astype(np.float32)
    for name, n in (("train", n_train), ("heldout", n_held)):
        imgs = disc * rng.uniform(0.5, 1.0, (n, 1, size, size)).astype(np.float32)
        imgs /= imgs.reshape(n, -1).max(1)[:, None, None, None]
        np.save(d / f"{name}.npy", imgs)
    return d


def _run_bundle(**override):
    from monai.bundle import run

    run(config_file=str(CONFIGS / "train.json"), **override)


def _tiny_overrides(tmp_path, out):
    return {
        "data_dir": str(_prepared(tmp_path)),
        "image_size": 16,
        "channels": [8, 8],
        "output_dir": str(out),
        "batch_size": 4,
        "checkpoint_every": 2,
        "val_every": 3,
        "sample_every": 0,
        "num_samples": 4,
        "ddim_steps": 3,
        "warmup_steps": 2,
        "log_every": 1,
        "progress": False,
        "num_threads": 1,
    }


def _log(out):
    with open(out / "log.jsonl") as f:
        return [json.loads(line) for line in f]


def test_train_json_tiny_run_completes_and_resumes(tmp_path):
    out = tmp_path / "run"
    ov = _tiny_overrides(tmp_path, out)
    _run_bundle(max_steps=4, **ov)
    assert (out / "last.pt").is_file() and (out / "model.pt").is_file()
    assert (out / "samples_step000004.png").is_file()
    meta = json.loads((out / "model_metadata.json").read_text())
    assert meta["training"]["steps"] == 4 and np.isfinite(meta["training"]["final_heldout_eps_mse_mean"])
    prior = DDPMPrior.from_checkpoint(out / "model.pt", metadata_path=out / "model_metadata.json")
    assert prior.image_size == (16, 16)
    assert torch.load(out / "last.pt", weights_only=False)["step"] == 4

    from monai_ddpm_recon.training.publish import publish

    bundle = tmp_path / "bundle"
    published = publish(str(out), str(bundle))
    shipped = DDPMPrior.from_checkpoint(bundle / "models" / "model.pt", metadata_path=bundle / "models" / "model_metadata.json")
    assert published["sha256"] == meta["sha256"] and shipped.num_parameters() == prior.num_parameters()
    assert (bundle / "docs" / "prior_samples_64.png").is_file() and (bundle / "models" / "training_log.jsonl").is_file()
    with pytest.raises(FileExistsError):
        publish(str(out), str(bundle))
    # a second prior of the same bundle goes to its own folder (the patch prior: models/patch)
    meta2 = publish(str(out), str(bundle), models_subdir="models/patch", grid_name="prior_samples_patch.png")
    assert meta2["training_log"] == "models/patch/training_log.jsonl" and meta2["sample_grid"] == "docs/prior_samples_patch.png"
    assert (bundle / meta2["training_log"]).is_file() and (bundle / meta2["sample_grid"]).is_file()
    DDPMPrior.from_checkpoint(bundle / "models" / "patch" / "model.pt")  # verified against the metadata beside it

    ov["data_dir"] = str(tmp_path / "data")  # reuse the same prepared data
    _run_bundle(max_steps=6, **ov)
    log = _log(out)
    resumes = [r for r in log if r["kind"] == "resume"]
    assert len(resumes) == 1 and resumes[0]["step"] == 4
    train_steps = [r["step"] for r in log if r["kind"] == "train"]
    assert train_steps == sorted(train_steps) and train_steps[-1] == 6  # continued, did not restart at 0
    assert torch.load(out / "last.pt", weights_only=False)["step"] == 6
    val = [r for r in log if r["kind"] == "val"][-1]
    assert set(val["heldout_eps_mse"]) == {"50", "250", "500", "750"}


def test_resume_with_another_network_raises(tmp_path):
    out = tmp_path / "run"
    ov = _tiny_overrides(tmp_path, out)
    _run_bundle(max_steps=2, **ov)
    ov.update(channels=[8, 16], max_steps=3)
    with pytest.raises(Exception) as info:  # monai.bundle wraps the trainer's ValueError
        _run_bundle(**ov)
    chain, e = [], info.value
    while e is not None:
        chain.append(str(e))
        e = e.__cause__ or e.__context__
    assert any("cannot resume" in m for m in chain), chain


def test_init_checkpoint_starts_from_published_weights(tmp_path):
    first = tmp_path / "first"
    ov = _tiny_overrides(tmp_path, first)
    _run_bundle(max_steps=3, **ov)
    src = torch.load(first / "model.pt", weights_only=True)
    sha = json.loads((first / "model_metadata.json").read_text())["sha256"]

    # zero steps of fine-tuning would be a no-op, so inspect the trainer right after initialisation
    prior = DDPMPrior(16, network_kwargs={"channels": [8, 8]})
    ds = SliceDataset(np.load(tmp_path / "data" / "train.npy"), 16)
    held = np.load(tmp_path / "data" / "heldout.npy")
    trainer = DDPMTrainer(prior, ds, held, str(tmp_path / "ft0"), init_checkpoint=str(first / "model.pt"), init_sha256=sha)
    trainer.ema = EMA(prior.network, 0.998)
    trainer._init_from_checkpoint()
    for k, v in src["state_dict"].items():
        torch.testing.assert_close(prior.network.state_dict()[k], v)
    for k, v in src["ema_state_dict"].items():
        torch.testing.assert_close(trainer.ema.model.state_dict()[k], v)
    assert any(not torch.equal(src["state_dict"][k], src["ema_state_dict"][k]) for k in src["state_dict"])

    second = tmp_path / "second"
    ov2 = dict(ov, output_dir=str(second), data_dir=str(tmp_path / "data"))
    _run_bundle(max_steps=2, init_checkpoint=str(first / "model.pt"), init_sha256=sha, **ov2)
    log = _log(second)
    assert [r["kind"] for r in log][:2] == ["init", "start"] and all(r["kind"] != "resume" for r in log)
    meta = json.loads((second / "model_metadata.json").read_text())
    assert meta["training"]["initialised_from"]["sha256"] == sha and meta["training"]["steps"] == 2
    cfg = json.loads((CONFIGS / "train.json").read_text())["augment"]
    expected = RandomSliceAugment(**{k: v for k, v in cfg.items() if k != "_target_"}).describe()
    assert meta["augmentation"] == expected  # provenance is written from the augmentation actually configured

    from monai_ddpm_recon.training.publish import publish

    bundle = tmp_path / "bundle"
    with pytest.raises(ValueError, match="started from"):
        publish(str(second), str(bundle), parent_metadata=str(second / "model_metadata.json"))
    published = publish(str(second), str(bundle), parent_metadata=str(first / "model_metadata.json"), parent_log=str(first / "log.jsonl"))
    parent = published["training"]["initialised_from"]
    assert parent["sha256"] == sha and parent["training"]["steps"] == 3
    assert parent["training_log"] == f"models/training_log_{sha[:12]}.jsonl"
    assert (bundle / parent["training_log"]).read_text() == (first / "log.jsonl").read_text()
    # a third stage fine-tuned from the published second one keeps both ancestors' logs, published in place
    third = tmp_path / "third"
    sha2 = published["sha256"]
    _run_bundle(max_steps=1, init_checkpoint=str(bundle / "models" / "model.pt"), init_sha256=sha2, **dict(ov2, output_dir=str(third)))
    log2 = (bundle / "models" / "training_log.jsonl").read_text()
    meta3 = publish(str(third), str(bundle), overwrite=True, parent_metadata=str(bundle / "models" / "model_metadata.json"),
                    parent_log=str(bundle / "models" / "training_log.jsonl"))
    p2 = meta3["training"]["initialised_from"]
    p1 = p2["training"]["initialised_from"]
    assert (p2["sha256"], p1["sha256"]) == (sha2, sha)
    assert (bundle / p2["training_log"]).read_text() == log2
    assert (bundle / p1["training_log"]).read_text() == (first / "log.jsonl").read_text()
    assert (bundle / "models" / "training_log.jsonl").read_text() == (third / "log.jsonl").read_text()
    assert json.loads((bundle / "models" / "model_metadata.json").read_text()) == meta3
    with pytest.raises(ValueError, match="not initialised from a checkpoint"):
        publish(str(first), str(tmp_path / "bundle2"), parent_metadata=str(first / "model_metadata.json"))

    with pytest.raises(ValueError, match="checksum mismatch"):
        DDPMTrainer(prior, ds, held, str(tmp_path / "ft1"), init_checkpoint=str(first / "model.pt"), init_sha256="0" * 64)._init_from_checkpoint()
    other = DDPMPrior(16, network_kwargs={"channels": [8, 16]})
    with pytest.raises(ValueError, match="does not match the configured network"):
        DDPMTrainer(other, ds, held, str(tmp_path / "ft2"), init_checkpoint=str(first / "model.pt"))._init_from_checkpoint()
    with pytest.raises(FileNotFoundError, match="init_checkpoint"):
        DDPMTrainer(prior, ds, held, str(tmp_path / "ft3"), init_checkpoint=str(tmp_path / "missing.pt"))


def test_trainer_rejects_bad_data(tmp_path):
    prior = DDPMPrior(16, network_kwargs={"channels": [8, 8]})
    ds = SliceDataset(np.random.rand(4, 1, 16, 16).astype(np.float32), 16)
    with pytest.raises(ValueError, match="heldout_images"):
        DDPMTrainer(prior, ds, np.random.rand(2, 1, 8, 8), str(tmp_path))
    held = np.random.rand(2, 1, 16, 16)
    held[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        DDPMTrainer(prior, ds, held, str(tmp_path))
    with pytest.raises(ValueError, match="the prior expects"):
        DDPMTrainer(prior, SliceDataset(np.random.rand(4, 1, 8, 8).astype(np.float32)), np.random.rand(2, 1, 16, 16), str(tmp_path))
    with pytest.raises(ValueError, match="empty"):
        SliceDataset(np.zeros((0, 1, 16, 16)))
    with pytest.raises(ValueError, match="empty"):
        DDPMTrainer(prior, torch.utils.data.TensorDataset(torch.zeros(0, 1, 16, 16)), np.random.rand(2, 1, 16, 16), str(tmp_path))
    # switches given on the command line arrive as strings: "false" must switch off, anything unclear is refused
    held = np.random.rand(2, 1, 16, 16)
    tr = DDPMTrainer(prior, ds, held, str(tmp_path), progress="false", distributed="false", amp="False", resume="true")
    assert (tr.progress, tr.distributed, tr.amp, tr.resume) == (False, False, False, True)
    with pytest.raises(ValueError, match="progress must be true or false"):
        DDPMTrainer(prior, ds, held, str(tmp_path), progress="off-ish")


def test_lr_schedule_and_ema_math(tmp_path):
    prior = DDPMPrior(16, network_kwargs={"channels": [8, 8]})
    ds = SliceDataset(np.random.rand(4, 1, 16, 16).astype(np.float32), 16)
    tr = DDPMTrainer(prior, ds, np.random.rand(2, 1, 16, 16), str(tmp_path), max_steps=110, lr=1e-3, warmup_steps=10,
                     min_lr_ratio=0.1)
    assert tr.lr_at(0) == pytest.approx(1e-4) and tr.lr_at(9) == pytest.approx(1e-3)
    assert tr.lr_at(60) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert tr.lr_at(110) == pytest.approx(1e-4)
    tr.max_time_s = 100.0  # time budget half spent at step 10 -> the cosine is already half way
    assert tr.lr_at(10, elapsed_s=50.0) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert tr.lr_at(10, elapsed_s=0.0) == pytest.approx(1e-3)

    net = nn.Linear(2, 1)
    ema = EMA(net, decay=0.9)
    before = ema.model.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)  # first update uses min(0.9, 2/11)
    d = 2 / 11
    torch.testing.assert_close(ema.model.weight, d * before + (1 - d) * net.weight.detach())
    with pytest.raises(ValueError):
        EMA(net, decay=1.0)


def test_eps_mse_of_zero_predictor_is_noise_power_and_repeatable(tmp_path):
    class Zero(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(()))

        def forward(self, x, t):
            return torch.zeros_like(x) + self.p

    prior = DDPMPrior(16, network_kwargs={"channels": [8, 8]})
    imgs = torch.rand(8, 1, 16, 16) * 2 - 1
    a = eps_mse(Zero(), prior, imgs, [10, 900], seed=3)
    b = eps_mse(Zero(), prior, imgs, [10, 900], seed=3)
    assert a == b
    for t, v in a.items():  # a zero prediction scores the mean square of the fixed validation noise
        noise = torch.randn(imgs.shape, generator=torch.Generator().manual_seed(3 + t))
        assert v == pytest.approx(float((noise**2).mean()), rel=1e-5)
    save_grid(imgs[:5], str(tmp_path / "g.png"))
    from PIL import Image

    assert Image.open(tmp_path / "g.png").size == (3 * 17 + 1, 2 * 17 + 1)


@pytest.mark.slow
def test_multi_gpu_config_two_processes_gloo(tmp_path):
    import subprocess
    import sys

    data = _prepared(tmp_path)
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
        "-m", "monai.bundle", "run",
        "--config_file", f"['{CONFIGS / 'train.json'}','{CONFIGS / 'multi_gpu_train.json'}']",
        "--data_dir", str(data), "--image_size", "16", "--channels", "[8,8]", "--output_dir", str(out),
        "--max_steps", "3", "--batch_size", "2", "--checkpoint_every", "2", "--val_every", "0",
        "--sample_every", "0", "--num_samples", "2", "--ddim_steps", "2", "--num_threads", "1", "--max_time_s", "600",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    log = _log(out)
    start = [r for r in log if r["kind"] == "start"]
    assert len(start) == 1 and start[0]["world_size"] == 2  # only rank 0 logs
    assert torch.load(out / "last.pt", weights_only=False)["step"] == 3
    assert (out / "model.pt").is_file()


class _GaussianEps(nn.Module):
    """Exact ε-network for data ~ N(0, s² I): ε*(x_t, t) = sqrt(1-ᾱ_t) x_t / (ᾱ_t s² + 1 - ᾱ_t)."""

    def __init__(self, abar: torch.Tensor, s: float):
        super().__init__()
        self.register_buffer("abar", abar.float())
        self.s2 = s * s
        self.dummy = nn.Parameter(torch.zeros(()))  # ddim_sample reads the device from the parameters

    def forward(self, x, t):
        a = self.abar[t].view(-1, 1, 1, 1)
        return (1 - a).sqrt() * x / (a * self.s2 + 1 - a)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_sample_draws_from_the_data_distribution(eta):
    prior = DDPMPrior(16, network_kwargs={"channels": [8, 8]})
    net = _GaussianEps(prior.alphas_cumprod, s=0.3)
    x = ddim_sample(net, prior, num_samples=32, num_inference_steps=1000, seed=3, eta=eta)
    assert x.shape == (32, 1, 16, 16)
    assert abs(float(x.std()) - 0.3) < 0.012 and abs(float(x.mean())) < 0.01
    torch.testing.assert_close(ddim_sample(net, prior, 32, 1000, seed=3, eta=eta), x)  # seeded
    # strided sampling is a discretisation: with 50 steps both samplers under-disperse (η = 1 more, since the
    # step variance β̃ ignores the uncertainty of x0), and the error shrinks as the stride does
    coarse = ddim_sample(net, prior, 32, 50, seed=3, eta=eta)
    assert abs(float(coarse.std()) - 0.3) > abs(float(x.std()) - 0.3) and float(coarse.std()) < 0.3


def test_ddim_sample_eta_changes_the_path_not_the_start():
    prior = DDPMPrior(16, network_kwargs={"channels": [8, 8]})
    net = _GaussianEps(prior.alphas_cumprod, s=0.3)
    det, sto = (ddim_sample(net, prior, 4, 10, seed=0, eta=e) for e in (0.0, 1.0))
    assert not torch.allclose(det, sto)
    # η = 0 is the deterministic map x_T -> x_0; for this linear ε-network it scales x_T by a constant
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn((4, 1, 16, 16), generator=g)
    ratio = det / x_T
    assert float(ratio.std()) < 1e-4 * float(ratio.abs().mean())


def test_train_eval_indices_spread_over_the_dataset():
    from monai_ddpm_recon.training import train_eval_indices

    idx = train_eval_indices(222, 16)
    assert len(idx) == 16 and idx[0] == 0 and idx == sorted(set(idx)) and 222 - idx[-1] <= -(-222 // 16)  # evenly spread to the end
    assert train_eval_indices(5, 16) == [0, 1, 2, 3, 4] and train_eval_indices(0, 16) == []
