"""Copy a finished training run into the bundle: model, metadata (with sha256), training log, sample grid.

Usage::

    python -m monai_ddpm_recon.training.publish --run-dir bundles/ddpm_recon/runs/demo64 \\
        --bundle-dir bundles/ddpm_recon --split bundles/ddpm_recon/runs/data/split.json

The checkpoint file is copied byte for byte (its sha256 is re-checked against the run's metadata), so the
published ``models/model_metadata.json`` describes exactly the shipped ``models/model.pt``; its ``checkpoint`` entry
names ``model.pt`` and its ``sha256`` is what the inference and benchmark workflows verify by default before loading
(``DDPMPrior.from_checkpoint`` finds it beside the checkpoint). The published pair is verified once more at the end.

A run fine-tuned from an earlier prior (``init_checkpoint`` in train.json) keeps that prior's history: pass its
metadata and log as ``--parent-metadata`` / ``--parent-log``; the parent's sha256 must equal the one the run
recorded as its starting point. Its training record goes under ``training.initialised_from.training`` and its log
is copied to ``models/training_log_<first 12 hex digits of its sha256>.jsonl``. When the parent was itself
published from a fine-tuning run, the logs its metadata names for its own ancestors (paths relative to the parent's
bundle) are copied the same way, so a bundle keeps the log of every stage of its prior.

A bundle may ship several priors, each in its own folder: ``--models-subdir models/patch --grid-name
prior_samples_patch_217x181.png`` publishes the patch prior beside the whole-image one (paths in the metadata stay
relative to the bundle root).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil

from ..priors.ddpm import DDPMPrior, sha256_file, verify_checkpoint_checksum


def publish(
    run_dir: str,
    bundle_dir: str,
    split: str | None = None,
    overwrite: bool = False,
    parent_metadata: str | None = None,
    parent_log: str | None = None,
    models_subdir: str = "models",
    grid_name: str = "prior_samples_64.png",
) -> dict:
    src_model = os.path.join(run_dir, "model.pt")
    src_meta = os.path.join(run_dir, "model_metadata.json")
    with open(src_meta) as f:
        meta = json.load(f)
    ancestor_logs = []
    if parent_metadata:
        record = _parent_record(meta, parent_metadata)  # checks the run started from that parent
        parent = meta["training"]["initialised_from"]
        parent.update(record)
        # read every log before writing: publishing into the parent's own bundle overwrites its training_log.jsonl
        ancestor_logs = _ancestor_logs(parent, parent_metadata, parent_log, models_subdir)
    DDPMPrior.from_checkpoint(src_model, expected_sha256=meta["sha256"])  # loads and checks before copying
    models, docs = os.path.join(bundle_dir, models_subdir), os.path.join(bundle_dir, "docs")
    os.makedirs(models, exist_ok=True)
    os.makedirs(docs, exist_ok=True)
    dst_model = os.path.join(models, "model.pt")
    if os.path.exists(dst_model) and not overwrite:
        raise FileExistsError(f"{dst_model} exists; pass --overwrite to replace it.")
    shutil.copyfile(src_model, dst_model)
    if sha256_file(dst_model) != meta["sha256"]:
        raise RuntimeError("copy of model.pt changed its sha256")
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        log = [json.loads(line) for line in f]
    samples = [r["path"] for r in log if r.get("kind") == "samples"]
    if samples:
        shutil.copyfile(os.path.join(run_dir, os.path.basename(samples[-1])), os.path.join(docs, grid_name))
    meta["checkpoint"] = "model.pt"
    meta["sample_grid"] = f"docs/{grid_name}" if samples else None
    meta["training_log"] = f"{models_subdir}/training_log.jsonl"
    if split:
        with open(split) as f:
            meta["split"] = json.load(f)
    for record, text in ancestor_logs:
        name = f"{models_subdir}/training_log_{record['sha256'][:12]}.jsonl"
        with open(os.path.join(bundle_dir, name), "w") as f:
            f.write(text)
        record["training_log"] = name
    with open(os.path.join(models, "model_metadata.json"), "w") as f:
        json.dump(meta, f, indent=1)
    shutil.copyfile(os.path.join(run_dir, "log.jsonl"), os.path.join(models, "training_log.jsonl"))
    verify_checkpoint_checksum(dst_model)  # what the workflows check: the metadata beside model.pt names and hashes it
    return meta


def _parent_record(meta: dict, parent_metadata: str) -> dict:
    """The parent prior's data and training record, after checking it is the checkpoint the run started from."""
    started = meta.get("training", {}).get("initialised_from")
    if not started:
        raise ValueError("--parent-metadata given, but the run was not initialised from a checkpoint (no init_checkpoint).")
    with open(parent_metadata) as f:
        parent = json.load(f)
    if parent.get("sha256") != started["sha256"]:
        raise ValueError(
            f"{parent_metadata} describes sha256 {parent.get('sha256')}, but the run started from {started['sha256']}."
        )
    return {k: parent[k] for k in ("sha256", "data", "num_train_slices", "augmentation", "training") if k in parent}


def _ancestor_logs(parent: dict, parent_metadata: str, parent_log: str | None, models_subdir: str) -> list[tuple[dict, str]]:
    """``(record, log text)`` for the parent (``parent_log``) and every ancestor its metadata names a log for.

    ``record`` is that stage's dict inside the run's metadata, whose ``training_log`` entry is rewritten on publishing.
    """
    logs = []
    if parent_log:
        with open(parent_log) as f:
            logs.append((parent, f.read()))
    parent_bundle = os.path.dirname(os.path.abspath(parent_metadata))
    for _ in os.path.normpath(models_subdir).split(os.sep):  # the parent sits in the same subfolder of its bundle
        parent_bundle = os.path.dirname(parent_bundle)
    record = parent.get("training", {}).get("initialised_from")
    while record:
        if record.get("training_log"):
            path = os.path.join(parent_bundle, record["training_log"])
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"{parent_metadata} names {record['training_log']} as the log of its ancestor "
                    f"{record.get('sha256', '?')[:12]}, but {path} does not exist."
                )
            with open(path) as f:
                logs.append((record, f.read()))
        record = record.get("training", {}).get("initialised_from")
    return logs


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--bundle-dir", required=True)
    p.add_argument("--split", default=None, help="split.json written by monai_ddpm_recon.data.prepare")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--parent-metadata", default=None, help="metadata of the prior the run was fine-tuned from")
    p.add_argument("--parent-log", default=None, help="training log of that prior")
    p.add_argument("--models-subdir", default="models", help="folder of the bundle the prior goes to")
    p.add_argument("--grid-name", default="prior_samples_64.png", help="file name of the sample grid under docs/")
    a = p.parse_args(argv)
    meta = publish(a.run_dir, a.bundle_dir, a.split, a.overwrite, a.parent_metadata, a.parent_log, a.models_subdir, a.grid_name)
    print(f"published {a.bundle_dir}/{a.models_subdir}/model.pt sha256={meta['sha256']}")
    return meta


if __name__ == "__main__":
    main()
