"""A plain training loop for :class:`~monai_ddpm_recon.priors.DDPMPrior` (single process or DDP).

ε-prediction objective of Ho et al. (2020): ``E_{x0, ε, t} ||ε - ε_θ(sqrt(ᾱ_t) x0 + sqrt(1-ᾱ_t) ε, t)||²`` with
``t ~ U{0..T-1}``. AdamW, linear warm-up + cosine decay, gradient clipping, EMA of the weights, AMP on CUDA,
checkpoint every N steps with resume from the last one, a JSON-lines log, validation (ε-MSE at fixed timesteps
with fixed noise on held-out and on training slices) and a PNG grid of unconditional DDIM samples
(Song et al., "Denoising Diffusion Implicit Models", ICLR 2021) from the EMA network.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..priors.ddpm import DDPMPrior, normalise_network_kwargs, sha256_file
from ..utils.validation import check_bool
from .ema import EMA

VAL_TIMESTEPS = (50, 250, 500, 750)  # timesteps of the validation ε-MSE (low, mid and high noise)


def _json_default(o):
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, (torch.Tensor, np.ndarray)):
        return o.tolist()
    return str(o)


@torch.no_grad()
def eps_mse(
    network: nn.Module,
    prior: DDPMPrior,
    images: torch.Tensor,
    timesteps: Sequence[int],
    seed: int = 1234,
    batch_size: int = 16,
) -> dict[int, float]:
    """ε-MSE of ``network`` on ``images`` ``(N, C + K, S, S)`` at each fixed timestep.

    The first ``C = prior.channels`` channels are the image in ``[-1, 1]``; the ``K = prior.condition_channels``
    channels after them (e.g. a patch prior's coordinates) are passed to the network unchanged.
    The noise for timestep ``t`` comes from a generator seeded with ``seed + t`` (same noise at every call),
    so successive validations are comparable.
    """
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    out = {}
    for t in timesteps:
        g = torch.Generator().manual_seed(int(seed) + int(t))
        C = prior.channels
        noise = torch.randn((images.shape[0], C, *images.shape[2:]), generator=g)
        se, n = 0.0, 0
        for i in range(0, images.shape[0], batch_size):
            x0, cond = images[i : i + batch_size, :C], images[i : i + batch_size, C:]
            eps = noise[i : i + batch_size]
            xt = network_input(prior.add_noise(x0, eps, int(t)), cond).to(device)
            tt = torch.full((x0.shape[0],), int(t), dtype=torch.long, device=device)
            pred = network(xt, tt).float().cpu()
            se += float(((pred - eps) ** 2).sum())
            n += eps.numel()
        out[int(t)] = se / n
    network.train(was_training)
    return out


def network_input(x_t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """The network's input: the noisy image followed by the condition channels (none for a whole-image prior)."""
    return torch.cat([x_t, cond], 1) if cond.shape[1] else x_t


def train_eval_indices(num_train: int, num_eval: int) -> list[int]:
    """The training-set indices the trainer's validation scores: ``min(num_eval, num_train)`` evenly spread ones."""
    n = min(int(num_eval), int(num_train))
    return [int(i * num_train / n) for i in range(n)]


@torch.no_grad()
def ddim_sample(
    network: nn.Module,
    prior: DDPMPrior,
    num_samples: int = 16,
    num_inference_steps: int = 50,
    seed: int = 0,
    eta: float = 1.0,
    size: Sequence[int] | None = None,
) -> torch.Tensor:
    """Unconditional DDIM samples with MONAI's ``DDIMScheduler``: ``(N, C, H, W)`` in ``[-1, 1]``, CPU.

    ``eta`` is DDIM's stochasticity (Song et al. 2021, eq. 16): 1 is strided ancestral (DDPM-like) sampling, 0 the
    deterministic ODE-like sampler. The default is 1 because with a small, CPU-trained prior the deterministic
    sampler turns its low-noise ε errors into grain, while the injected noise of ``eta = 1`` corrects them (compare
    ``bundles/ddpm_recon/docs/prior_samples_64_eta0.png`` with ``prior_samples_64.png``).

    ``size`` is the ``(H, W)`` of the samples (default: the prior's ``image_size``; a patch prior accepts any);
    ε comes from ``prior.with_network(network)``, so a patch prior tiles the whole image as at inference.
    """
    from monai.networks.schedulers import DDIMScheduler

    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    sched = DDIMScheduler(**prior.scheduler_kwargs(), clip_sample=True)
    sched.set_timesteps(num_inference_steps)
    g = torch.Generator().manual_seed(int(seed))
    view = prior.with_network(network)
    size = tuple(int(s) for s in (size or prior.image_size))
    x = torch.randn((num_samples, prior.channels, *size), generator=g).to(device)
    step_noise = torch.Generator(device=device).manual_seed(int(seed) + 1)  # MONAI draws the η noise on x's device
    for t in sched.timesteps:
        tt = torch.full((num_samples,), int(t), dtype=torch.long, device=device)
        x, _ = sched.step(view.eps(x, tt).float(), int(t), x, eta=float(eta), generator=step_noise)
    network.train(was_training)
    return x.clamp(-1, 1).cpu()


def save_grid(images: torch.Tensor, path: str, nrow: int | None = None) -> None:
    """Save ``(N, 1, H, W)`` images in ``[-1, 1]`` as one grayscale PNG grid (1-pixel black borders)."""
    from PIL import Image

    x = ((images[:, 0].clamp(-1, 1) + 1) / 2).numpy()
    n, h, w = x.shape
    nrow = nrow or int(math.ceil(math.sqrt(n)))
    ncol = int(math.ceil(n / nrow))
    grid = np.zeros((ncol * (h + 1) + 1, nrow * (w + 1) + 1), np.float32)
    for k in range(n):
        r, c = divmod(k, nrow)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = x[k]
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    Image.fromarray((grid * 255).round().astype(np.uint8)).save(path)


def hardware_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), {os.cpu_count()} cores"


