"""The parts of the MONAI model zoo's CI (ci/verify_bundle.py -m min, ci/get_bundle_requirements.py) that need no
model-zoo checkout: files, version and changelog, metadata against the shipped schema, large_files.yml, and the
package pin the zoo turns into ``pip install monai-ddpm-recon==<version>``. The full run with the zoo's own scripts is
``python benchmarks/zoo_checks.py --zoo-ci <model-zoo>/ci``."""

from __future__ import annotations

import importlib.util
import json
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "ddpm_recon"


def _zoo_checks():
    spec = importlib.util.spec_from_file_location("zoo_checks", ROOT / "benchmarks" / "zoo_checks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("zoo_checks", module)
    spec.loader.exec_module(module)
    return module


def test_required_and_preferred_files_present():
    _zoo_checks().check_files(BUNDLE)


def test_version_is_in_changelog():
    _zoo_checks().check_version_in_changelog(BUNDLE)


def test_metadata_validates_against_the_shipped_schema():
    _zoo_checks().check_metadata_schema(BUNDLE, BUNDLE / "configs" / "meta_schema.json")


def test_large_files_entries_have_the_keys_the_zoo_downloader_needs():
    # the zoo's download_large_files passes each entry to monai.apps.download_url, whose url is required
    _zoo_checks().check_large_files(BUNDLE)


def test_package_version_has_one_source_and_the_metadata_pins_it():
    import monai_ddpm_recon

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "monai_ddpm_recon.__version__"}
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    assert meta["required_packages_version"]["monai-ddpm-recon"] == monai_ddpm_recon.__version__


def test_installed_distribution_matches_the_source_version():
    from importlib.metadata import PackageNotFoundError, version

    import monai_ddpm_recon

    try:
        installed = version("monai-ddpm-recon")
    except PackageNotFoundError:
        pytest.skip("monai-ddpm-recon is not installed (running from a source tree)")
    assert installed == monai_ddpm_recon.__version__, "reinstall: pip install -e ."


def test_zoo_checks_table_without_a_zoo_checkout(capsys):
    """The script's own checks (network_def with timesteps, inference properties included) all pass."""
    assert _zoo_checks().main(["--bundle", str(BUNDLE)]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "verify_net_in_out(network_def, timesteps)" in out
