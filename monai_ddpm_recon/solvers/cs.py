"""Compressed-sensing baselines through sigpy: total variation and ℓ1-wavelet regularised SENSE.

Both solve, per batch item, ``min_x ½‖M F S x − ŷ‖² + λ R(x)`` on the normalised k-space ``ŷ = y / s``
(``s`` = 99th percentile of ``|Aᴴ y|``, see :func:`.baselines.kspace_scale`) and return ``s · x``, so ``λ`` does not
depend on the arbitrary k-space scale: the zero-filled image of the normalised data has a robust maximum of 1.

References:
    Block, Uecker & Frahm (2007), MRM 57(6):1086 (TV); Lustig, Donoho & Pauly (2007), MRM 58(6):1182 (ℓ1-wavelet);
    Ong & Lustig (2019), SigPy, ISMRM p. 4819.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..operators.base import LinearOperator
from ..utils.validation import check_positive
from .base import ReconInfo
from .baselines import (
    check_iterations,
    check_kspace,
    check_lambda,
    check_result,
    kspace_scale,
    numpy_complex_dtype,
    operator_numpy,
    pick,
)

#: Defaults chosen from benchmarks/cs_baselines.py (Colin27 axial slice 128², 8 birdcage coils, 1% noise, R=4 and 8
#: random columns): λ = best of the log grid 1e-4…1e-2 by mean PSNR; iterations: the PSNR curve is flat from 100
#: (TV 30.13 / 30.09 / 30.02 dB at 100 / 200 / 400; ℓ1 27.70 / 27.61 / 27.63), TV keeps a 2x margin because
#: noise-free or small images converge more slowly (benchmarks/results/cs_convergence.png).
TV_DEFAULT_LAMBDA = 1e-3
TV_DEFAULT_ITERS = 200
TV_DEFAULT_STEP_RATIO = 1000.0
L1_DEFAULT_LAMBDA = 1e-3
L1_DEFAULT_ITERS = 100


class _SigpyRecon:
    """Shared machinery: validation, operator conversion (once per call), normalisation, per-item sigpy runs."""

    name = "sigpy"

    def __init__(self, lam: float, max_iter: int, normalize: bool = True) -> None:
        self.lam = check_lambda("lam", lam)
        self.max_iter = check_iterations("max_iter", max_iter)
        self.normalize = bool(normalize)
        self.info = ReconInfo()

    def _app(self, y: np.ndarray, mps: np.ndarray, weights: np.ndarray, lam: float):
        raise NotImplementedError

    def __call__(self, kspace: torch.Tensor, operator: LinearOperator) -> torch.Tensor:
        """Reconstruct ``(B, C, H, W)`` complex k-space; returns ``(B, 1, H, W)`` with the dtype of ``kspace``."""
        t0 = time.perf_counter()
        check_kspace(kspace, operator)
        b = kspace.shape[0]
        dtype = numpy_complex_dtype(kspace)
        maps, weights = operator_numpy(operator, b, dtype)
        scales = kspace_scale(kspace, operator) if self.normalize else torch.ones(b)
        scales_np = scales.detach().cpu().double().numpy()
        y_all = kspace.detach().cpu().numpy()
        out = np.empty((b, 1, *operator.image_shape), dtype=dtype)
        for i in range(b):
            y = (y_all[i] / scales_np[i]).astype(dtype, copy=False)
            x = self._app(y, pick(maps, i), pick(weights, i), self.lam).run()
            out[i, 0] = np.asarray(x) * scales_np[i]
        image = torch.from_numpy(out).to(kspace.device)
        check_result(type(self).__name__, image)
        self.info = ReconInfo(
            iterations=self.max_iter,
            wall_time_s=time.perf_counter() - t0,
            extra={"lambda": self.lam, "scale": scales_np.tolist()},
        )
        return image


class TotalVariationSolver(_SigpyRecon):
    """TV-regularised SENSE via ``sigpy.mri.app.TotalVariationRecon`` (anisotropic TV, PDHG).

    Solves ``min_x ½‖M F S x − y/s‖² + λ ‖∇x‖₁`` per item (``s``: 99th percentile of ``|Aᴴy|``) and returns ``s·x``.

    Args:
        lam: TV weight ``λ >= 0`` on the normalised data (scale-free).
        max_iter: PDHG iterations (>= 1). sigpy's PDHG converges slowly; the default was read off the
            PSNR-vs-iterations curve of ``benchmarks/cs_baselines.py``.
        normalize: apply the scale rule (turn off only to reproduce a raw sigpy call).
        step_ratio: primal/dual step ratio ``τ/σ`` of PDHG (Chambolle & Pock, 2011). Steps are
            ``τ = sqrt(r/L)``, ``σ = 1/sqrt(r L)`` with the bound ``L = max Σ_c|S_c|² · max M² + 8 ≥ ‖[A; ∇]‖²``
            (8 = ‖∇‖² of 2D forward differences), so ``στL = 1`` without a power iteration. sigpy's own choice
            (``σ = 1``, ``τ = 1/L``) converges far more slowly on normalised data: on the benchmark slice
            (128², 8 coils, R=4, noise 1%) 30.1 dB after 100 iterations with ``r = 1000`` vs 22.1 dB (100) and
            24.1 dB (400) with sigpy's steps; ``r = 1000`` was the best of a coarse sweep (r ∈ {9, 81, 729, 6561}
            at L=9, noise-free).
        sigma, tau: explicit PDHG steps (both or neither); override ``step_ratio``. ``sigma=tau=None`` with
            ``step_ratio=None`` reproduces sigpy's defaults (whose power iteration starts from a random vector,
            so repeated calls differ slightly; the default ``step_ratio`` path is deterministic).

    Call: ``solver(kspace (B, C, H, W) complex, operator) -> (B, 1, H, W)``; ``info.extra["lambda"]`` is ``λ``.
    """

    def __init__(
        self,
        lam: float = TV_DEFAULT_LAMBDA,
        max_iter: int = TV_DEFAULT_ITERS,
        normalize: bool = True,
        step_ratio: float | None = TV_DEFAULT_STEP_RATIO,
        sigma: float | None = None,
        tau: float | None = None,
    ) -> None:
        super().__init__(lam, max_iter, normalize)
        if (sigma is None) != (tau is None):
            raise ValueError(f"sigma and tau must be given together (got sigma={sigma!r}, tau={tau!r}).")
        self.sigma = None if sigma is None else check_positive("sigma", sigma)
        self.tau = None if tau is None else check_positive("tau", tau)
        self.step_ratio = None if step_ratio is None else check_positive("step_ratio", step_ratio)

    def steps(self, mps: np.ndarray, weights: np.ndarray) -> tuple[float | None, float | None]:
        """PDHG ``(σ, τ)`` for one item's maps ``(C, H, W)`` and weights ``(H, W)`` (see ``step_ratio``)."""
        if self.sigma is not None or self.step_ratio is None:
            return self.sigma, self.tau
        lip = float((np.abs(mps) ** 2).sum(axis=0).max() * np.max(weights) ** 2) + 8.0
        return 1.0 / float(np.sqrt(self.step_ratio * lip)), float(np.sqrt(self.step_ratio / lip))

    def _app(self, y, mps, weights, lam):
        from sigpy.mri.app import TotalVariationRecon

        sigma, tau = self.steps(mps, weights)
        return TotalVariationRecon(
            y, mps, lam, weights=weights, max_iter=self.max_iter, sigma=sigma, tau=tau, show_pbar=False
        )

    def __repr__(self) -> str:
        return f"TotalVariationSolver(lam={self.lam}, max_iter={self.max_iter})"


