"""Output writers. Every file is written to a temporary name in the target folder and renamed, so a crash never
leaves a half-written file, and a path that is one of the run's inputs is refused."""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np


def check_output_dir(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Create ``path`` if needed and check it is writable and is not an input file. Returns it as a ``Path``."""
    out = Path(path)
    for inp in inputs:
        if Path(inp).resolve() == out.resolve():
            raise ValueError(f"output_dir={str(out)!r} is one of the input files; choose another output_dir.")
    if out.exists() and not out.is_dir():
        raise ValueError(f"output_dir={str(out)!r} exists and is not a directory.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ValueError(f"output_dir={str(out)!r} is not writable: {e.strerror or e}.") from None
    return out


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, protected: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success rename it to ``target``.

    Raises:
        ValueError: if ``target`` is one of ``protected`` (the run's input files).
    """
    target = Path(target)
    for p in protected:
        if Path(p).exists() and Path(p).resolve() == target.resolve():
            raise ValueError(f"refusing to overwrite the input file {str(target)!r}.")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp" + "".join(target.suffixes))
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_nifti(
    array: np.ndarray, path: str | os.PathLike, spacing: Sequence[float] = (1.0, 1.0, 1.0), protected: Iterable = ()
) -> Path:
    """Write a real 2D/3D array (e.g. a reconstructed magnitude ``(H, W)``) as NIfTI with diagonal ``spacing`` (mm)."""
    import nibabel as nib

    arr = np.asarray(array)
    if np.iscomplexobj(arr):
        raise TypeError("array must be real (write the magnitude); NIfTI viewers do not show complex data well.")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    affine = np.diag([*[float(s) for s in spacing[:3]], 1.0])
    with atomic_path(path, protected) as tmp:
        nib.save(nib.Nifti1Image(arr.astype(np.float32), affine), str(tmp))
    return Path(path)


def write_metrics_table(rows: Sequence[dict], csv_path: str | os.PathLike, md_path: str | os.PathLike | None = None,
                        title: str | None = None, float_format: str = "{:.4f}") -> None:
    """Write ``rows`` (dicts with the same keys) as CSV and, optionally, as a markdown table."""
    if not rows:
        raise ValueError("rows is empty: nothing to write.")
    keys = list(rows[0].keys())
    with atomic_path(csv_path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
    if md_path is None:
        return

    def fmt(v):
        return float_format.format(v) if isinstance(v, float) else str(v)

    lines = [f"# {title}", ""] if title else []
    lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    with atomic_path(md_path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
