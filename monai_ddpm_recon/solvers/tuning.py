"""Regularisation-weight selection on validation data: pick λ from a log grid by mean PSNR."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..utils.validation import check_positive

#: Default log grid for λ on normalised data (see :func:`.baselines.kspace_scale`).
DEFAULT_LAMBDA_GRID = tuple(float(v) for v in np.logspace(-4, -1, 7))


def psnr(target: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) per batch item in the fastMRI convention: on magnitudes, ``data_range = max |target|`` of the item,
    ``10 log10(range² / MSE)`` — :func:`monai_ddpm_recon.metrics.psnr` with ``per_item=True``.

    Args:
        target, image: ``(B, 1, H, W)`` or ``(H, W)``, complex or real.

    Returns:
        float64 tensor ``(B,)`` (``(1,)`` for 2D input).
    """
    from ..metrics import psnr as metric_psnr

    return metric_psnr(target, image, per_item=True)


@dataclass
class TuneResult:
    """Outcome of :func:`tune_lambda`.

    Attributes:
        best_lambda: grid value with the highest mean PSNR.
        grid: the λ values tried (ascending).
        mean_psnr: mean PSNR (dB) over the validation items for each λ.
        psnr: per-item PSNR, ``len(grid) × n_items``.
    """

    best_lambda: float
    grid: list[float]
    mean_psnr: list[float]
    psnr: list[list[float]]

    @property
    def on_edge(self) -> bool:
        """True when the best λ is the smallest or largest grid value (extend the grid)."""
        return self.best_lambda in (self.grid[0], self.grid[-1])


def _as_list(name: str, value) -> list:
    if isinstance(value, torch.Tensor) or not isinstance(value, Sequence):
        return [value]
    if len(value) == 0:
        raise ValueError(f"{name} is empty; expected at least one validation item.")
    return list(value)


def tune_lambda(
    solver_factory: Callable[[float], Callable],
    kspaces,
    operators,
    targets,
    grid: Sequence[float] | None = None,
) -> TuneResult:
    """Pick the regularisation weight from a log grid by mean PSNR on validation data.

    Args:
        solver_factory: ``λ -> solver`` (e.g. ``lambda lam: TotalVariationSolver(lam=lam)``).
        kspaces: one k-space ``(B, C, H, W)`` or a sequence of them.
        operators: the matching operator(s) (one per k-space).
        targets: the matching ground-truth image(s) ``(B, 1, H, W)`` (complex or real; PSNR is on magnitudes).
        grid: λ values (positive, finite); default :data:`DEFAULT_LAMBDA_GRID` (1e-4 … 1e-1, 7 points).

    Returns:
        :class:`TuneResult` (mean over all batch items of all validation k-spaces; ties go to the smaller λ).
    """
    ks, ops, tgs = _as_list("kspaces", kspaces), _as_list("operators", operators), _as_list("targets", targets)
    if not len(ks) == len(ops) == len(tgs):
        raise ValueError(
            f"kspaces, operators and targets must have the same length, got {len(ks)}, {len(ops)}, {len(tgs)}."
        )
    grid = list(DEFAULT_LAMBDA_GRID if grid is None else grid)
    if not grid:
        raise ValueError("grid is empty; expected at least one λ value.")
    grid = sorted(check_positive("grid", g) for g in grid)
    table = []
    for lam in grid:
        solver = solver_factory(lam)
        vals: list[float] = []
        for k, op, t in zip(ks, ops, tgs):
            vals += [float(v) for v in torch.atleast_1d(psnr(t, solver(k, op)))]
        table.append(vals)
    means = [float(np.mean(v)) for v in table]
    best = int(np.argmax([m if math.isfinite(m) else -np.inf for m in means]))
    return TuneResult(best_lambda=grid[best], grid=grid, mean_psnr=means, psnr=table)
