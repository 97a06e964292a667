"""Offline checks that keep ``bundles/ddpm_recon`` compliant with the MONAI model zoo.

Two groups of checks, printed as one pass/fail table:

* **local** (no model-zoo checkout needed): the files the zoo requires and prefers, version in the changelog,
  ``monai.bundle.verify_metadata`` against a local schema, ``large_files.yml`` (keys the zoo's downloader needs, hash
  of the present file), the package pin in ``required_packages_version`` equal to ``monai_ddpm_recon.__version__``,
  ``network_def`` through ``monai.bundle.verify_net_in_out`` with a ``timesteps`` argument, and MONAI's inference
  property check (``ConfigWorkflow.check_properties``). No ``ckpt_export``: TorchScript export is unsupported (see the
  bundle README, "Network, checkpoint and inferer keys").
* **zoo** (``--zoo-ci PATH`` to a checkout of Project-MONAI/model-zoo's ``ci`` folder): the zoo's own
  ``ci/verify_bundle.py`` in ``min`` and ``full`` mode, run unchanged on a copy of the bundle laid out as
  ``models/<name>`` with an empty ``model_info.json`` and ``eval/schema.json`` taken from ``--schema`` (the only
  network access of the zoo's CI, the schema download of ``ci/prepare_schema.py``, is replaced by that copy). The
  bundle is granted exactly the exclusions of ``ci/bundle_custom_data.py`` that the zoo grants all of its diffusion
  bundles (read from the checkout, not hard-coded: today the shape check and the TorchScript export). Also the
  zoo's ``ci/get_bundle_requirements.py``: its pins must be satisfied by the running environment.

Usage (from the repository root)::

    python benchmarks/zoo_checks.py                                   # local checks only
    python benchmarks/zoo_checks.py --zoo-ci /path/to/model-zoo/ci \
        --schema /path/to/meta_schema_20240725.json                   # plus the zoo's verify_bundle min/full

Exit status 1 when any check fails. ``--schema`` defaults to the bundle's ``configs/meta_schema.json``; the zoo
validates against the schema named by ``metadata.json["schema"]`` (meta_schema_20240725.json, a release asset of
Project-MONAI/MONAI-extra-test-data 0.8.1, also served at https://project-monai.github.io/schema/).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = REPO / "bundles" / "ddpm_recon"
PACKAGE = "monai-ddpm-recon"
# the zoo's diffusion bundles: an exclusion list of ci/bundle_custom_data.py that holds all of them is granted to ours
ZOO_DIFFUSION_BUNDLES = ("brats_mri_generative_diffusion", "brats_mri_axial_slices_generative_diffusion")
# bundle files the zoo's CI needs (verify_bundle.py: necessary and preferred files); configs may be json/yaml/yml
REQUIRED_FILES = ("configs/metadata.json", "LICENSE")
PREFERRED_FILES = ("models/model.pt", "configs/inference")
# runtime folders that are not part of the bundle
NOT_BUNDLE = {"output", "runs", "__pycache__", "eval"}


class Table:
    def __init__(self):
        self.rows: list[tuple[str, str, str]] = []

    def add(self, check: str, status: str, detail: str = "") -> None:
        self.rows.append((check, status, " ".join(detail.split())[:160]))
        print(f"[{status}] {check}" + (f": {detail}" if detail and status != "pass" else ""), flush=True)

    def run(self, check: str, fn) -> None:
        try:
            detail = fn()
        except Exception as e:  # a check's failure is a row of the table, not a crash
            self.add(check, "FAIL", f"{type(e).__name__}: {e}")
        else:
            self.add(check, "pass", detail or "")

    def print(self) -> None:
        w = max(len(r[0]) for r in self.rows)
        print(f"\n{'check':<{w}}  status    detail\n{'-' * w}  --------  ------")
        for check, status, detail in self.rows:
            print(f"{check:<{w}}  {status:<8}  {detail}")

    @property
    def failed(self) -> bool:
        return any(r[1] == "FAIL" for r in self.rows)


def _config(bundle: Path, stem: str) -> Path | None:
    for ext in ("json", "yaml", "yml"):
        if (bundle / "configs" / f"{stem}.{ext}").exists():
            return bundle / "configs" / f"{stem}.{ext}"
    return None


def _metadata(bundle: Path) -> dict:
    return json.loads((bundle / "configs" / "metadata.json").read_text())


# ----------------------------------------------------------------------------------------------- local checks
def check_files(bundle: Path) -> str:
    missing = [f for f in REQUIRED_FILES if not (bundle / f).exists()]
    missing += [f for f in PREFERRED_FILES if not ((bundle / f).exists() or _config(bundle, Path(f).name))]
    if missing:
        raise FileNotFoundError(f"missing {missing}")
    return ", ".join(REQUIRED_FILES + PREFERRED_FILES)


def check_version_in_changelog(bundle: Path) -> str:
    meta = _metadata(bundle)
    if meta["version"] not in meta.get("changelog", {}):
        raise ValueError(f"version {meta['version']} is not a key of changelog")
    return f"version {meta['version']}"


def check_metadata_schema(bundle: Path, schema: Path) -> str:
    from monai.bundle import verify_metadata

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no hash value provided" for the local schema copy
        local = Path(tmp) / "schema.json"
        shutil.copyfile(schema, local)  # verify_metadata only downloads when filepath is absent
        verify_metadata(meta_file=str(bundle / "configs" / "metadata.json"), filepath=str(local))
    return schema.name


def check_large_files(bundle: Path) -> str:
    import yaml

    path = next((bundle / f"large_files.{e}" for e in ("yml", "yaml", "json") if (bundle / f"large_files.{e}").exists()), None)
    if path is None:
        return "no large_files file"
    entries = yaml.safe_load(path.read_text())["large_files"]
    for entry in entries:
        # the zoo's downloader passes every key to monai.apps.download_url: path and url are required
        for key in ("path", "url"):
            if key not in entry:
                raise KeyError(f"{path.name}: entry {entry.get('path')} has no '{key}' (the zoo's download_large_files needs it)")
        target = bundle / entry["path"]
        if not target.exists():
            if not entry["url"]:
                raise FileNotFoundError(f"{entry['path']} is absent and has no url")
            continue
        if entry.get("hash_val"):
            digest = hashlib.new(entry.get("hash_type", "sha256"), target.read_bytes()).hexdigest()
            if digest != entry["hash_val"]:
                raise ValueError(f"{entry['path']}: {entry.get('hash_type')} {digest} != {entry['hash_val']}")
    return ", ".join(e["path"] for e in entries)


def check_package_pin(bundle: Path) -> str:
    import monai_ddpm_recon

    pin = _metadata(bundle).get("required_packages_version", {}).get(PACKAGE)
    if pin != monai_ddpm_recon.__version__:
        raise ValueError(f"metadata pins {PACKAGE}=={pin}, package version is {monai_ddpm_recon.__version__}")
    return f"{PACKAGE}=={pin}"


def check_net_in_out(bundle: Path) -> str:
    import torch
    from monai.bundle import verify_net_in_out

    verify_net_in_out(
        net_id="network_def", meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=str(_config(bundle, "inference")), device="cpu",
        extra_forward_args={"timesteps": torch.tensor([500])}, bundle_root=str(bundle),
    )
    return "network_def(x, timesteps) on cpu"


def check_inference_properties(bundle: Path) -> str:
    from monai.bundle import ConfigWorkflow

    with tempfile.TemporaryDirectory(prefix="zoo_props_") as out:  # an earlier run's output/ would refuse overwrite
        workflow = ConfigWorkflow(
            config_file=str(_config(bundle, "inference")), meta_file=str(bundle / "configs" / "metadata.json"),
            logging_file=str(bundle / "configs" / "logging.conf"), workflow_type="inference", bundle_root=str(bundle),
            output_dir=out,
        )
        workflow.initialize()
        missing = workflow.check_properties()
    if missing:
        raise ValueError(f"missing properties {missing}")
    return "MetaProperties + InferProperties"


# ------------------------------------------------------------------------------------------------- zoo checks
_ZOO_RUNNER = r"""
import sys
sys.path.insert(0, sys.argv[1])
import bundle_custom_data as custom
bundle, mode, diffusion = sys.argv[2], sys.argv[3], sys.argv[4].split(",")
granted = [n for n, v in vars(custom).items() if n.startswith("exclude_verify_") and isinstance(v, list)
           and all(d in v for d in diffusion)]
