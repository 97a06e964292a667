"""The benchmark: solvers × accelerations × coil settings, each run inside a MONAI ``SupervisedEvaluator``.

This is also how a solver enters an existing MONAI workflow (see :mod:`.runner`): :class:`SolverNetwork` makes it
look like a network (``forward(kspace, operator) -> magnitude``), :func:`prepare_case_batch` turns a batch of cases
into ``(kspace, target, (operator,), {})``, and MONAI metric handlers (PSNR/SSIM/NMSE from
:mod:`monai_ddpm_recon.metrics`) accumulate per-slice values.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import torch

from ..io import check_output_dir, save_panel, save_psnr_vs_acceleration, write_metrics_table
from ..utils.validation import check_bool
from .cases import CaseSpec, case_shapes, load_cases
from .reconstruct import check_prior, resolve_device
from .runner import SolverNetwork, prepare_case_batch, run_evaluator  # noqa: F401 (the bundle docs import the first two from here)
from .registry import SolverName, build_solvers, needs_prior

logger = logging.getLogger(__name__)


def psnr_curves(rows: Sequence[Mapping]) -> dict[str, dict[str, list[tuple[float, float, float]]]]:
    """``{"8 coils": {solver: [(R, PSNR mean, PSNR std), ...]}}`` from benchmark rows (dicts or CSV rows), in row order."""
    curves: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    for row in rows:
        coils = int(row["coils"])
        panel = curves.setdefault(f"{coils} coil{'s' if coils > 1 else ''}", {})
        panel.setdefault(str(row["solver"]), []).append(
            (float(row["R"]), float(row["psnr_mean"]), float(row["psnr_std"]))
        )
    return curves


class BenchmarkWorkflow:
    """Every solver × acceleration × coil setting on the same slices → table, CSV, figures.

    Args:
        output_dir: output folder.
        solvers: solver names.
        spec: base :class:`CaseSpec` (its ``acceleration``/``num_coils`` are replaced by the grid below).
        accelerations: e.g. ``[4, 8, 12]``.
        coil_settings: e.g. ``[1, 8]`` (1 = single-coil).
        prior_checkpoint, solver_kwargs, device, seed, batch_size, verify_checksum: as in the inference workflow.
        overwrite: replace output files that exist already; False (the default) refuses before any work if one of
            the files the benchmark writes exists (the folder is created when the first file is written).
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        solvers: Sequence[str],
        spec: CaseSpec,
        accelerations: Sequence[float] = (4, 8, 12),
        coil_settings: Sequence[int] = (1, 8),
        prior_checkpoint: str | os.PathLike | None = None,
        solver_kwargs: dict | None = None,
        device: str | torch.device | None = "auto",
        seed: int = 0,
        batch_size: int = 16,
        progress: bool = True,
        verify_checksum: bool = True,
        overwrite: bool = False,
    ) -> None:
        self.solvers = [SolverName.parse(s, "solver") for s in solvers]
        if not self.solvers:
            raise ValueError("solvers is empty; expected at least one solver name.")
        for r in accelerations:
            if not float(r) > 1:
                raise ValueError(f"accelerations must all be > 1, got {list(accelerations)}.")
        self.spec = spec
        self.accelerations = [float(r) for r in accelerations]
        self.coil_settings = [int(c) for c in coil_settings]
        self.prior_checkpoint = prior_checkpoint
        self.solver_kwargs = {SolverName.parse(k, "solver_kwargs key"): dict(v) for k, v in (solver_kwargs or {}).items()}
        self.device = resolve_device(device)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.progress = progress
        self.verify_checksum = check_bool("verify_checksum", verify_checksum)
        prior = None
        if any(needs_prior(s) for s in self.solvers):
            if prior_checkpoint is None or not os.path.isfile(prior_checkpoint):
                raise FileNotFoundError(f"prior_checkpoint={str(prior_checkpoint)!r} does not exist (needed by the diffusion solvers).")
            prior = check_prior(prior_checkpoint, spec.image_size, self.verify_checksum, case_shapes(spec), self.device)
        self.overwrite = check_bool("overwrite", overwrite)
        # every solver is built (its arguments checked) before any work
        self._built = build_solvers(self.solvers, prior, self.solver_kwargs, progress=self.progress, seed=self.seed)
        self.output_dir = check_output_dir(
            output_dir, inputs=[*spec.input_files, spec.example_data, prior_checkpoint], outputs=self.output_files(),
            overwrite=self.overwrite,
        )

    def output_files(self) -> list[str]:
        """The files (relative to ``output_dir``) the benchmark writes."""
        panels = [f"panel_R{acc:g}_{coils}coil.png" for coils in self.coil_settings for acc in self.accelerations]
        return ["benchmark.csv", "benchmark.md", "psnr_vs_acceleration.png", *panels]

    def run(self) -> list[dict]:
        rows: list[dict] = []
        for coils in self.coil_settings:
            for acc in self.accelerations:
                spec = replace(self.spec, acceleration=acc, num_coils=coils)
                cases = load_cases(spec, seed=self.seed)
                panel = {}
                for name in self.solvers:
                    solver = self._built[name]
                    res = run_evaluator(solver, cases, self.device, self.batch_size)
                    row = {
                        "solver": name.value,
                        "coils": coils,
                        "R": acc,
                        "R_effective": float(np.mean([c.acceleration for c in cases])),
                        "slices": len(cases),
                        "psnr_mean": float(res["psnr"].mean()),
                        "psnr_std": float(res["psnr"].std()),
                        "ssim_mean": float(res["ssim"].mean()),
                        "ssim_std": float(res["ssim"].std()),
                        "nmse_mean": float(res["nmse"].mean()),
                        "nmse_std": float(res["nmse"].std()),
                        "nfe": res["nfe"],
                        "s_per_slice": res["seconds"],
                    }
                    rows.append(row)
                    logger.info("%s", row)
                    panel[name.value] = res["preds"][0]
                save_panel(
                    np.abs(cases[0].target.numpy()), panel,
                    self.output_dir / f"panel_R{acc:g}_{coils}coil.png",
                    suptitle=f"{cases[0].name}: R={acc:g}, {coils} coil(s)",
                    mask=cases[0].mask.numpy(),
                )
                write_metrics_table(rows, self.output_dir / "benchmark.csv", self.output_dir / "benchmark.md",
                                    title="Benchmark (mean and std over slices)")
        save_psnr_vs_acceleration(psnr_curves(rows), self.output_dir / "psnr_vs_acceleration.png")
        return rows
