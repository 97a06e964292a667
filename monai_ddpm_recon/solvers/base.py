"""The solver call shape shared by every reconstruction method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from ..operators.base import LinearOperator


@dataclass
class ReconInfo:
    """What a solver reports about its last call.

    Attributes:
        nfe: number of prior network evaluations (0 for non-learned solvers).
        iterations: iterations of the optimiser or sampler.
        wall_time_s: wall-clock seconds of the call.
        std: pixelwise standard deviation over posterior samples ``(B, 1, H, W)`` real, or ``None``.
        extra: anything solver-specific (e.g. λ used, loss history).
    """

    nfe: int = 0
    iterations: int = 0
    wall_time_s: float = 0.0
    std: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Solver(Protocol):
    """``solver(kspace, operator) -> image``.

    ``kspace`` is ``(B, C, H, W)`` complex (``C = operator.num_coils``); the returned image is ``(B, 1, H, W)``
    complex in the same physical units as ``operator.adjoint(kspace)``. After each call ``solver.info``
    holds a :class:`ReconInfo`.
    """

    info: ReconInfo

    def __call__(self, kspace: torch.Tensor, operator: LinearOperator) -> torch.Tensor: ...
