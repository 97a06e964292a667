"""One-line errors for ``python -m monai.bundle run``: importing this module (the bundle configs do, in ``imports``)
replaces the exception hook of a ``python -m monai.bundle`` process (other processes, e.g. the Python API or tests,
keep theirs).

MONAI's config wrapper re-raises every failure as ``RuntimeError("Failed to instantiate component …")`` around the
original, so a user sees a 50–80-line double traceback with the project's message buried in the middle. For input
errors (``ValueError``, ``TypeError``, ``FileNotFoundError``, ``FileExistsError``, ``PermissionError``,
``IsADirectoryError``, ``NotADirectoryError``) anywhere in the chain, the hook prints the innermost one as
``error: <message>`` plus one hint line and the process exits with status 1. Anything else, and every error when the
environment variable ``MONAI_DDPM_RECON_DEBUG`` is set to a non-empty value other than ``0``, gets Python's full
traceback.
"""

from __future__ import annotations

import os
import sys

INPUT_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
                NotADirectoryError)
DEBUG_ENV = "MONAI_DDPM_RECON_DEBUG"
HINT = f"(set {DEBUG_ENV}=1 for the full traceback)"


def innermost_input_error(exc: BaseException) -> BaseException | None:
    """The deepest exception of ``exc``'s cause/context chain that is an input error, or ``None``."""
    found, seen = None, set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, INPUT_ERRORS):
            found = exc
        # `raise … from None` hides the context: the message the code chose is the innermost one to show
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return found


def one_line(exc: BaseException) -> str:
    """``error: <message>`` on one line (newlines folded)."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    return f"error: {message}"


def excepthook(exc_type, exc, tb) -> None:
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    found = None if debug else innermost_input_error(exc)
    if found is None:
        sys.__excepthook__(exc_type, exc, tb)
        return
    print(one_line(found), file=sys.stderr)
    print(HINT, file=sys.stderr)


def is_bundle_cli() -> bool:
    """Whether this process is ``python -m monai.bundle``."""
    main = sys.argv[0] if sys.argv else ""
    return main.replace("\\", "/").endswith("monai/bundle/__main__.py")


def install(force: bool = False) -> None:
    """Make :func:`excepthook` the exception hook of a ``monai.bundle`` command-line process (or any, with ``force``)."""
    if force or is_bundle_cli():
        sys.excepthook = excepthook


install()

__all__ = ["DEBUG_ENV", "INPUT_ERRORS", "excepthook", "innermost_input_error", "install", "is_bundle_cli", "one_line"]
