"""DDPM prior: MONAI's ``DiffusionModelUNet`` predicting ε under a MONAI noise schedule.

Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020 (ε-prediction, linear schedule);
Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021 (cosine schedule).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import zipfile
from typing import Any

import torch
from torch import nn

from ..utils.validation import check_bool, check_finite
from .base import DiffusionPrior, Schedule

INTENSITY_CONVENTION = "magnitude / slice max, mapped to [-1, 1] as 2*x-1"
CHECKPOINT_FORMAT = "monai_ddpm_recon.ddpm_prior.v1"
METADATA_NAME = "model_metadata.json"  # the bundle's / trainer's metadata file, beside the checkpoint it names
CHECKSUM_SUFFIX = ".sha256"  # ``<checkpoint>.sha256`` in ``sha256sum`` format, written by save_checkpoint
_REQUIRED_KEYS = ("image_size", "channels", "network_kwargs", "schedule_kwargs")

logger = logging.getLogger(__name__)


def default_network_kwargs(image_channels: int = 1, overrides: dict | None = None) -> dict:
    """Keyword arguments of the demo ``DiffusionModelUNet`` (~1M parameters at channels (32, 64, 64)).

    ``image_channels`` is the number of image channels (1 magnitude, 2 real/imag); ``overrides`` replace defaults.
    """
    kw = {
        "spatial_dims": 2,
        "in_channels": image_channels,
        "out_channels": image_channels,
        "channels": (32, 64, 64),
        "attention_levels": (False, False, False),
        "num_res_blocks": 1,
        "num_head_channels": None,
        "norm_num_groups": None,
    }
    overrides = dict(overrides or {})
    if "channels" in overrides and "attention_levels" not in overrides:
        kw["attention_levels"] = [False] * len(overrides["channels"])
    kw.update(overrides)
    return normalise_network_kwargs(kw)


def normalise_network_kwargs(kw: dict) -> dict:
    """Json-friendly network kwargs: tuples -> lists, ``norm_num_groups=None`` -> gcd of the channels (max 32),
    ``num_head_channels=None`` -> gcd(32, deepest channels)."""
    kw = dict(kw)
    kw["channels"] = [int(c) for c in kw["channels"]]
    n = len(kw["channels"])
    att = kw.get("attention_levels", [False] * n)
    kw["attention_levels"] = [bool(a) for a in (att if isinstance(att, (list, tuple)) else [att] * n)]
    nrb = kw.get("num_res_blocks", 1)
    kw["num_res_blocks"] = [int(r) for r in nrb] if isinstance(nrb, (list, tuple)) else int(nrb)
    if kw.get("norm_num_groups") is None:
        g = 0
        for c in kw["channels"]:
            g = math.gcd(g, c)
        kw["norm_num_groups"] = min(32, g)
    nhc = kw.get("num_head_channels")
    if nhc is None:  # the middle block always has attention: one head per 32 channels of the deepest level
        nhc = math.gcd(32, kw["channels"][-1])
    kw["num_head_channels"] = [int(h) for h in nhc] if isinstance(nhc, (list, tuple)) else int(nhc)
    return kw


def build_network(**network_kwargs: Any) -> nn.Module:
    """``monai.networks.nets.DiffusionModelUNet`` from (normalised) kwargs."""
    from monai.networks.nets import DiffusionModelUNet

    kw = normalise_network_kwargs(network_kwargs)
    return DiffusionModelUNet(**kw)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checksum_records(path: str | os.PathLike) -> list[tuple[str, str]]:
    """The checksum records that sit beside a checkpoint, as ``(record file, expected sha256)`` pairs.

    Two kinds count: a ``model_metadata.json`` in the checkpoint's folder whose ``checkpoint`` entry names this file
    (by basename; metadata without a ``checkpoint`` entry applies to any file of the folder), and a
    ``<checkpoint>.sha256`` file in ``sha256sum`` format. A symbolic link is also looked up beside its target.

    Args:
        path: the checkpoint file.

    Returns:
        every record found (possibly none), so that all of them can be checked.

    Raises:
        ValueError: a record that applies to this file is unreadable or has no sha256.
    """
    path = os.path.abspath(str(path))
    places = dict.fromkeys([path, os.path.realpath(path)])
    records: list[tuple[str, str]] = []
    for p in places:
        folder, name = os.path.split(p)
        meta = os.path.join(folder, METADATA_NAME)
        if os.path.isfile(meta):
            try:
                with open(meta) as f:
                    data = json.load(f)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ValueError(f"checkpoint metadata {meta!r} beside {p!r} is not readable JSON ({e}).") from None
            if not isinstance(data, dict):
                raise ValueError(f"checkpoint metadata {meta!r} beside {p!r} is not a JSON object.")
            named = data.get("checkpoint")
            if named is None or os.path.basename(str(named)) == name:
                if not data.get("sha256"):
                    raise ValueError(f"checkpoint metadata {meta!r} describes {name!r} but has no 'sha256' entry.")
                records.append((meta, str(data["sha256"])))
        side = p + CHECKSUM_SUFFIX
        if os.path.isfile(side):
            with open(side, errors="replace") as f:
                fields = f.read().split()
            if not fields or len(fields[0]) != 64:
                raise ValueError(f"checksum file {side!r} does not start with a 64-digit sha256 (sha256sum format).")
            records.append((side, fields[0]))
    return list(dict.fromkeys(records))


def verify_checkpoint_checksum(
    path: str | os.PathLike,
    expected_sha256: str | None = None,
    metadata_path: str | os.PathLike | None = None,
    verify_checksum: bool = True,
    name: str = "checkpoint",
) -> str | None:
    """Check a checkpoint's sha256 before it is unpickled; returns the digest (None when not checked).

    The expected digest comes from ``expected_sha256``, else from ``metadata_path``, else from every record beside
    the file (:func:`checksum_records`). A checkpoint with none of these is refused unless ``verify_checksum`` is
    False, the explicit opt-out for a checkpoint of one's own that has no metadata (logged as a warning). An explicit
    ``expected_sha256``/``metadata_path`` is checked even then.

    Args:
        path: the checkpoint file.
        expected_sha256: hex digest the file must have.
        metadata_path: json with a ``sha256`` entry, used when ``expected_sha256`` is None.
        verify_checksum: look for records beside the file and refuse a file without any (True, the default).
        name: the argument name used in error messages (e.g. ``"prior_checkpoint"``).

    Raises:
        FileNotFoundError: ``metadata_path`` does not exist. ValueError: a checksum mismatch (naming the file,
        the expected and the actual digest), unreadable metadata, or no record to verify against.
    """
    path = str(path)
    records: list[tuple[str, str]] = []
    if expected_sha256 is not None:
        records = [("expected_sha256", str(expected_sha256))]
    elif metadata_path is not None:
        if not os.path.isfile(metadata_path):
            raise FileNotFoundError(f"checkpoint metadata not found: {str(metadata_path)!r}.")
        try:
            with open(metadata_path) as f:
                digest = json.load(f).get("sha256")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
            raise ValueError(f"checkpoint metadata {str(metadata_path)!r} is not a readable JSON object ({e}).") from None
        if not digest:
            raise ValueError(f"{metadata_path} has no 'sha256' entry.")
        records = [(str(metadata_path), str(digest))]
    elif not check_bool("verify_checksum", verify_checksum):
        logger.warning("%s=%r is loaded without checksum verification (verify_checksum=False).", name, path)
        return None
    else:
        records = checksum_records(path)
        if not records:
            raise ValueError(
                f"{name}={path!r} has no checksum to verify: expected a {METADATA_NAME} naming it or a "
                f"{os.path.basename(path)}{CHECKSUM_SUFFIX} file beside it; to load a checkpoint you trust without "
                "one, pass expected_sha256=<its sha256> or verify_checksum=False (bundle: --verify_checksum false)."
            )
    got = sha256_file(path)
    for source, want in records:
        want = want.strip()
        if got.lower() != want.lower():
            hint = (
                ""
                if source == "expected_sha256"
                else "; the file is corrupt or not the model its metadata describes (restore it, or pass "
                "verify_checksum=False to load your own file unverified)"
            )
            raise ValueError(f"{name}={path!r}: checksum mismatch: expected sha256 {want} (from {source}), got {got}{hint}.")
    return got


_EXPECTED = f"a DDPM prior checkpoint (format {CHECKPOINT_FORMAT!r}) saved by DDPMPrior.save_checkpoint"


def check_checkpoint_file(path: str | os.PathLike, name: str = "checkpoint") -> None:
    """Cheap checks of a checkpoint's bytes before anything else (no unpickling).

    ``torch.save`` writes a zip archive (legacy files are a pickle starting with byte ``0x80``).

    Args:
        path: the ``.pt`` file.
        name: the argument name used in error messages.

    Raises:
        ValueError: an empty file, a truncated zip archive, or a file that is no torch checkpoint (numpy, text...).
    """
    path = str(path)
    size = os.path.getsize(path)
    if size == 0:
        raise ValueError(f"{name}={path!r} is an empty file (0 bytes); expected {_EXPECTED}.")
    with open(path, "rb") as f:
        head = f.read(6)
    if head[:2] == b"PK":
        if not zipfile.is_zipfile(path):
            raise ValueError(
                f"{name}={path!r} is truncated or corrupt (an incomplete zip archive of {size} bytes); expected {_EXPECTED}."
            )
    elif head[:1] != b"\x80":
        kind = "a numpy array file (.npy)" if head == b"\x93NUMPY" else "not a torch checkpoint"
        raise ValueError(f"{name}={path!r} is {kind}; expected {_EXPECTED}.")


def read_checkpoint(path: str | os.PathLike, name: str = "checkpoint") -> dict:
    """Unpickle a prior checkpoint with ``weights_only=True`` and check it is one; one-line errors otherwise.

    Args:
        path: the ``.pt`` file.
        name: the argument name used in error messages.

    Raises:
        ValueError: an empty file, a file that is not a torch checkpoint (text, numpy, arbitrary pickle), a
        truncated or corrupt one, or a torch file that is not a DDPM prior checkpoint.
    """
    path = str(path)
    check_checkpoint_file(path, name)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises EOFError/RuntimeError/UnpicklingError/KeyError for bad files
        msg = str(e)
        reason = (
            "not a weights-only torch file of tensors and plain containers"
            if "weights_only" in msg
            else (msg.split("\n")[0].split(". ")[0] or "unexpected end of file")
        )
        raise ValueError(
            f"{name}={path!r} cannot be read as a torch checkpoint ({type(e).__name__}: {reason}); expected {_EXPECTED}."
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = f"a dict with format {ckpt.get('format')!r}" if isinstance(ckpt, dict) else f"a {type(ckpt).__name__}"
        raise ValueError(f"{name}={path!r} is not a DDPM prior checkpoint (it holds {found}); expected {_EXPECTED}.")
    missing = [k for k in _REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"{name}={path!r} is an incomplete DDPM prior checkpoint (no {', '.join(missing)}); expected {_EXPECTED}.")
    return ckpt


class DDPMPrior(DiffusionPrior):
    """ε-prediction DDPM prior on ``(B, channels, H, W)`` images in ``[-1, 1]``.

    Args:
        image_size: ``(H, W)`` (or an int for square images).
        channels: 1 (magnitude) or 2 (real, imaginary).
        network: a ``DiffusionModelUNet`` (built from ``network_kwargs`` when None).
        network_kwargs: kwargs of ``DiffusionModelUNet``; ``in_channels`` defaults to ``channels`` plus
            :attr:`condition_channels` (inputs the network sees besides the noisy image, e.g. coordinates of a patch
            prior), ``out_channels`` to ``channels``.
        num_train_timesteps, schedule, beta_start, beta_end: the noise schedule (see :class:`DiffusionPrior`).
        device: device of the network.
    """

    condition_channels: int = 0
    prior_class: str = "whole_image"  # recorded in checkpoints so that from_checkpoint rebuilds the right class
    class_config_keys: tuple[str, ...] = ()  # constructor arguments of this class that checkpoints record

    def __init__(
        self,
        image_size: tuple[int, int] | int = 64,
        channels: int = 1,
        network: nn.Module | None = None,
        network_kwargs: dict | None = None,
        num_train_timesteps: int = 1000,
        schedule: Schedule | str = Schedule.LINEAR,
        beta_start: float = 1e-4,
        beta_end: float = 2e-2,
        device: str | torch.device | None = None,
    ) -> None:
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        super().__init__(image_size, channels, num_train_timesteps, schedule, beta_start, beta_end)
        kw = dict(network_kwargs or {})
        n_in = channels + self.condition_channels
        kw.setdefault("in_channels", n_in)
        kw.setdefault("out_channels", channels)
        self.network_kwargs = default_network_kwargs(channels, kw)
        if self.network_kwargs["in_channels"] != n_in or self.network_kwargs["out_channels"] != channels:
            raise ValueError(
                f"network_kwargs in/out_channels ({self.network_kwargs['in_channels']}, "
                f"{self.network_kwargs['out_channels']}) must be ({n_in}, {channels}) for channels={channels} "
                f"with {self.condition_channels} condition channel(s)."
            )
        levels = len(self.network_kwargs["channels"])
        if min(self.image_size) % (2 ** (levels - 1)) != 0:
            raise ValueError(
                f"image_size {self.image_size} must be divisible by 2**(levels-1)={2 ** (levels - 1)} "
                f"for a UNet with {levels} levels."
            )
        self.network = network if network is not None else build_network(**self.network_kwargs)
        self.intensity_convention = INTENSITY_CONVENTION
        if device is not None:
            self.to(device)

    # --- torch-like helpers ------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def to(self, device: str | torch.device) -> DDPMPrior:
        self.network.to(device)
        return self

    def eval(self) -> DDPMPrior:
        self.network.eval()
        return self

    def train(self, mode: bool = True) -> DDPMPrior:
        self.network.train(mode)
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.network.parameters())

    def with_network(self, network: nn.Module) -> DDPMPrior:
        """The same prior (schedule, settings) evaluated with another network, e.g. the trainer's EMA copy."""
        view = copy.copy(self)
        view.network = network
        return view

    # --- model -------------------------------------------------------------------------------------------------
    def timesteps(self, t: torch.Tensor | int, batch: int) -> torch.Tensor:
        """``t`` as a ``(batch,)`` long tensor on the network's device (ints are broadcast)."""
        t = torch.as_tensor(t, dtype=torch.long).reshape(-1)
        if t.numel() == 1:
            t = t.expand(batch)
        if t.numel() != batch:
            raise ValueError(f"t must be an int or have {batch} entries (one per image), got {t.numel()}.")
        if bool((t < 0).any()) or bool((t >= self.num_train_timesteps).any()):
            raise ValueError(f"t must lie in [0, {self.num_train_timesteps - 1}], got {t.tolist()}.")
        return t.to(self.device)

    def eps(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """ε(x_t, t) from the network; ``x_t`` real ``(B, channels, H, W)``, returned on ``x_t``'s device/dtype."""
        self.check_input(x_t)
        check_finite("x_t", x_t)
        tt = self.timesteps(t, x_t.shape[0])
        out = self.network(x_t.to(device=self.device, dtype=torch.float32), tt)
        return out.to(device=x_t.device, dtype=x_t.dtype)

    # --- checkpoints -------------------------------------------------------------------------------------------
    def config(self) -> dict:
        """Everything needed to rebuild this prior (without weights), json-serialisable."""
        return {
            "format": CHECKPOINT_FORMAT,
            "image_size": list(self.image_size),
            "channels": self.channels,
            "intensity_convention": self.intensity_convention,
            "network_kwargs": self.network_kwargs,
            "schedule_kwargs": {
                "num_train_timesteps": self.num_train_timesteps,
                "schedule": self.schedule.value,
                "beta_start": self.beta_start,
                "beta_end": self.beta_end,
            },
            "prediction_type": "epsilon",
            "prior_class": self.prior_class,
            **self.class_config(),
        }

    def class_config(self) -> dict:
        """Constructor arguments particular to this prior class (the attributes named by :attr:`class_config_keys`),
        stored in checkpoints and passed back to the constructor by :meth:`from_checkpoint`."""
        return {k: getattr(self, k) for k in self.class_config_keys}

    def save_checkpoint(
        self,
        path: str | os.PathLike,
        ema_state: dict | None = None,
        include_raw: bool = True,
        extra: dict | None = None,
        metadata_path: str | os.PathLike | None = None,
    ) -> str:
        """Save config + weights; returns the file's sha256.

        The digest is recorded so that :meth:`from_checkpoint` verifies the file by default: in ``metadata_path``
        when given, and in ``<path>.sha256`` (``sha256sum`` format) unless ``metadata_path`` is the
        ``model_metadata.json`` beside the checkpoint (which is found there anyway).

        Args:
            path: output ``.pt`` file.
            ema_state: EMA ``state_dict`` of the network (stored as ``ema_state_dict``; preferred at load).
            include_raw: also store the raw (non-EMA) weights as ``state_dict``.
            extra: json-serialisable provenance stored under ``extra``.
            metadata_path: json file that receives ``{"sha256": ..., "checkpoint": basename, **config}``.
        """
        ckpt = dict(self.config())
        if include_raw or ema_state is None:
            ckpt["state_dict"] = {k: v.detach().cpu() for k, v in self.network.state_dict().items()}
        if ema_state is not None:
            ckpt["ema_state_dict"] = {k: v.detach().cpu() for k, v in ema_state.items()}
        ckpt["extra"] = extra or {}
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        tmp = f"{path}.tmp"
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
        digest = sha256_file(path)
        beside = os.path.join(os.path.dirname(os.path.abspath(path)), METADATA_NAME)
        if metadata_path is None or os.path.abspath(metadata_path) != beside:
            with open(f"{path}{CHECKSUM_SUFFIX}", "w") as f:
                f.write(f"{digest}  {os.path.basename(str(path))}\n")
        elif os.path.exists(f"{path}{CHECKSUM_SUFFIX}"):  # a record of an earlier file by this name would now refuse it
            os.remove(f"{path}{CHECKSUM_SUFFIX}")
        if metadata_path is not None:
            meta = {"checkpoint": os.path.basename(str(path)), "sha256": digest, **self.config(), **(extra or {})}
            with open(metadata_path, "w") as f:
                json.dump(meta, f, indent=1)
        return digest

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        expected_sha256: str | None = None,
        metadata_path: str | os.PathLike | None = None,
        network_kwargs: dict | None = None,
        use_ema: bool = True,
        device: str | torch.device | None = None,
        verify_checksum: bool = True,
        name: str = "checkpoint",
    ) -> DDPMPrior:
        """Load a prior saved by :meth:`save_checkpoint` (EMA weights when present and ``use_ema``).

        The file's sha256 is checked before it is unpickled: against ``expected_sha256``, else ``metadata_path``,
        else every record beside the file (a ``model_metadata.json`` naming it, ``<path>.sha256``). A file with no
        record is refused unless ``verify_checksum=False``. It is always read with ``weights_only=True``.

        Args:
            path: the ``.pt`` checkpoint.
            expected_sha256: hex digest the file must have.
            metadata_path: json with a ``sha256`` field (e.g. the bundle's model metadata) used when
                ``expected_sha256`` is None.
            network_kwargs: the configured network; raises if the checkpoint was trained with another one.
            use_ema: prefer the EMA weights (True) or the raw ones (False); a checkpoint that stores only one
                kind (e.g. the shipped EMA-only prior) gives that kind either way.
            device: where to put the network.
            verify_checksum: False loads a checkpoint without a checksum record unverified (and ignores records
                beside it); explicit ``expected_sha256``/``metadata_path`` are still checked.
            name: the argument name used in error messages (the workflows pass ``"prior_checkpoint"``).

        Raises:
            FileNotFoundError: missing checkpoint/metadata. ValueError: checksum mismatch or no checksum to verify,
            an empty, foreign, truncated or corrupt file, or a network mismatch.
        """
        path = str(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{name}={path!r}: DDPM prior checkpoint not found. Train one with the bundle's train.json or restore "
                f"bundles/ddpm_recon/models/model.pt."
            )
        check_checkpoint_file(path, name)  # an empty/foreign/truncated file is named as such, before the checksum
        verify_checkpoint_checksum(path, expected_sha256, metadata_path, verify_checksum, name)
        ckpt = read_checkpoint(path, name)
        try:
            saved_kw = normalise_network_kwargs(ckpt["network_kwargs"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{name}={path!r} has unusable network_kwargs ({e!r}); expected a DDPM prior checkpoint.") from None
        sk = ckpt["schedule_kwargs"]
        kind = ckpt.get("prior_class", DDPMPrior.prior_class)
        if kind not in PRIOR_CLASSES:
            raise ValueError(f"{name}={path!r} names an unknown prior class {kind!r}; expected one of {sorted(PRIOR_CLASSES)}.")
        klass = PRIOR_CLASSES[kind]
        if not issubclass(klass, cls):
            raise ValueError(f"{name}={path!r} holds a {kind!r} prior, which {cls.__name__}.from_checkpoint does not load.")
        if network_kwargs is not None:
            want = normalise_network_kwargs(
                {
                    "in_channels": ckpt["channels"] + klass.condition_channels,
                    "out_channels": ckpt["channels"],
                    "spatial_dims": 2,
                    **network_kwargs,
                }
            )
            diff = {k: (saved_kw.get(k), want.get(k)) for k in set(saved_kw) | set(want) if saved_kw.get(k) != want.get(k)}
            if diff:
                raise ValueError(
                    f"checkpoint {path} does not match the configured network: "
                    + ", ".join(f"{k}: checkpoint {a!r} vs configured {b!r}" for k, (a, b) in sorted(diff.items()))
                )
        prior = klass(
            **{k: ckpt[k] for k in klass.class_config_keys if k in ckpt},
            image_size=tuple(ckpt["image_size"]),
            channels=int(ckpt["channels"]),
            network_kwargs=saved_kw,
            num_train_timesteps=sk["num_train_timesteps"],
            schedule=sk["schedule"],
            beta_start=sk.get("beta_start", 1e-4),
            beta_end=sk.get("beta_end", 2e-2),
        )
        order = ("ema_state_dict", "state_dict") if use_ema else ("state_dict", "ema_state_dict")
        state = next((ckpt[k] for k in order if k in ckpt), None)
        if state is None:
            raise ValueError(f"{path} holds no weights (neither ema_state_dict nor state_dict).")
        try:
            prior.network.load_state_dict(state, strict=True)
        except RuntimeError as e:
            detail = " ".join(str(e).split())
            raise ValueError(f"weights in {path} do not match the network described in the checkpoint: {detail}") from None
        prior.intensity_convention = ckpt.get("intensity_convention", INTENSITY_CONVENTION)
        prior.extra = ckpt.get("extra", {})
        prior.eval()
        if device is not None:
            prior.to(device)
        return prior

    def copy_network(self) -> nn.Module:
        """A deep copy of the network (e.g. the initial EMA model)."""
        return copy.deepcopy(self.network)


# prior_class name (stored in checkpoints) -> class; patch priors register themselves on import
PRIOR_CLASSES: dict[str, type[DDPMPrior]] = {DDPMPrior.prior_class: DDPMPrior}
