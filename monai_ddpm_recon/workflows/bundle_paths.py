"""Where the bundle folder is, so one config works from the repository root, from the bundle folder and from a copy.

MONAI's model-zoo bundles write ``"bundle_root": "."`` and expect the user to run from the bundle folder or to pass
``--bundle_root``. Our configs call :func:`find_bundle_root` instead, so that both of these keep working unchanged::

    python -m monai.bundle run --config_file bundles/ddpm_recon/configs/inference.json   # repository root
    python -m monai.bundle run --config_file configs/inference.json                      # bundle folder

``--bundle_root <path>`` still overrides it.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

BUNDLE_NAME = "ddpm_recon"
_MARKER = Path("configs") / "metadata.json"  # every bundle folder holds this file


def _config_files_from_argv(argv: list[str]) -> list[str]:
    """The ``--config_file`` value(s) of a ``python -m monai.bundle run`` command line, [] when there is none."""
    value = None
    for i, arg in enumerate(argv):
        if arg == "--config_file" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--config_file="):
            value = arg.split("=", 1)[1]
    if not value:
        return []
    if value.lstrip().startswith(("[", "(")):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return []
        return [str(v) for v in parsed] if isinstance(parsed, (list, tuple)) else []
    return [value]


def find_bundle_root(argv: list[str] | None = None, cwd: str | os.PathLike | None = None) -> str:
    """The bundle folder, in this order:

    1. the folder holding the ``configs`` folder of the ``--config_file`` on the command line (``"."`` for
       ``--config_file configs/inference.json``, ``"bundles/ddpm_recon"`` for the path from the repository root,
       an absolute path for a copy of the bundle run from anywhere);
    2. ``"."`` when the current directory is a bundle folder (holds ``configs/metadata.json``);
    3. ``"bundles/ddpm_recon"`` when the current directory is this repository's root.

    Raises:
        FileNotFoundError: none of these holds; pass ``--bundle_root <bundle folder>``.
    """
    argv = sys.argv if argv is None else argv
    cwd = Path.cwd() if cwd is None else Path(cwd)
    for config_file in _config_files_from_argv(list(argv))[:1]:
        parent = Path(config_file).parent
        if parent.name == "configs" and (cwd / parent.parent / _MARKER).is_file():
            return str(parent.parent)  # as written: relative stays relative ("." from the bundle folder)
    if (cwd / _MARKER).is_file():
        return "."
    repo_bundle = Path("bundles") / BUNDLE_NAME
    if (cwd / repo_bundle / _MARKER).is_file():
        return str(repo_bundle)
    raise FileNotFoundError(
        f"cannot find the {BUNDLE_NAME} bundle folder from {str(cwd)!r}: run from the bundle folder or the repository "
        f"root, or pass --bundle_root <bundle folder>."
    )