for n in granted:
    getattr(custom, n).append(bundle)
print("GRANTED " + ",".join(granted), flush=True)
import verify_bundle
verify_bundle.verify(bundle, "models", mode)
print("VERIFY_OK", flush=True)
"""

# verify_bundle.py's progress lines, in order, mapped to table rows: (row, line when passed, line when excluded, list)
_ZOO_STEPS = (
    ("directory (files, large_files)", "directory is verified correctly", None, None),
    ("version and changelog", "version and changelog are verified correctly", None, None),
    ("metadata vs schema", "metadata format is verified correctly", None, None),
    ("bundle properties", "properties are verified correctly", None, None),
    ("data shape (verify_net_in_out)", "data shape is verified correctly", "skip verifying the data shape",
     "exclude_verify_shape_list"),
    ("TorchScript export (ckpt_export)", "export weights into TorchScript module successfully",
     "does not support torchscript", "exclude_verify_torchscript_list"),
)


def _zoo_layout(bundle: Path, schema: Path, root: Path) -> Path:
    name = bundle.name
    models = root / "models"
    shutil.copytree(bundle, models / name, ignore=lambda d, names: [n for n in names if n in NOT_BUNDLE and Path(d) == bundle])
    (models / "model_info.json").write_text("{}")  # a new bundle: no published version to collide with
    (models / name / "eval").mkdir()
    shutil.copyfile(schema, models / name / "eval" / "schema.json")  # what ci/prepare_schema.py downloads
    return models


def run_zoo_verify(table: Table, bundle: Path, zoo_ci: Path, schema: Path, mode: str) -> None:
    with tempfile.TemporaryDirectory(prefix="zoo_checks_") as tmp:
        _zoo_layout(bundle, schema, Path(tmp))
        proc = subprocess.run(
            [sys.executable, "-c", _ZOO_RUNNER, str(zoo_ci.resolve()), bundle.name, mode, ",".join(ZOO_DIFFUSION_BUNDLES)],
            cwd=tmp, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(zoo_ci.resolve())},
        )
    out = proc.stdout
    errors = [line for line in proc.stderr.splitlines() if re.match(r"^\w+(Error|Exception)\b", line)]
    error = errors[-1] + (f" (cause: {errors[0]})" if len(errors) > 1 else "") if errors else ""
    steps = _ZOO_STEPS[:3] if mode == "min" else _ZOO_STEPS
    failed = False
    for label, ok, skipped, listname in steps:
        check = f"zoo verify_bundle -m {mode}: {label}"
        if ok in out:
            table.add(check, "pass", "no supported_apps: the zoo skips it" if label == "bundle properties" else "")
        elif skipped and skipped in out:
            table.add(check, "excluded", f"{listname} (granted to all the zoo's diffusion bundles)")
        elif not failed:
            failed = True
            table.add(check, "FAIL", error or proc.stderr[-300:])
        else:
            table.add(check, "not run", "after the failure above")
    if proc.returncode and not failed:
        table.add(f"zoo verify_bundle -m {mode}", "FAIL", error or proc.stderr[-300:])


def check_zoo_requirements(bundle: Path, zoo_ci: Path) -> str:
    from importlib.metadata import PackageNotFoundError, version

    with tempfile.TemporaryDirectory(prefix="zoo_req_") as tmp:
        models = Path(tmp) / "models"
        models.mkdir()
        shutil.copytree(bundle / "configs", models / bundle.name / "configs")
        proc = subprocess.run(
            [sys.executable, str(zoo_ci.resolve() / "get_bundle_requirements.py"), "-b", bundle.name, "-p", "models"],
            cwd=tmp, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(zoo_ci.resolve())},
        )
        lines = (Path(tmp) / proc.stdout.strip().splitlines()[-1]).read_text().split()
    unmet = []
    for line in lines:
        name, want = line.split("==")
        try:
            have = version(name)
        except PackageNotFoundError:
            have = None
        if have is None or have.split("+")[0] != want:
            unmet.append(f"{line} (installed: {have})")
    if unmet:
        raise ValueError("pins not met by this environment: " + "; ".join(unmet))
    return f"{len(lines)} pins met"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="bundle folder (default: %(default)s)")
    ap.add_argument("--zoo-ci", type=Path, default=None, help="a checkout of Project-MONAI/model-zoo's ci folder")
    ap.add_argument("--schema", type=Path, default=None, help="metadata schema (default: the bundle's configs/meta_schema.json)")
    ap.add_argument("--modes", nargs="+", default=["min", "full"], choices=["min", "full"], help="verify_bundle modes")
    ap.add_argument("--skip-local", action="store_true", help="only the zoo's scripts")
    args = ap.parse_args(argv)
    bundle = args.bundle.resolve()
    schema = (args.schema or bundle / "configs" / "meta_schema.json").resolve()

    table = Table()
    if not args.skip_local:
        table.run("files required/preferred by the zoo", lambda: check_files(bundle))
        table.run("version in changelog", lambda: check_version_in_changelog(bundle))
        table.run(f"verify_metadata vs {schema.name}", lambda: check_metadata_schema(bundle, schema))
        shipped = bundle / "configs" / "meta_schema.json"
        if shipped.exists() and shipped.resolve() != schema:
            table.run(f"verify_metadata vs {shipped.name}", lambda: check_metadata_schema(bundle, shipped))
        table.run("large_files.yml (path, url, hash)", lambda: check_large_files(bundle))
        table.run(f"required_packages_version[{PACKAGE}] == package version", lambda: check_package_pin(bundle))
        table.run("verify_net_in_out(network_def, timesteps)", lambda: check_net_in_out(bundle))
        table.run("inference property check (ConfigWorkflow)", lambda: check_inference_properties(bundle))
    if args.zoo_ci is not None:
        if not (args.zoo_ci / "verify_bundle.py").exists():
            ap.error(f"{args.zoo_ci} has no verify_bundle.py")
        for mode in args.modes:
            run_zoo_verify(table, bundle, args.zoo_ci, schema, mode)
        table.run("zoo get_bundle_requirements pins", lambda: check_zoo_requirements(bundle, args.zoo_ci))
    else:
        table.add("zoo verify_bundle min/full", "not run", "pass --zoo-ci PATH (a checkout of model-zoo/ci)")
    table.print()
    return 1 if table.failed else 0


if __name__ == "__main__":
    sys.exit(main())