class L1WaveletSolver(_SigpyRecon):
    """ℓ1-wavelet-regularised SENSE via ``sigpy.mri.app.L1WaveletRecon`` (FISTA; Lustig et al., 2007).

    Solves ``min_x ½‖M F S x − y/s‖² + λ ‖W x‖₁`` per item (``s``: 99th percentile of ``|Aᴴy|``) and returns ``s·x``.

    Args:
        lam: ℓ1 weight ``λ >= 0`` on the normalised data (scale-free).
        max_iter: FISTA iterations (>= 1).
        wave_name: PyWavelets name (``"db4"`` as sigpy's default).
        normalize: apply the scale rule.
        fixed_step: use the step ``1/L`` from the bound ``L = max Σ|S|² · max M²`` (exact for normalised maps)
            instead of sigpy's 30 power iterations, which start from a random vector and so make results differ
            from call to call.
    """

    def __init__(
        self, lam: float = L1_DEFAULT_LAMBDA, max_iter: int = L1_DEFAULT_ITERS, wave_name: str = "db4",
        normalize: bool = True, fixed_step: bool = True,
    ) -> None:
        super().__init__(lam, max_iter, normalize)
        self.fixed_step = bool(fixed_step)
        import pywt

        if wave_name not in pywt.wavelist(kind="discrete"):
            raise ValueError(f"wave_name={wave_name!r} is not a discrete PyWavelets wavelet (e.g. 'db4', 'haar').")
        self.wave_name = wave_name

    def _app(self, y, mps, weights, lam):
        from sigpy.mri.app import L1WaveletRecon

        return L1WaveletRecon(
            y, mps, lam, weights=weights, wave_name=self.wave_name, max_iter=self.max_iter,
            alpha=self.step(mps, weights), show_pbar=False,
        )

    def step(self, mps: np.ndarray, weights: np.ndarray) -> float | None:
        """FISTA step ``1/L`` with ``L = max Σ_c|S_c|² · max M² ≥ ‖AᴴA‖`` (``None``: sigpy's power iteration)."""
        if not self.fixed_step:
            return None
        lip = float((np.abs(mps) ** 2).sum(axis=0).max() * np.max(weights) ** 2)
        return 1.0 / lip

    def __repr__(self) -> str:
        return f"L1WaveletSolver(lam={self.lam}, max_iter={self.max_iter}, wave_name={self.wave_name!r})"
