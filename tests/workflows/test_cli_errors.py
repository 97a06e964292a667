"""One-line CLI errors: the innermost input error of MONAI's wrapped chain, full traceback only on request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monai_ddpm_recon.workflows.cli_errors import DEBUG_ENV, innermost_input_error, one_line

ROOT = Path(__file__).resolve().parents[2]


def _wrapped(inner: BaseException) -> RuntimeError:
    try:
        try:
            raise inner
        except Exception as e:
            raise RuntimeError("Failed to instantiate component 'X'") from e
    except RuntimeError as outer:
        return outer


def test_innermost_input_error_is_found_through_the_wrapper():
    outer = _wrapped(ValueError("acceleration must be > 1,\n got 0.5."))
    found = innermost_input_error(outer)
    assert isinstance(found, ValueError)
    assert one_line(found) == "error: acceleration must be > 1, got 0.5."
    assert innermost_input_error(_wrapped(ZeroDivisionError("bug"))) is None  # a bug keeps its traceback
    # `raise ... from None` (e.g. an enum lookup turned into a clear message) hides the lookup's own error
    try:
        try:
            raise ValueError("'magic' is not a valid SolverName")
        except ValueError:
            raise ValueError("solver='magic' is not a valid option; expected one of 'tv', ...") from None
    except ValueError as clear:
        assert one_line(innermost_input_error(_wrapped(clear))).startswith("error: solver='magic'")


def _bundle(args, env=None):
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file",
           str(ROOT / "bundles/ddpm_recon/configs/inference.json"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_bad_override_on_the_command_line_is_one_line(tmp_path):
    res = _bundle(["--acceleration", "0.5", "--output_dir", str(tmp_path / "out")])
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: acceleration must be > 1, got 0.5."]
    assert not (tmp_path / "out").exists()
    debug = _bundle(["--acceleration", "0.5", "--output_dir", str(tmp_path / "out")], {DEBUG_ENV: "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr
