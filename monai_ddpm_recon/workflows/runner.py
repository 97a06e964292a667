"""The one solver runner: batching of cases, the batched operator, and a MONAI ``SupervisedEvaluator`` around a solver.

The bundle's workflows (:mod:`.reconstruct`, :mod:`.evaluate`) and the scripts in ``benchmarks/`` run solvers
through these functions, so every number is computed the same way: :func:`batches` groups same-shaped cases,
:func:`stack_cases` builds one operator per batch, and :func:`run_evaluator` runs a solver over all cases with
per-slice PSNR / SSIM / NMSE (:mod:`monai_ddpm_recon.metrics`, fastMRI's conventions).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from ..metrics import NMSEMetric, PSNRMetric, SSIMMetric
from ..operators import MaskedFourier, SenseOperator
from .cases import Case


def batches(cases: Sequence[Case], batch_size: int) -> list[list[Case]]:
    """Consecutive groups of at most ``batch_size`` cases with the same k-space shape (so they stack)."""
    out: list[list[Case]] = []
    for case in cases:
        if out and len(out[-1]) < batch_size and out[-1][0].kspace.shape == case.kspace.shape \
                and (out[-1][0].maps is None) == (case.maps is None):
            out[-1].append(case)
        else:
            out.append([case])
    return out


def stack_cases(cases: Sequence[Case], device: torch.device):
    """Batch same-shaped cases: k-space ``(B, C, H, W)`` and one operator with per-item maps and masks.

    Returns:
        ``(kspace, operator)``: a :class:`~monai_ddpm_recon.operators.MaskedFourier` for single-coil cases (no maps),
        else a :class:`~monai_ddpm_recon.operators.SenseOperator`.
    """
    kspace = torch.stack([c.kspace for c in cases]).to(device)
    masks = torch.stack([c.mask for c in cases]).to(device)
    if cases[0].maps is None:
        return kspace, MaskedFourier(masks, tuple(kspace.shape[-2:]))
    maps = torch.stack([c.maps for c in cases]).to(device)
    return kspace, SenseOperator(maps, masks)


class SolverNetwork(torch.nn.Module):
    """Wrap ``solver(kspace, operator) -> image`` as a module returning the magnitude ``(B, 1, H, W)`` float32."""

    def __init__(self, solver) -> None:
        super().__init__()
        self.solver = solver

    def forward(self, kspace: torch.Tensor, operator) -> torch.Tensor:
        return self.solver(kspace, operator).abs().float()


def prepare_case_batch(batchdata: Sequence[Case], device=None, non_blocking: bool = False, **kwargs):
    """MONAI ``prepare_batch``: a list of :class:`Case` → ``(kspace, target magnitude, (operator,), {})``."""
    kspace, operator = stack_cases(batchdata, torch.device(device or "cpu"))
    target = torch.stack([c.target.abs() for c in batchdata])[:, None].float().to(kspace.device)
    return kspace, target, (operator,), {}


def run_evaluator(solver, cases: Sequence[Case], device: torch.device, batch_size: int) -> dict:
    """Run ``solver`` over ``cases`` in a MONAI ``SupervisedEvaluator``.

    Args:
        solver: ``solver(kspace (B, C, H, W), operator) -> image (B, 1, H, W)``; its ``info.nfe`` is recorded.
        cases: the cases, batched by :func:`batches`.
        device: where the solver runs.
        batch_size: most cases per solver call.

    Returns:
        dict with ``psnr``, ``ssim``, ``nmse`` (float64 arrays ``(N,)``, one value per case), ``seconds`` (wall time
        per case, float), ``nfe`` (mean network evaluations per call, int) and ``preds`` (magnitude float32 arrays
        ``(H, W)``, one per case).
    """
    from ignite.engine import Events
    from monai.engines import SupervisedEvaluator
    from monai.handlers import IgniteMetricHandler, from_engine

    loader = batches(cases, batch_size)
    transform = from_engine(["pred", "label"])
    evaluator = SupervisedEvaluator(
        device=device,
        val_data_loader=loader,
        epoch_length=len(loader),
        network=SolverNetwork(solver),
        prepare_batch=prepare_case_batch,
        key_val_metric={"psnr": IgniteMetricHandler(PSNRMetric(), output_transform=transform, save_details=True)},
        additional_metrics={
            "ssim": IgniteMetricHandler(SSIMMetric(), output_transform=transform, save_details=True),
            "nmse": IgniteMetricHandler(NMSEMetric(), output_transform=transform, save_details=True),
        },
        decollate=False,  # batches are lists of Case objects; metrics take batch-first tensors directly
    )
    preds: list[np.ndarray] = []
    nfe = []

    def collect(engine):
        preds.extend(p[0].detach().cpu().numpy() for p in engine.state.output["pred"])
        info = getattr(solver, "info", None)
        nfe.append(int(getattr(info, "nfe", 0) or 0))

    evaluator.add_event_handler(Events.ITERATION_COMPLETED, collect)
    t0 = time.perf_counter()
    evaluator.run()
    seconds = (time.perf_counter() - t0) / len(cases)
    details = {k: np.asarray(v.cpu()).reshape(-1) for k, v in evaluator.state.metric_details.items()}
    return {**details, "seconds": seconds, "nfe": int(np.mean(nfe)) if nfe else 0, "preds": preds}


def score_cases(solver, cases: Sequence[Case], device: torch.device, batch_size: int) -> dict:
    """The benchmarks' summary of ``solver`` on ``cases``: :func:`run_evaluator` of the solver and of zero-filled.

    Args:
        solver: ``solver(kspace, operator) -> image``.
        cases: the cases (PSNR / SSIM against each case's magnitude target, ``data_range = target.max()``).
        device: where the solver runs.
        batch_size: most cases per solver call.

    Returns:
        dict with ``psnr`` and ``ssim`` (means over cases), ``s_per_slice`` (wall seconds per case), ``nfe``,
        ``min_gain_over_zf`` (dB: the smallest per-case PSNR gain over zero-filled) and ``per_slice`` (one dict per
        case: ``case``, ``psnr``, ``ssim``, ``zf_psnr``, ``gain``).

    Raises:
        ValueError: the solver returned NaN or Inf for some case (the metrics refuse it).
    """
    from ..solvers import ZeroFilledSolver

    res = run_evaluator(solver, cases, device, batch_size)
    zf = run_evaluator(ZeroFilledSolver(), cases, device, batch_size)["psnr"]
    gains = res["psnr"] - zf
    per_slice = [{"case": c.name, "psnr": float(p), "ssim": float(s), "zf_psnr": float(z), "gain": float(g)}
                 for c, p, s, z, g in zip(cases, res["psnr"], res["ssim"], zf, gains)]
    return {"psnr": float(np.mean(res["psnr"])), "ssim": float(np.mean(res["ssim"])), "s_per_slice": res["seconds"],
            "nfe": res["nfe"], "min_gain_over_zf": float(np.min(gains)), "per_slice": per_slice}
