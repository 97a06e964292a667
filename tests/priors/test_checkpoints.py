"""Checkpoint trust: sha256 verified by default from the records beside the file, an explicit opt-out for one's own
checkpoint, and one clear ValueError naming ``prior_checkpoint`` for an empty, foreign, truncated or corrupt file."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_ddpm_recon.priors.ddpm import (
    CHECKSUM_SUFFIX,
    METADATA_NAME,
    DDPMPrior,
    checksum_records,
    sha256_file,
    verify_checkpoint_checksum,
)
from monai_ddpm_recon.workflows import CaseSpec, ReconstructionWorkflow
from monai_ddpm_recon.workflows.reconstruct import load_prior

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "bundles" / "ddpm_recon" / "models"
CPU = torch.device("cpu")


def tiny_prior() -> DDPMPrior:
    return DDPMPrior(image_size=16, channels=1, network_kwargs={"channels": [8, 8]})


@pytest.fixture
def own_checkpoint(tmp_path) -> Path:
    """A user's checkpoint with no record beside it (a torch file copied from elsewhere)."""
    src = tmp_path / "src"
    src.mkdir()
    tiny_prior().save_checkpoint(src / "tiny.pt")
    own = tmp_path / "own" / "mine.pt"
    own.parent.mkdir()
    shutil.copyfile(src / "tiny.pt", own)
    return own


@pytest.fixture
def bundle_copy(tmp_path) -> Path:
    """``models/`` of a bundle: a checkpoint and the model_metadata.json that names it (as publish writes them)."""
    models = tmp_path / "bundle" / "models"
    models.mkdir(parents=True)
    prior = tiny_prior()
    digest = prior.save_checkpoint(models / "model.pt", metadata_path=models / METADATA_NAME)
    assert not (models / f"model.pt{CHECKSUM_SUFFIX}").exists()  # the metadata beside it is the record
    assert json.loads((models / METADATA_NAME).read_text())["sha256"] == digest
    return models


def test_shipped_checkpoint_is_verified_by_default():
    meta = json.loads((SHIPPED / METADATA_NAME).read_text())
    assert checksum_records(SHIPPED / "model.pt") == [(str(SHIPPED / METADATA_NAME), meta["sha256"])]
    assert verify_checkpoint_checksum(SHIPPED / "model.pt") == meta["sha256"]