class DDPMTrainer:
    """Train a :class:`DDPMPrior` on a dataset of ``(C, S, S)`` tensors in ``[-1, 1]``.

    Args:
        prior: the prior (its ``network`` is trained in place).
        train_dataset: yields ``(channels + K, S, S)`` float tensors: the image in ``[-1, 1]``, then the
            ``K = prior.condition_channels`` condition channels (a patch prior's coordinates); a dataset with a
            ``collate`` method batches with it (e.g. :class:`~monai_ddpm_recon.training.PatchDataset`).
        heldout_images: ``(M, channels + K, S, S)``, the image channels in ``[0, 1]`` (magnitude convention), for
            validation.
        output_dir: where ``last.pt``, ``log.jsonl``, sample grids and the exported prior go.
        max_steps: optimiser steps in total (a resumed run continues up to this number).
        batch_size: per-process batch size.
        lr, weight_decay, adam_betas: AdamW settings; ``warmup_steps`` linear warm-up, then cosine decay to
            ``min_lr_ratio * lr`` at ``max_steps``.
        ema_decay: EMA decay of the weights.
        grad_clip: max global gradient norm (0 disables).
        amp: mixed precision on CUDA (bf16 where supported, else fp16 with a grad scaler); ignored on CPU.
        checkpoint_every, val_every, sample_every, log_every: intervals in steps (0 disables).
        val_timesteps: timesteps of the ε-MSE validation; ``val_seed`` seeds its noise.
        num_train_eval: number of (unaugmented) training images also evaluated, for the train/held-out ratio.
        num_samples, ddim_steps, sample_seed, sample_eta: the DDIM sample grid (``eta`` as in :func:`ddim_sample`).
        sample_size: ``(H, W)`` of the grid's samples (default: the prior's ``image_size``).
        device: "auto", "cpu", "cuda" or a torch device.
        distributed: use torch.distributed (``torchrun``): DDP, DistributedSampler, rank-0 logging/checkpoints.
        max_time_s: stop (checkpoint and export) once this much training wall time has elapsed, summed over
            resumed runs; the metadata records the steps actually run.
        export_path: prior checkpoint written at the end (EMA weights; raw ones too unless ``export_ema_only``).
        export_metadata: json written next to the export with the sha256 and provenance.
        provenance: json-serialisable dict added to the export metadata (data, split, ...).
        resume: continue from ``output_dir/last.pt`` when it exists.
        init_checkpoint: a prior checkpoint (:meth:`DDPMPrior.save_checkpoint`, e.g. the shipped
            ``models/model.pt``) to start from: its raw weights initialise the network and its EMA weights the
            EMA (either stands in for the other when only one is stored); optimiser and step start fresh. It must
            match the configured network and image size. Ignored when resuming from ``last.pt``.
        init_sha256: expected sha256 of ``init_checkpoint`` (checked before loading), or None.
        num_threads: ``torch.set_num_threads`` for CPU training (None leaves it).
    """

    def __init__(
        self,
        prior: DDPMPrior,
        train_dataset: Dataset,
        heldout_images: np.ndarray | torch.Tensor,
        output_dir: str,
        max_steps: int = 1000,
        batch_size: int = 16,
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        adam_betas: Sequence[float] = (0.9, 0.999),
        warmup_steps: int = 100,
        min_lr_ratio: float = 0.1,
        ema_decay: float = 0.999,
        grad_clip: float = 1.0,
        amp: bool = True,
        checkpoint_every: int = 250,
        val_every: int = 250,
        sample_every: int = 1000,
        log_every: int = 10,
        val_timesteps: Sequence[int] = VAL_TIMESTEPS,
        val_seed: int = 1234,
        num_train_eval: int = 16,
        num_samples: int = 16,
        ddim_steps: int = 50,
        sample_seed: int = 0,
        sample_eta: float = 1.0,
        sample_size: Sequence[int] | None = None,
        seed: int = 0,
        num_workers: int = 0,
        device: str | torch.device = "auto",
        distributed: bool = False,
        max_time_s: float | None = None,
        export_path: str | None = None,
        export_metadata: str | None = None,
        export_ema_only: bool = False,
        provenance: dict | None = None,
        resume: bool = True,
        progress: bool = True,
        num_threads: int | None = None,
        init_checkpoint: str | None = None,
        init_sha256: str | None = None,
    ) -> None:
        if int(max_steps) < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps!r}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}.")
        if len(train_dataset) == 0:
            raise ValueError("train_dataset is empty: nothing to train on.")
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.prior = prior
        self.train_dataset = train_dataset
        held = torch.as_tensor(np.asarray(heldout_images, dtype=np.float32))
        C = prior.channels
        expected = (C + getattr(prior, "condition_channels", 0), *prior.image_size)
        if held.ndim != 4 or tuple(held.shape[1:]) != expected or held.shape[0] == 0:
            raise ValueError(f"heldout_images must be (M>0, {expected[0]}, {expected[1]}, {expected[2]}), got {tuple(held.shape)}.")
        if not bool(torch.isfinite(held).all()):
            raise ValueError("heldout_images contains NaN/Inf values.")
        self.heldout = torch.cat([held[:, :C] * 2 - 1, held[:, C:]], 1)
        sample = train_dataset[0]
        if tuple(sample.shape) != expected:
            raise ValueError(f"train_dataset yields images of shape {tuple(sample.shape)}, the prior expects {expected}.")
        self.output_dir = str(output_dir)
        self.max_steps = int(max_steps)
        self.batch_size = int(batch_size)
        self.lr, self.weight_decay, self.adam_betas = float(lr), float(weight_decay), tuple(adam_betas)
        self.warmup_steps, self.min_lr_ratio = int(warmup_steps), float(min_lr_ratio)
        self.ema_decay, self.grad_clip, self.amp = float(ema_decay), float(grad_clip), check_bool("amp", amp)
        self.checkpoint_every, self.val_every = int(checkpoint_every), int(val_every)
        self.sample_every, self.log_every = int(sample_every), int(log_every)
        self.val_timesteps = [int(t) for t in val_timesteps]
        self.val_seed, self.num_train_eval = int(val_seed), int(num_train_eval)
        self.num_samples, self.ddim_steps, self.sample_seed = int(num_samples), int(ddim_steps), int(sample_seed)
        self.sample_eta = float(sample_eta)
        self.sample_size = None if sample_size is None else tuple(int(s) for s in sample_size)
        self.seed, self.num_workers = int(seed), int(num_workers)
        self.device_arg, self.distributed = device, check_bool("distributed", distributed)
        self.max_time_s = None if max_time_s in (None, 0) else float(max_time_s)
        self.export_path, self.export_metadata, self.export_ema_only = export_path, export_metadata, check_bool("export_ema_only", export_ema_only)
        self.provenance = provenance or {}
        self.resume, self.progress = check_bool("resume", resume), check_bool("progress", progress)
        self.init_checkpoint, self.init_sha256 = (str(init_checkpoint) if init_checkpoint else None), init_sha256
        self.init_digest: str | None = None  # sha256 of init_checkpoint, set once it has been loaded
        if self.init_checkpoint is not None and not os.path.isfile(self.init_checkpoint):
            raise FileNotFoundError(f"init_checkpoint not found: {self.init_checkpoint}.")

    # --- setup -------------------------------------------------------------------------------------------------
    def _setup_distributed(self) -> None:
        import torch.distributed as dist

        self.rank, self.world_size, self.local_rank = 0, 1, 0
        if not self.distributed:
            return
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend=backend)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))

    def _device(self) -> torch.device:
        d = self.device_arg
        if d in (None, "auto"):
            d = "cuda" if torch.cuda.is_available() else "cpu"
        d = torch.device(d)
        if d.type == "cuda" and self.distributed and d.index is None:
            d = torch.device("cuda", self.local_rank)
        if d.type == "cuda":
            torch.cuda.set_device(d)
        return d

    def lr_at(self, step: int, elapsed_s: float | None = None) -> float:
        """Learning rate at optimiser step ``step`` (0-based): linear warm-up then cosine decay.

        With ``max_time_s`` set, the decay follows whichever budget is closer to exhaustion: the fraction of
        ``max_steps`` done or the fraction of ``max_time_s`` elapsed, so a run stopped by time still ends at the
        minimum learning rate.
        """
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, self.max_steps - self.warmup_steps)
        frac = (step - self.warmup_steps) / span
        if self.max_time_s is not None and elapsed_s is not None:
            frac = max(frac, elapsed_s / self.max_time_s)
        frac = min(1.0, frac)
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _log(self, record: dict) -> None:
        if not self.is_main:
            return
        with open(os.path.join(self.output_dir, "log.jsonl"), "a") as f:
            f.write(json.dumps(record, default=_json_default) + "\n")

    # --- checkpoints -------------------------------------------------------------------------------------------
    def checkpoint_path(self) -> str:
        return os.path.join(self.output_dir, "last.pt")

    def _save(self, step: int, elapsed: float) -> None:
        if not self.is_main:
            return
        state = {
            "step": step,
            "elapsed_s": elapsed,
            "network_kwargs": self.prior.network_kwargs,
            "prior_config": self.prior.config(),
            "network": self.prior.network.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng_cpu": torch.get_rng_state(),
        }
        tmp = self.checkpoint_path() + ".tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint_path())

    def _load(self) -> tuple[int, float]:
        path = self.checkpoint_path()
        if not (self.resume and os.path.isfile(path)):
            return 0, 0.0
        state = torch.load(path, map_location="cpu", weights_only=True)
        saved = normalise_network_kwargs(state["network_kwargs"])
        if saved != self.prior.network_kwargs or state["prior_config"]["image_size"] != list(self.prior.image_size):
            raise ValueError(
                f"cannot resume from {path}: it was trained with network {saved} at image size "
                f"{state['prior_config']['image_size']}, but the configured prior is {self.prior.network_kwargs} at "
                f"{list(self.prior.image_size)}. Use another output_dir or resume=False."
            )
        self.prior.network.load_state_dict(state["network"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        return int(state["step"]), float(state.get("elapsed_s", 0.0))

    def _init_from_checkpoint(self) -> None:
        """Load ``init_checkpoint``'s weights into the network (raw) and the EMA (EMA weights)."""
        kw = {k: v for k, v in self.prior.network_kwargs.items() if k not in ("in_channels", "out_channels", "spatial_dims")}
        raw = DDPMPrior.from_checkpoint(self.init_checkpoint, self.init_sha256, network_kwargs=kw, use_ema=False)
        ema = DDPMPrior.from_checkpoint(self.init_checkpoint, self.init_sha256, network_kwargs=kw, use_ema=True)
        if type(raw) is not type(self.prior):
            raise ValueError(
                f"init_checkpoint {self.init_checkpoint} holds a {raw.prior_class!r} prior, the configured prior is "
                f"{self.prior.prior_class!r}."
            )
        if tuple(raw.image_size) != tuple(self.prior.image_size) or raw.channels != self.prior.channels:
            raise ValueError(
                f"init_checkpoint {self.init_checkpoint} models {raw.channels}-channel {tuple(raw.image_size)} images, "
                f"the configured prior {self.prior.channels}-channel {tuple(self.prior.image_size)}."
            )
        if raw.config()["schedule_kwargs"] != self.prior.config()["schedule_kwargs"]:
            raise ValueError(
                f"init_checkpoint {self.init_checkpoint} uses the noise schedule {raw.config()['schedule_kwargs']}, "
                f"the configured prior {self.prior.config()['schedule_kwargs']}."
            )
        self.prior.network.load_state_dict(raw.network.state_dict())
        self.ema.model.load_state_dict(ema.network.state_dict())
        self.ema.num_updates = 10**9  # the loaded EMA is already warm: no decay warm-up that would discard it
        self.init_digest = sha256_file(self.init_checkpoint)

    # --- validation --------------------------------------------------------------------------------------------
    def validate(self, step: int) -> dict:
        net = self.ema.model
        held = eps_mse(net, self.prior, self.heldout, self.val_timesteps, self.val_seed)
        train_imgs = torch.stack(
            [self._train_item(j) for j in train_eval_indices(len(self.train_dataset), self.num_train_eval)]
        )
        train = eps_mse(net, self.prior, train_imgs, self.val_timesteps, self.val_seed)
        rec = {
            "kind": "val",
            "step": step,
            "heldout_eps_mse": held,
            "train_eps_mse": train,
            "heldout_eps_mse_mean": float(np.mean(list(held.values()))),
            "train_eps_mse_mean": float(np.mean(list(train.values()))),
        }
        rec["ratio_heldout_over_train"] = rec["heldout_eps_mse_mean"] / max(rec["train_eps_mse_mean"], 1e-12)
        self._log(rec)
        return rec

    def _train_item(self, j: int) -> torch.Tensor:
        """Training image ``j`` without augmentation."""
        ds = self.train_dataset
        aug = getattr(ds, "augment", None)
        try:
            if aug is not None:
                ds.augment = None
            return ds[j]
        finally:
            if aug is not None:
                ds.augment = aug

    def sample_grid(self, step: int) -> str:
        x = ddim_sample(
            self.ema.model, self.prior, self.num_samples, self.ddim_steps, self.sample_seed, self.sample_eta, self.sample_size
        )
        path = os.path.join(self.output_dir, f"samples_step{step:06d}.png")
        save_grid(x, path)
        self._log({"kind": "samples", "step": step, "path": path, "ddim_steps": self.ddim_steps, "eta": self.sample_eta})
        return path

    # --- main loop ---------------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Train up to ``max_steps`` (or ``max_time_s``), then export; returns a summary dict (rank 0)."""
        from tqdm import tqdm

        self._setup_distributed()
        device = self._device()
        os.makedirs(self.output_dir, exist_ok=True)
        torch.manual_seed(self.seed + self.rank)
        self.prior.to(device).train()
        self.ema = EMA(self.prior.network, self.ema_decay)
        self.optimizer = torch.optim.AdamW(
            self.prior.network.parameters(), lr=self.lr, weight_decay=self.weight_decay, betas=self.adam_betas
        )
        use_amp = self.amp and device.type == "cuda"
        amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if use_amp and amp_dtype == torch.float16 else None
        step, elapsed = self._load()
        if step > 0:
            self._log({"kind": "resume", "step": step, "elapsed_s": elapsed})
        elif self.init_checkpoint is not None:
            self._init_from_checkpoint()
            self._log({"kind": "init", "checkpoint": self.init_checkpoint, "sha256": self.init_digest})
        model: nn.Module = self.prior.network
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

        sampler = None
        if self.distributed:
            from torch.utils.data.distributed import DistributedSampler

            sampler = DistributedSampler(self.train_dataset, self.world_size, self.rank, shuffle=True, seed=self.seed)
        loader = DataLoader(
            self.train_dataset,
            batch_size=self.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            drop_last=len(self.train_dataset) >= self.batch_size * self.world_size,
            num_workers=self.num_workers,
            generator=None if sampler is not None else torch.Generator().manual_seed(self.seed + step),
            pin_memory=device.type == "cuda",
            collate_fn=getattr(self.train_dataset, "collate", None),
        )
        steps_per_epoch = max(1, len(loader))
        T = self.prior.num_train_timesteps
        abar = self.prior.alphas_cumprod.float().to(device)
        bar = tqdm(total=self.max_steps, initial=step, disable=not (self.progress and self.is_main), desc="ddpm", mininterval=2)
        t_start = time.time() - elapsed
        running, n_run = 0.0, 0
        last_val = None
        stopped_on_time = False
        if self.is_main:
            self._log({"kind": "start", "step": step, "max_steps": self.max_steps, "world_size": self.world_size,
                       "device": str(device), "hardware": hardware_description(device),
                       "num_parameters": self.prior.num_parameters(), "num_train_images": len(self.train_dataset)})
        while step < self.max_steps and not stopped_on_time:
            epoch = step // steps_per_epoch
            if sampler is not None:
                sampler.set_epoch(epoch)
            for batch in loader:
                if step >= self.max_steps:
                    break
                batch = batch.to(device, non_blocking=True)
                x0, cond = batch[:, : self.prior.channels], batch[:, self.prior.channels :]
                noise = torch.randn_like(x0)
                t = torch.randint(0, T, (x0.shape[0],), device=device)
                a = abar[t].view(-1, 1, 1, 1)
                xt = network_input(a.sqrt() * x0 + (1 - a).sqrt() * noise, cond)
                now = self._synced_elapsed(t_start, device)
                lr = self.lr_at(step, now)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    pred = model(xt, t)
                loss = torch.mean((pred.float() - noise) ** 2)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training loss became {loss.item()} at step {step}; lower the lr.")
                self.optimizer.zero_grad(set_to_none=True)
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                    self.scaler.unscale_(self.optimizer)
                else:
                    loss.backward()
                gnorm = nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip) if self.grad_clip > 0 else None
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.ema.update(self.prior.network)
                step += 1
                running += loss.item()
                n_run += 1
                bar.update(1)
                if self.log_every and step % self.log_every == 0:
                    self._log({"kind": "train", "step": step, "loss": running / n_run, "lr": lr,
                               "grad_norm": None if gnorm is None else float(gnorm), "elapsed_s": time.time() - t_start})
                    bar.set_postfix(loss=f"{running / n_run:.4f}")
                    running, n_run = 0.0, 0
                if self.is_main and self.val_every and step % self.val_every == 0:
                    last_val = self.validate(step)
                if self.is_main and self.sample_every and step % self.sample_every == 0:
                    self.sample_grid(step)
                if self.checkpoint_every and step % self.checkpoint_every == 0:
                    self._save(step, time.time() - t_start)
                if self.max_time_s is not None and now >= self.max_time_s:
                    stopped_on_time = True
                    break
        bar.close()
        elapsed = time.time() - t_start
        summary = {"steps": step, "wall_time_s": elapsed, "stopped_on_time": stopped_on_time}
        if self.is_main:
            self._save(step, elapsed)
            if last_val is None or last_val["step"] != step:
                last_val = self.validate(step)
            summary["final_val"] = last_val
            summary["sample_grid"] = self.sample_grid(step)
            summary.update(self._export(step, elapsed, last_val, device))
            self._log({"kind": "end", **summary})
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
        return summary

    def _synced_elapsed(self, t_start: float, device: torch.device) -> float:
        """Training wall time; under DDP the maximum over ranks, so every rank uses the same lr and stops together."""
        elapsed = time.time() - t_start
        if self.distributed and self.max_time_s is not None:
            import torch.distributed as dist

            buf = torch.tensor([elapsed], dtype=torch.float64, device=device)
            dist.all_reduce(buf, op=dist.ReduceOp.MAX)
            elapsed = float(buf)
        return elapsed

    def _export(self, step: int, elapsed: float, val: dict, device: torch.device) -> dict:
        if not self.export_path:
            return {}
        train_recent = self._recent_train_loss()
        provenance = {
            **self.provenance,
            "training": {
                "steps": step,
                "max_steps": self.max_steps,
                "batch_size": self.batch_size,
                "world_size": self.world_size,
                "lr": self.lr,
                "ema_decay": self.ema_decay,
                "wall_time_s": round(elapsed, 1),
                "hardware": hardware_description(device),
                "num_parameters": self.prior.num_parameters(),
                "final_train_loss_last100": train_recent,
                "final_heldout_eps_mse": val["heldout_eps_mse"],
                "final_train_eps_mse": val["train_eps_mse"],
                "final_heldout_eps_mse_mean": val["heldout_eps_mse_mean"],
                "final_train_eps_mse_mean": val["train_eps_mse_mean"],
                "ratio_heldout_over_train": val["ratio_heldout_over_train"],
                "val_timesteps": self.val_timesteps,
            },
        }
        if self.init_checkpoint is not None:  # also for a run resumed from last.pt, which did not re-initialise
            digest = self.init_digest or sha256_file(self.init_checkpoint)
            provenance["training"]["initialised_from"] = {"checkpoint": self.init_checkpoint, "sha256": digest}
        digest = self.prior.save_checkpoint(
            self.export_path,
            ema_state=self.ema.model.state_dict(),
            include_raw=not self.export_ema_only,
            extra=provenance,
            metadata_path=self.export_metadata,
        )
        return {"export_path": self.export_path, "sha256": digest}

    def _recent_train_loss(self) -> float | None:
        path = os.path.join(self.output_dir, "log.jsonl")
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            losses = [r["loss"] for r in map(json.loads, f) if r.get("kind") == "train"]
        tail = losses[-max(1, 100 // max(1, self.log_every)) :]
        return float(np.mean(tail)) if tail else None
