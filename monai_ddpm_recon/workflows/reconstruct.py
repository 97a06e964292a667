"""The bundle's inference workflow: k-space cases → every requested solver → NIfTI, PNG panels, metrics tables."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..io import RunOutputs, check_output_dir, save_panel, write_metrics_table, write_nifti
from ..metrics import nmse, psnr, ssim
from ..priors import prior_supports_size
from ..utils.validation import check_bool, check_positive
from .cases import Case, CaseSpec, case_names, case_shapes, load_cases
from .registry import SolverName, build_solvers, needs_prior
from .runner import batches, stack_cases

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/``None`` → CUDA when available, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device={device!r} is not a valid torch device: {e}.") from None


def load_prior(
    checkpoint: str | os.PathLike,
    device: torch.device,
    expected_sha256: str | None = None,
    verify_checksum: bool = True,
):
    """Load the DDPM prior checkpoint, verified, with one-line errors naming ``prior_checkpoint``.

    The sha256 is checked whenever a record sits beside the file (the bundle's ``model_metadata.json`` naming it,
    or ``<file>.sha256`` written by :meth:`~monai_ddpm_recon.priors.DDPMPrior.save_checkpoint`); a checkpoint with
    none is refused unless ``expected_sha256`` is given or ``verify_checksum=False`` (the bundle key
    ``verify_checksum``).

    Args:
        checkpoint: the ``.pt`` file.
        device: where to put the network.
        expected_sha256: hex digest the file must have (overrides the records beside it).
        verify_checksum: False loads a checkpoint without checking its sha256 (the opt-out for one's own file).

    Raises:
        FileNotFoundError: the file does not exist. ValueError: checksum mismatch, no checksum record, or an
        empty, foreign, truncated or corrupt file.
    """
    from ..priors.ddpm import DDPMPrior

    if not Path(checkpoint).is_file():
        raise FileNotFoundError(
            f"prior_checkpoint={str(checkpoint)!r} does not exist. The bundle ships one at "
            "bundles/ddpm_recon/models/model.pt; train your own with configs/train.json."
        )
    prior = DDPMPrior.from_checkpoint(
        checkpoint, expected_sha256=expected_sha256, verify_checksum=verify_checksum, name="prior_checkpoint"
    )
    return prior.to(device).eval()


def require_prior_size(prior, sizes: Iterable[tuple[int, int]], checkpoint: str | os.PathLike | None = None) -> None:
    """Refuse case sizes the prior cannot reconstruct (:func:`~monai_ddpm_recon.priors.prior_supports_size`:
    a whole-image prior only its own size, a prior that accepts any size every size).

    Raises:
        ValueError: one line naming the prior's size and the first unsupported case size.
    """
    for h, w in sizes:
        if not prior_supports_size(prior, (int(h), int(w))):
            name = f"prior_checkpoint={str(checkpoint)!r}" if checkpoint is not None else "the prior"
            raise ValueError(
                f"{name} models {tuple(prior.image_size)} images only, but the cases are {int(h)}x{int(w)}; "
                "set image_size to the prior's size."
            )


def log_prior_tiling(prior, sizes: Iterable[tuple[int, int]]) -> None:
    """Log, for a prior that covers images by tiling (a patch prior), the tiling each case size gets."""
    tiling_for = getattr(prior, "tiling_for", None)
    if tiling_for is None:
        return
    for h, w in sizes:
        logger.info("patch prior: %dx%d images are covered by %r tiling", int(h), int(w), str(tiling_for((int(h), int(w)))))


def check_prior(
    checkpoint: str | os.PathLike,
    image_size: int | None,
    verify_checksum: bool = True,
    case_sizes: Iterable[tuple[int, int]] = (),
    device: torch.device | None = None,
):
    """Validate the prior checkpoint before any work: checksum, file format and case sizes; returns the prior.

    Args:
        checkpoint: the ``.pt`` file.
        image_size: the cases' side (:class:`~monai_ddpm_recon.workflows.cases.CaseSpec`), or ``None`` for inputs at
            their own sizes, which are then ``case_sizes`` (see :func:`~monai_ddpm_recon.workflows.cases.case_shapes`).
        verify_checksum: as in :func:`load_prior`.
        case_sizes: ``(H, W)`` of the cases when ``image_size`` is ``None``.
        device: where the returned prior lives (default CPU).

    Returns:
        the loaded prior (so that a workflow does not read and hash the file a second time).

    Raises:
        ValueError: as :func:`load_prior`, or a size the prior does not accept (see :func:`require_prior_size`).
    """
    prior = load_prior(checkpoint, device or torch.device("cpu"), verify_checksum=verify_checksum)
    sizes = [(int(image_size), int(image_size))] if image_size is not None else list(case_sizes)
    require_prior_size(prior, sizes, checkpoint)
    return prior


class ReconstructionWorkflow:
    """Reconstruct undersampled k-space with several solvers and write images, figures and metrics.

    Args:
        output_dir: where outputs go: must not hold any input (input files, example data, prior checkpoint); created
            only when the outputs are written, and a failed run removes what it created there.
        solvers: solver names (see :class:`~monai_ddpm_recon.workflows.registry.SolverName`).
        spec: what data to load and how to undersample it (:class:`~monai_ddpm_recon.workflows.cases.CaseSpec`).
        prior_checkpoint: DDPM prior checkpoint (needed by diffusion solvers).
        solver_kwargs: per-solver constructor arguments, ``{"tv": {"lam": 0.01}, ...}``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        seed: seed for simulation and sampling.
        num_samples: posterior samples per slice for diffusion solvers (mean + std map when > 1).
        batch_size: slices per solver call.
        save_images, save_figures: write NIfTI files / PNG panels.
        verify_checksum: check the prior checkpoint's sha256 against the record beside it and refuse a checkpoint
            without one (True, the default); False loads your own checkpoint unverified.
        overwrite: replace output files that exist already (from an earlier run or anyone else). False (the
            default) lists the files this run would write before any work and refuses if any of them exists.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        solvers: Sequence[str],
        spec: CaseSpec,
        prior_checkpoint: str | os.PathLike | None = None,
        solver_kwargs: dict | None = None,
        device: str | torch.device | None = "auto",
        seed: int = 0,
        num_samples: int = 1,
        batch_size: int = 16,
        save_images: bool = True,
        save_figures: bool = True,
        progress: bool = True,
        verify_checksum: bool = True,
        overwrite: bool = False,
    ) -> None:
        if isinstance(solvers, str):
            solvers = [solvers]
        if not solvers:
            raise ValueError("solvers is empty; expected at least one solver name.")
        self.solvers = list(dict.fromkeys(SolverName.parse(s, "solver") for s in solvers))
        self.spec = spec
        self.solver_kwargs = {SolverName.parse(k, "solver_kwargs key"): dict(v) for k, v in (solver_kwargs or {}).items()}
        self.device = resolve_device(device)
        self.seed = int(seed)
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples!r}.")
        self.num_samples = int(num_samples)
        self.batch_size = int(check_positive("batch_size", batch_size))
        self.prior_checkpoint = prior_checkpoint
        self.verify_checksum = check_bool("verify_checksum", verify_checksum)
        self.prior = None
        if any(needs_prior(s) for s in self.solvers):
            if prior_checkpoint is None or not Path(prior_checkpoint).is_file():
                raise FileNotFoundError(f"prior_checkpoint={str(prior_checkpoint)!r} does not exist (needed by the diffusion solvers).")
            self.prior = check_prior(prior_checkpoint, spec.image_size, self.verify_checksum, case_shapes(spec), self.device)
        self.save_images = check_bool("save_images", save_images)
        self.save_figures = check_bool("save_figures", save_figures)
        self.overwrite = check_bool("overwrite", overwrite)
        self.progress = progress
        self.inputs = [*spec.input_files, spec.example_data, prior_checkpoint]
        self.output_dir = check_output_dir(
            output_dir, inputs=self.inputs, outputs=self.output_files(case_names(spec)), overwrite=self.overwrite
        )
        # every solver is built (and so every solver argument checked) before any work starts
        self.built = build_solvers(
            self.solvers, self.prior, self.solver_kwargs, progress=self.progress, num_samples=self.num_samples, seed=self.seed
        )

    def output_files(self, names: Sequence[str]) -> list[Path]:
        """The files (relative to ``output_dir``) a run over the cases ``names`` writes."""
        files: list[Path] = []
        if self.save_images:
            for name in self.solvers:
                for case in names:
                    files.append(Path(name.value) / f"{case}.nii.gz")
                    if self.num_samples > 1 and needs_prior(name):
                        files.append(Path(name.value) / f"{case}_std.nii.gz")
        if self.save_figures:
            files += [Path("panels") / f"{case}.png" for case in names]
        return files + [Path(f) for f in ("metrics.csv", "metrics.md", "summary.csv", "summary.md")]

    def run(self) -> list[dict]:
        """Run every solver on every case; returns one metrics row per (case, solver)."""
        cases = load_cases(self.spec, seed=self.seed)
        if self.prior is not None:
            sizes = dict.fromkeys(tuple(c.kspace.shape[-2:]) for c in cases)
            require_prior_size(self.prior, sizes, self.prior_checkpoint)
            log_prior_tiling(self.prior, sizes)
        recons: dict[SolverName, list[np.ndarray]] = {}
        stds: dict[SolverName, list[np.ndarray | None]] = {}
        rows: list[dict] = []
        for name in self.solvers:
            solver = self.built[name]
            recons[name], stds[name] = [], []
            for batch in batches(cases, self.batch_size):
                kspace, operator = stack_cases(batch, self.device)
                t0 = time.perf_counter()
                image = solver(kspace, operator)
                elapsed = time.perf_counter() - t0
                if not bool(torch.isfinite(image).all()):
                    raise FloatingPointError(f"solver {name.value!r} returned NaN/Inf values.")
                info = getattr(solver, "info", None)
                std = getattr(info, "std", None)
                for i, case in enumerate(batch):
                    mag = image[i, 0].abs().detach().cpu().double().numpy()
                    recons[name].append(mag)
                    stds[name].append(None if std is None else std[i, 0].detach().cpu().numpy())
                    target = np.abs(case.target.numpy()).astype(np.float64)
                    rows.append(
                        {
                            "case": case.name,
                            "solver": name.value,
                            "R": self.spec.acceleration,
                            "R_effective": round(case.acceleration, 2),
                            "coils": case.num_coils,
                            "psnr": float(psnr(target, mag)),
                            "ssim": float(ssim(target, mag)),
                            "nmse": float(nmse(target, mag)),
                            "nfe": int(getattr(info, "nfe", 0) or 0),
                            "seconds": elapsed / len(batch),
                        }
                    )
                logger.info("%s: %d slice(s) in %.2f s", name.value, len(batch), elapsed)
        self._write(cases, recons, stds, rows)
        return rows

    def _write(self, cases, recons, stds, rows) -> None:
        """Write every output (see :meth:`output_files`); on failure remove the files and folders created here."""
        outputs = RunOutputs(self.output_dir, overwrite=self.overwrite)
        try:
            self._write_all(outputs, cases, recons, stds, rows)
        except BaseException:
            outputs.rollback()
            raise

    def _write_all(self, outputs: RunOutputs, cases, recons, stds, rows) -> None:
        protected = [p for p in self.inputs if p is not None]
        ow = self.overwrite
        outputs.folder()

        def nifti(image, case: Case, relative: str) -> None:
            # NIfTI inputs: the input's affine at the slice position and its axis order; otherwise identity (1 mm)
            arr, affine = case.geometry.volume(image) if case.geometry is not None else (image, None)
            write_nifti(arr, outputs.file(relative), protected=protected, overwrite=ow, affine=affine)

        for name in self.solvers:
            if self.save_images:
                for case, mag, std in zip(cases, recons[name], stds[name]):
                    nifti(mag, case, f"{name.value}/{case.name}.nii.gz")
                    if std is not None:
                        nifti(std, case, f"{name.value}/{case.name}_std.nii.gz")
        if self.save_figures:
            by_case = {(r["case"], r["solver"]): r for r in rows}
            for i, case in enumerate(cases):
                target = np.abs(case.target.numpy())
                panel = {name.value: recons[name][i] for name in self.solvers}
                titles = {
                    n: f"{n}\n{by_case[(case.name, n)]['psnr']:.2f} dB / SSIM {by_case[(case.name, n)]['ssim']:.3f}"
                    for n in panel
                }
                panel_stds = {name.value: stds[name][i] for name in self.solvers if stds[name][i] is not None}
                save_panel(target, panel, outputs.file(f"panels/{case.name}.png"), titles=titles,
                           suptitle=f"{case.name}: R={self.spec.acceleration:g} requested, "
                                    f"R_effective={case.acceleration:.1f}, {case.num_coils} coil(s)",
                           mask=case.mask.numpy(), stds=panel_stds)
        summary = summarise(rows)
        write_metrics_table(rows, outputs.file("metrics.csv"), outputs.file("metrics.md"), title="Per-slice metrics",
                            overwrite=ow)
        write_metrics_table(summary, outputs.file("summary.csv"), outputs.file("summary.md"),
                            title="Mean ± std over slices", overwrite=ow)
        logger.info("wrote outputs to %s", self.output_dir)
        for r in summary:
            logger.info("%s", r)


def summarise(rows: Sequence[dict]) -> list[dict]:
    """Mean ± std of PSNR/SSIM/NMSE, mean effective acceleration, NFE and seconds per (solver, R, coils)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["solver"], r["R"], r["coils"]), []).append(r)
    out = []
    digits = {"psnr": 2, "ssim": 3, "nmse": 4}
    for (solver, acc, coils), rs in groups.items():
        row = {"solver": solver, "R": acc, "R_effective": float(np.mean([r["R_effective"] for r in rs])),
               "coils": coils, "slices": len(rs)}
        for key, d in digits.items():
            v = np.array([r[key] for r in rs])
            row[key] = f"{v.mean():.{d}f} ± {v.std():.{d}f}"
        row["nfe"] = int(np.mean([r["nfe"] for r in rs]))
        row["s_per_slice"] = float(np.mean([r["seconds"] for r in rs]))
        out.append(row)
    return out
