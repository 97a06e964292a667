"""DDPMPrior: ε/x0/score algebra, timestep handling, checkpoints (round trip, EMA, checksum, config mismatch)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from monai_ddpm_recon.priors import DDPMPrior, Prior, sha256_file

TINY = {"channels": [8, 8]}


class OracleNet(nn.Module):
    """Returns a stored noise tensor (the true ε) and records the timesteps it was called with."""

    def __init__(self, noise: torch.Tensor) -> None:
        super().__init__()
        self.noise = noise
        self.dummy = nn.Parameter(torch.zeros(()))
        self.seen_t = None

    def forward(self, x, t):
        self.seen_t = t
        return self.noise.to(x.dtype) + 0 * self.dummy


def tiny_prior(**kw) -> DDPMPrior:
    return DDPMPrior(image_size=16, channels=1, network_kwargs=dict(TINY), **kw)


@pytest.mark.parametrize("schedule", ["linear_beta", "cosine"])
def test_x0_and_score_from_true_noise_are_exact(schedule):
    x0 = torch.rand(3, 1, 16, 16, dtype=torch.float64) * 2 - 1
    noise = torch.randn_like(x0)
    prior = tiny_prior(schedule=schedule)
    prior.network = OracleNet(noise.float())
    for t in (0, 10, 500, 999):
        xt = prior.add_noise(x0, noise, t)
        # eps() runs the network in float32, so the reconstruction is exact up to float32 rounding of ε
        torch.testing.assert_close(prior.x0(xt, t), x0, atol=1e-6 / prior.abar(t, x0).sqrt().min().item(), rtol=0)
        a = prior.alphas_cumprod[t]
        torch.testing.assert_close(prior.score(xt, t), -noise / (1 - a).sqrt(), atol=1e-5, rtol=1e-5)


def test_eps_passes_long_batch_timesteps_and_accepts_int():
    prior = tiny_prior()
    noise = torch.randn(2, 1, 16, 16)
    net = OracleNet(noise)
    prior.network = net
    prior.eps(torch.zeros(2, 1, 16, 16), 7)
    assert net.seen_t.dtype == torch.long and net.seen_t.tolist() == [7, 7]
    prior.eps(torch.zeros(2, 1, 16, 16), torch.tensor([3, 900]))
    assert net.seen_t.tolist() == [3, 900]
    with pytest.raises(ValueError, match="t must lie"):
        prior.eps(torch.zeros(2, 1, 16, 16), 1000)
    with pytest.raises(ValueError, match="one per image"):
        prior.eps(torch.zeros(2, 1, 16, 16), torch.tensor([1, 2, 3]))


def test_schedule_matches_monai_scheduler():
    from monai.networks.schedulers import DDPMScheduler

    for schedule in ("linear_beta", "cosine"):
        prior = tiny_prior(schedule=schedule)
        ref = DDPMScheduler(**prior.scheduler_kwargs()).alphas_cumprod
        torch.testing.assert_close(prior.alphas_cumprod.float(), ref.float())


def test_is_a_prior_and_real_network_shapes():
    prior = tiny_prior().eval()
    assert isinstance(prior, Prior)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        out = prior.eps(x, 100)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    assert prior.device.type == "cpu" and prior.num_parameters() > 0


def test_bad_input_raises():
    prior = tiny_prior()
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        prior.eps(x, 5)
    with pytest.raises(ValueError, match="expects"):
        prior.eps(torch.zeros(1, 1, 32, 32), 5)
    with pytest.raises(TypeError, match="real"):
        prior.eps(torch.zeros(1, 1, 16, 16, dtype=torch.complex64), 5)
    with pytest.raises(ValueError, match="channels"):
        DDPMPrior(16, channels=3)
    with pytest.raises(ValueError, match="divisible"):
        DDPMPrior(18, network_kwargs={"channels": [8, 8, 8]})


def test_save_load_round_trip_prefers_ema(tmp_path):
    prior = tiny_prior(schedule="cosine").eval()
    ema = {k: v + 0.01 if v.is_floating_point() else v for k, v in prior.network.state_dict().items()}
    path, meta = tmp_path / "model.pt", tmp_path / "meta.json"
    digest = prior.save_checkpoint(path, ema_state=ema, extra={"note": "x"}, metadata_path=meta)
    assert digest == sha256_file(path) == json.loads(meta.read_text())["sha256"]
    x = torch.randn(2, 1, 16, 16)

    raw = DDPMPrior.from_checkpoint(path, expected_sha256=digest, use_ema=False)
    with torch.no_grad():
        torch.testing.assert_close(raw.eps(x, 300), prior.eps(x, 300))
    loaded = DDPMPrior.from_checkpoint(path, metadata_path=meta)
    assert loaded.schedule.value == "cosine" and loaded.image_size == (16, 16) and loaded.extra["note"] == "x"
    prior.network.load_state_dict(ema)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eps(x, 300), prior.eps(x, 300))

    # an EMA-only checkpoint (as shipped) gives its EMA weights whichever kind is preferred
    ema_only = tmp_path / "ema_only.pt"
    tiny_prior(schedule="cosine").save_checkpoint(ema_only, ema_state=ema, include_raw=False)
    with torch.no_grad():
        for use_ema in (True, False):
            torch.testing.assert_close(DDPMPrior.from_checkpoint(ema_only, use_ema=use_ema).eps(x, 300), prior.eps(x, 300))


def test_checksum_mismatch_and_missing_files_raise(tmp_path):
    prior = tiny_prior()
    path = tmp_path / "model.pt"
    prior.save_checkpoint(path)
    with pytest.raises(ValueError, match="checksum mismatch"):
        DDPMPrior.from_checkpoint(path, expected_sha256="0" * 64)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        DDPMPrior.from_checkpoint(tmp_path / "absent.pt")
    with pytest.raises(FileNotFoundError, match="metadata"):
        DDPMPrior.from_checkpoint(path, metadata_path=tmp_path / "absent.json")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a DDPM prior checkpoint"):
        DDPMPrior.from_checkpoint(tmp_path / "other.pt", verify_checksum=False)


def test_checkpoint_not_matching_configured_network_raises(tmp_path):
    path = tmp_path / "model.pt"
    tiny_prior().save_checkpoint(path)
    DDPMPrior.from_checkpoint(path, network_kwargs=dict(TINY))  # the configured network matches
    with pytest.raises(ValueError, match="does not match the configured network.*channels"):
        DDPMPrior.from_checkpoint(path, network_kwargs={"channels": [8, 16]})
    # weights that do not fit the network recorded in the checkpoint
    ckpt = torch.load(path, weights_only=True)
    ckpt["network_kwargs"]["channels"] = [16, 16]
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match="do not match the network"):
        DDPMPrior.from_checkpoint(path, verify_checksum=False)