def test_altered_shipped_weights_raise(tmp_path):
    """The shipped metadata beside a model.pt whose weights were altered: a one-line error with both digests."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copyfile(SHIPPED / METADATA_NAME, models / METADATA_NAME)
    ckpt = torch.load(SHIPPED / "model.pt", map_location="cpu", weights_only=True)
    key = next(k for k, v in ckpt["ema_state_dict"].items() if v.is_floating_point())
    ckpt["ema_state_dict"][key] = ckpt["ema_state_dict"][key] + 0.01
    torch.save(ckpt, models / "model.pt")
    expected = json.loads((SHIPPED / METADATA_NAME).read_text())["sha256"]
    actual = sha256_file(models / "model.pt")
    for load in (lambda: DDPMPrior.from_checkpoint(models / "model.pt"), lambda: load_prior(models / "model.pt", CPU)):
        with pytest.raises(ValueError) as info:
            load()
        msg = str(info.value)
        assert "\n" not in msg and "checksum mismatch" in msg
        assert str(models / "model.pt") in msg and expected in msg and actual in msg
    assert "prior_checkpoint=" in msg  # load_prior names the workflow's argument
    # the explicit opt-out loads the altered file
    DDPMPrior.from_checkpoint(models / "model.pt", verify_checksum=False)


def test_a_file_copied_over_a_published_checkpoint_raises(bundle_copy, own_checkpoint, tmp_path, example_npy):
    shutil.copyfile(own_checkpoint, bundle_copy / "model.pt")
    with pytest.raises(ValueError, match=f"checksum mismatch.*from {bundle_copy / METADATA_NAME}"):
        load_prior(bundle_copy / "model.pt", CPU)
    # the workflow checks it before any work: nothing is written
    out = tmp_path / "out"
    spec = CaseSpec(example_data=str(example_npy), image_size=16)
    with pytest.raises(ValueError, match="prior_checkpoint=.*checksum mismatch"):
        ReconstructionWorkflow(out, ["zero_filled", "loss_guidance"], spec, prior_checkpoint=bundle_copy / "model.pt")
    assert not out.exists()
    ReconstructionWorkflow(out, ["loss_guidance"], spec, prior_checkpoint=bundle_copy / "model.pt", verify_checksum="false")


def test_own_checkpoint_without_metadata_is_refused_unless_opted_out(own_checkpoint, tmp_path, example_npy):
    with pytest.raises(ValueError) as info:
        load_prior(own_checkpoint, CPU)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"prior_checkpoint={str(own_checkpoint)!r} has no checksum")
    assert "verify_checksum=False" in msg and "--verify_checksum false" in msg and "expected_sha256" in msg
    # opt-outs: the flag (also as a command-line string), or the digest the user vouches for
    assert load_prior(own_checkpoint, CPU, verify_checksum=False).image_size == (16, 16)
    assert load_prior(own_checkpoint, CPU, verify_checksum="false").image_size == (16, 16)
    load_prior(own_checkpoint, CPU, expected_sha256=sha256_file(own_checkpoint))
    with pytest.raises(ValueError, match=r"checksum mismatch: expected sha256 0{64} \(from expected_sha256\)"):
        load_prior(own_checkpoint, CPU, expected_sha256="0" * 64, verify_checksum=False)  # explicit digests still count
    spec = CaseSpec(example_data=str(example_npy), image_size=16)
    with pytest.raises(ValueError, match="has no checksum"):
        ReconstructionWorkflow(tmp_path / "o", ["loss_guidance"], spec, prior_checkpoint=own_checkpoint)
    ReconstructionWorkflow(tmp_path / "o", ["loss_guidance"], spec, prior_checkpoint=own_checkpoint, verify_checksum=False)


def test_metadata_naming_another_checkpoint_does_not_vouch(bundle_copy, own_checkpoint):
    other = bundle_copy / "other.pt"
    shutil.copyfile(own_checkpoint, other)
    assert checksum_records(other) == []
    with pytest.raises(ValueError, match="has no checksum"):
        DDPMPrior.from_checkpoint(other)
    (bundle_copy / METADATA_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="not readable JSON"):
        DDPMPrior.from_checkpoint(bundle_copy / "model.pt")


def test_save_checkpoint_writes_a_sha256sum_record(tmp_path):
    path = tmp_path / "prior.pt"
    digest = tiny_prior().save_checkpoint(path)
    assert (tmp_path / "prior.pt.sha256").read_text() == f"{digest}  prior.pt\n"  # `sha256sum -c` format
    DDPMPrior.from_checkpoint(path)  # verified by default
    ckpt = torch.load(path, weights_only=True)
    ckpt["extra"] = {"changed": True}
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match=f"checksum mismatch.*from {tmp_path / 'prior.pt.sha256'}"):
        DDPMPrior.from_checkpoint(path)


class _Boom:
    """A pickle that would run code when unpickled without weights_only."""

    def __reduce__(self):
        return (os.mkdir, (os.environ["BOOM_MARKER"],))


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = tmp_path / "good.pt"
    tiny_prior().save_checkpoint(good)
    data = good.read_bytes()
    files = {
        "empty": (b"", r"is an empty file \(0 bytes\)"),
        "text": (b"model weights go here\n", "is not a torch checkpoint"),
        "truncated": (data[: len(data) // 2], "is truncated or corrupt"),
        "pickle": (pickle.dumps({"a": 1}), "cannot be read as a torch checkpoint .*not a weights-only torch file"),
    }
    out = {}
    for name, (content, match) in files.items():
        p = tmp_path / f"{name}.pt"
        p.write_bytes(content)
        out[name] = (p, match)
    np.save(tmp_path / "array.npy", np.zeros((4, 4)))
    out["numpy"] = (tmp_path / "array.npy", r"is a numpy array file \(\.npy\)")
    torch.save(torch.randn(3, 3), tmp_path / "tensor.pt")
    out["tensor"] = (tmp_path / "tensor.pt", r"is not a DDPM prior checkpoint \(it holds a Tensor\)")
    torch.save({"format": "something.else", "weights": torch.zeros(2)}, tmp_path / "dict.pt")
    out["other dict"] = (tmp_path / "dict.pt", "is not a DDPM prior checkpoint .*format 'something.else'")
    torch.save({"x": _Boom()}, tmp_path / "code.pt", pickle_protocol=2)
    out["code"] = (tmp_path / "code.pt", "cannot be read as a torch checkpoint .*not a weights-only torch file")
    return out


@pytest.mark.parametrize("case", ["empty", "text", "truncated", "pickle", "numpy", "tensor", "other dict", "code"])
def test_bad_files_give_one_clear_error(tmp_path, monkeypatch, case):
    monkeypatch.setenv("BOOM_MARKER", str(tmp_path / "boom"))
    path, match = _bad_files(tmp_path)[case]
    # byte-level problems are named even without a checksum record; the rest after the explicit opt-out
    for kwargs in ({}, {"verify_checksum": False}) if case in ("empty", "text", "truncated", "numpy") else ({"verify_checksum": False},):
        with pytest.raises(ValueError) as info:
            load_prior(path, CPU, **kwargs)
        msg = str(info.value)
        assert type(info.value) is ValueError and "\n" not in msg
        assert msg.startswith(f"prior_checkpoint={str(path)!r}")
        assert "expected a DDPM prior checkpoint" in msg and "weights_only=False" not in msg
        assert __import__("re").search(match, msg), msg
    assert not (tmp_path / "boom").exists()  # nothing in the file was executed


def test_corrupt_bytes_inside_a_verified_checkpoint_raise(tmp_path):
    path = tmp_path / "model.pt"
    tiny_prior().save_checkpoint(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_prior(path, CPU)


@pytest.fixture
def example_npy(tmp_path):
    yy, xx = np.mgrid[-1:1:16j, -1:1:16j]
    path = tmp_path / "slices.npy"
    np.save(path, ((xx**2 + yy**2) < 0.5).astype(np.float32)[None, None])
    return path


def test_resaving_with_metadata_beside_drops_a_stale_checksum_file(tmp_path):
    """An earlier save without metadata left ``model.pt.sha256``; saving a new model with metadata beside must not
    leave that record behind (it would refuse the new file)."""
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    DDPMPrior(16, network_kwargs={"channels": (8, 8)}).save_checkpoint(path)
    assert (tmp_path / "model.pt.sha256").is_file()
    DDPMPrior(16, network_kwargs={"channels": (8, 16)}).save_checkpoint(path, metadata_path=tmp_path / METADATA_NAME)
    assert not (tmp_path / "model.pt.sha256").exists()
    assert DDPMPrior.from_checkpoint(path).network_kwargs["channels"] == [8, 16]
