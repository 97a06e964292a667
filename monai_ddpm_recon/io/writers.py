"""Output writers. Every file is written to a temporary name in the target folder and renamed, so a crash never
leaves a half-written file; new files get the usual ``0666 & ~umask`` mode; a path that is one of the run's inputs is
refused; and an existing file is replaced only when the caller allows it (``overwrite``)."""

from __future__ import annotations

import contextlib
import csv
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

MAX_LISTED = 8  # existing files named in an error message before "and N more"


class OutputExistsError(FileExistsError, ValueError):
    """An output file exists and ``overwrite`` is off (both a ``FileExistsError`` and a ``ValueError``)."""


def current_umask() -> int:
    """The process umask (read from ``/proc`` where available, so it is not changed even briefly)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _listing(paths: Sequence[Path]) -> str:
    shown = ", ".join(repr(str(p)) for p in paths[:MAX_LISTED])
    return shown + (f" and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else "")


def check_output_dir(
    path: str | os.PathLike,
    inputs: Iterable[str | os.PathLike | None] = (),
    outputs: Iterable[str | os.PathLike] = (),
    overwrite: bool = False,
) -> Path:
    """Validate an output folder before any work; nothing is created (the writers create folders when they write).

    Args:
        path: the output folder (need not exist yet).
        inputs: the run's input files (``None`` entries are skipped); the folder must not be one of them nor hold
            any of them, at any depth.
        outputs: the files the run will write, relative to ``path`` (or absolute).
        overwrite: allow replacing existing ``outputs``; False refuses if any of them exists.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: the folder is or holds an input, exists as a file, or is not writable.
        OutputExistsError: some of ``outputs`` exist and ``overwrite`` is False (the message lists them).
    """
    out = Path(path)
    where = out.resolve()
    held = []
    for inp in inputs:
        if inp is None:
            continue
        p = Path(inp).resolve()
        if p == where:
            raise ValueError(f"output_dir={str(out)!r} is one of the input files; choose another output_dir.")
        if where in p.parents:
            held.append(Path(inp))
    if held:
        raise ValueError(
            f"output_dir={str(out)!r} holds input files ({_listing(held)}); choose an output_dir that holds none of "
            "the run's input files."
        )
    if out.exists() and not out.is_dir():
        raise ValueError(f"output_dir={str(out)!r} exists and is not a directory.")
    existing_parent = next(p for p in (where, *where.parents) if p.exists())
    if not existing_parent.is_dir():
        raise ValueError(f"output_dir={str(out)!r} cannot be created: {str(existing_parent)!r} is not a directory.")
    if not os.access(existing_parent, os.W_OK | os.X_OK):
        raise ValueError(f"output_dir={str(out)!r} is not writable (no write permission on {str(existing_parent)!r}).")
    if not overwrite:
        existing = [out / o for o in outputs if (out / o).exists() or (out / o).is_symlink()]
        if existing:
            raise OutputExistsError(
                f"output_dir={str(out)!r} already holds {len(existing)} file(s) this run would write: "
                f"{_listing(existing)}; pass --overwrite true (overwrite=True) to replace them, or choose another "
                "--output_dir."
            )
    return out


@contextlib.contextmanager
def atomic_path(
    target: str | os.PathLike, protected: Iterable[str | os.PathLike] = (), overwrite: bool = True
) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success rename it to ``target``.

    Missing parent folders are created. The file gets mode ``0666 & ~umask`` (a replaced file keeps its mode).

    Args:
        target: the file to write.
        protected: the run's input files, never replaced.
        overwrite: allow replacing an existing ``target``.

    Raises:
        ValueError: if ``target`` is one of ``protected`` (the run's input files).
        OutputExistsError: ``target`` exists and ``overwrite`` is False.
    """
    target = Path(target)
    for p in protected:
        if Path(p).exists() and Path(p).resolve() == target.resolve():
            raise ValueError(f"refusing to overwrite the input file {str(target)!r}.")
    if not overwrite and (target.exists() or target.is_symlink()):
        raise OutputExistsError(f"{str(target)!r} exists; pass overwrite=True to replace it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp" + "".join(target.suffixes))
    os.close(fd)
    try:
        yield Path(tmp)
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except OSError:
            mode = 0o666 & ~current_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class RunOutputs:
    """The files and folders one run creates under ``root``, so that a failed run can remove them again.

    Args:
        root: the output folder.
        overwrite: allow :meth:`file` to hand out a path that exists already.
    """

    def __init__(self, root: str | os.PathLike, overwrite: bool = False) -> None:
        self.root = Path(root)
        self.overwrite = bool(overwrite)
        self.files: list[Path] = []
        self.dirs: list[Path] = []

    def folder(self, relative: str | os.PathLike = "") -> Path:
        """Create ``root/relative`` (and missing parents), remembering the folders that did not exist."""
        target = self.root / relative
        missing = [p for p in (target, *target.parents) if not p.exists()]
        target.mkdir(parents=True, exist_ok=True)
        self.dirs.extend(reversed(missing))
        return target

    def file(self, relative: str | os.PathLike) -> Path:
        """``root/relative`` (its folder created), remembered for :meth:`rollback` unless it exists already.

        Raises:
            OutputExistsError: the file exists and ``overwrite`` is False.
        """
        target = self.root / relative
        if target.exists() or target.is_symlink():
            if not self.overwrite:
                raise OutputExistsError(f"{str(target)!r} exists; pass --overwrite true (overwrite=True) to replace it.")
        else:
            self.files.append(target)
        self.folder(Path(relative).parent)
        return target

    def rollback(self) -> None:
        """Remove the files and (then empty) folders this run created."""
        for f in reversed(self.files):
            with contextlib.suppress(OSError):
                f.unlink()
        for d in reversed(self.dirs):
            with contextlib.suppress(OSError):
                d.rmdir()


def write_nifti(
    array: np.ndarray,
    path: str | os.PathLike,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    protected: Iterable = (),
    overwrite: bool = True,
    affine: np.ndarray | None = None,
) -> Path:
    """Write a real 2D/3D array (e.g. a reconstructed magnitude ``(H, W)``) as NIfTI (float32, millimetres).

    Args:
        array: real ``(H, W)`` (stored as ``(H, W, 1)``) or 3-D array.
        path: the ``.nii``/``.nii.gz`` file.
        spacing: voxel size in mm for the diagonal affine used when ``affine`` is None (the identity by default:
            1 mm voxels, origin at the first voxel).
        protected, overwrite: as in :func:`atomic_path`.
        affine: ``4 × 4`` voxel-to-world affine (e.g. from :class:`~monai_ddpm_recon.io.geometry.SliceGeometry`),
            stored as both sform and qform.
    """
    import nibabel as nib

    arr = np.asarray(array)
    if np.iscomplexobj(arr):
        raise TypeError("array must be real (write the magnitude); NIfTI viewers do not show complex data well.")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if affine is None:
        affine = np.diag([*[float(s) for s in spacing[:3]], 1.0])
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise ValueError(f"affine must be a finite 4 x 4 matrix, got shape {affine.shape}.")
    img = nib.Nifti1Image(arr.astype(np.float32), affine)
    img.set_sform(affine, code="aligned")
    img.set_qform(affine, code="aligned")
    img.header.set_xyzt_units("mm")
    with atomic_path(path, protected, overwrite) as tmp:
        nib.save(img, str(tmp))
    return Path(path)


def write_metrics_table(rows: Sequence[dict], csv_path: str | os.PathLike, md_path: str | os.PathLike | None = None,
                        title: str | None = None, float_format: str = "{:.4f}", overwrite: bool = True) -> None:
    """Write ``rows`` (dicts with the same keys) as CSV and, optionally, as a markdown table.

    ``overwrite`` is as in :func:`atomic_path`.
    """
    if not rows:
        raise ValueError("rows is empty: nothing to write.")
    keys = list(rows[0].keys())
    with atomic_path(csv_path, overwrite=overwrite) as tmp:
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
    with atomic_path(md_path, overwrite=overwrite) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
