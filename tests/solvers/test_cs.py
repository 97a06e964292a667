"""sigpy-backed TV and ℓ1-wavelet solvers: equality with raw sigpy, scale-free λ, quality vs zero-filled, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sigpy.mri.app import L1WaveletRecon, TotalVariationRecon

from monai_ddpm_recon.operators import MaskedFourier, SenseOperator, birdcage_maps, make_mask
from monai_ddpm_recon.solvers.baselines import ZeroFilledSolver
from monai_ddpm_recon.solvers.cs import L1WaveletSolver, TotalVariationSolver
from monai_ddpm_recon.solvers.tuning import psnr, tune_lambda
from tests.solvers.test_baselines import phantom

N = 48


def problem(accel: int = 4, coils: int = 4, n: int = N, seed: int = 0, mask_type: str = "random"):
    x = phantom(n)
    mask = make_mask(mask_type, (n, n), accel, center_fraction=0.1, seed=seed, calib_size=8)
    op = SenseOperator(birdcage_maps(coils, (n, n)), mask)
    return x, op.forward(x), op


@pytest.mark.parametrize("solver_cls", [TotalVariationSolver, L1WaveletSolver])
def test_matches_raw_sigpy_call(solver_cls):
    """With normalisation off and the same step sizes the wrapper is exactly the sigpy app."""
    x, y, op = problem()
    solver = solver_cls(lam=1e-3, max_iter=30, normalize=False)
    ours = solver(y, op)
    mps = op.sens_maps[0].numpy()
    w = torch.broadcast_to(op.mask, (1, 1, N, N))[0, 0].numpy()
    if solver_cls is TotalVariationSolver:
        sigma, tau = solver.steps(mps, w)
        assert sigma * tau * (1.0 + 8.0) <= 1.0 + 1e-6  # ‖A‖² = 1 (normalised maps) and ‖∇‖² <= 8
        raw = TotalVariationRecon(y[0].numpy(), mps, 1e-3, weights=w, max_iter=30, sigma=sigma, tau=tau,
                                  show_pbar=False).run()
    else:
        raw = L1WaveletRecon(y[0].numpy(), mps, 1e-3, weights=w, max_iter=30, alpha=solver.step(mps, w),
                             show_pbar=False).run()
    np.testing.assert_allclose(ours[0, 0].numpy(), raw, rtol=0, atol=1e-5 * np.abs(raw).max())


@pytest.mark.parametrize(
    "solver", [TotalVariationSolver(lam=1e-3, max_iter=100), L1WaveletSolver(lam=1e-3, max_iter=100)],
    ids=["tv", "l1wavelet"],
)
def test_beats_zero_filled_at_r4_multicoil(solver):
    """2D Poisson-disc R=4 (incoherent aliasing, the CS setting): measured +11 dB (ℓ1-wavelet), +30 dB (TV)."""
    x, y, op = problem(accel=4, mask_type="poisson")
    p_zf = float(psnr(x, ZeroFilledSolver()(y, op)))
    p = float(psnr(x, solver(y, op)))
    assert p > p_zf + 8.0, (p, p_zf)
    assert solver.info.iterations == solver.max_iter and solver.info.extra["lambda"] == 1e-3
    assert solver.info.wall_time_s > 0


def test_tv_beats_zero_filled_column_mask_multicoil():
    x, y, op = problem(accel=4, coils=8)  # 1D random columns: coherent aliasing, only TV copes well
    p_zf = float(psnr(x, ZeroFilledSolver()(y, op)))
    assert float(psnr(x, TotalVariationSolver(lam=1e-3, max_iter=100)(y, op))) > p_zf + 8.0


def test_tv_beats_zero_filled_single_coil():
    x = phantom(N)
    op = MaskedFourier(make_mask("random", (N, N), 4, center_fraction=0.1, seed=0), (N, N))
    y = op.forward(x)
    rec = TotalVariationSolver(lam=3e-3, max_iter=150)(y, op)
    assert rec.shape == (1, 1, N, N) and rec.dtype == torch.complex64
    assert float(psnr(x, rec)) > float(psnr(x, op.adjoint(y))) + 3.0


@pytest.mark.parametrize("solver_cls", [TotalVariationSolver, L1WaveletSolver])
def test_lambda_is_scale_free_and_solver_deterministic(solver_cls):
    x, y, op = problem()
    solver = solver_cls(lam=3e-3, max_iter=20)
    a = solver(y, op)
    torch.testing.assert_close(solver(y, op), a, rtol=0, atol=0)
    scaled = solver(1e4 * y, op) / 1e4
    assert float((scaled - a).abs().max() / a.abs().max()) < 1e-4
    assert solver.info.extra["scale"][0] > 0


def test_batched_equals_per_item_and_keeps_dtype():
    xs = torch.cat([phantom(N), 2.0 * phantom(N).conj()])
    maps = birdcage_maps(4, (N, N))
    masks = torch.cat([make_mask("random", (N, N), 4, center_fraction=0.1, seed=s) for s in (0, 1)])
    op = SenseOperator(maps, masks)
    y = op.forward(xs).to(torch.complex128)
    solver = TotalVariationSolver(lam=1e-3, max_iter=10)
    batched = solver(y, op)
    assert batched.dtype == torch.complex128 and batched.shape == (2, 1, N, N)
    for b in range(2):
        single = solver(y[b : b + 1], SenseOperator(maps, masks[b : b + 1]))
        torch.testing.assert_close(batched[b : b + 1], single)


def test_tune_lambda_picks_interior_best():
    x, y, op = problem(accel=4, n=32)
    res = tune_lambda(lambda lam: TotalVariationSolver(lam=lam, max_iter=60), [y], [op], [x], [1e-5, 1e-3, 1.0])
    assert res.grid == [1e-5, 1e-3, 1.0] and len(res.mean_psnr) == 3
    assert res.best_lambda == 1e-3 and not res.on_edge  # λ = 1 flattens the image, 1e-5 leaves aliasing
    assert res.mean_psnr[1] == max(res.mean_psnr)


def test_psnr_fastmri_convention():
    t = torch.zeros(1, 1, 4, 4, dtype=torch.complex64)
    t[..., 0, 0] = 2.0
    img = t.clone()
    img[..., 1, 1] = 0.5j  # only the magnitude error counts: MSE = 0.25/16
    expected = 10 * np.log10(4.0 / (0.25 / 16))
    assert abs(float(psnr(t, img)) - expected) < 1e-9


@pytest.mark.parametrize(
    "kwargs, name",
    [({"lam": -1e-3}, "lam"), ({"lam": float("nan")}, "lam"), ({"max_iter": 0}, "max_iter")],
)
@pytest.mark.parametrize("solver_cls", [TotalVariationSolver, L1WaveletSolver])
def test_bad_arguments(solver_cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        solver_cls(**kwargs)


def test_bad_step_sizes_and_wavelet():
    with pytest.raises(ValueError, match="sigma"):
        TotalVariationSolver(sigma=0.1)
    with pytest.raises(ValueError, match="step_ratio"):
        TotalVariationSolver(step_ratio=-1.0)
    with pytest.raises(ValueError, match="wave_name"):
        L1WaveletSolver(wave_name="nope")
    with pytest.raises(ValueError, match="kspaces"):
        tune_lambda(lambda lam: TotalVariationSolver(lam=lam), [], [], [], [1e-3])


def test_operator_mismatch():
    x, y, op = problem(coils=4)
    with pytest.raises(ValueError, match="kspace"):
        TotalVariationSolver(max_iter=2)(y[:, :2], op)
    with pytest.raises(ValueError, match="batch size"):
        TotalVariationSolver(max_iter=2)(torch.cat([y, y, y]), SenseOperator(op.sens_maps.expand(2, -1, -1, -1), op.mask))


class _Diverging:
    def run(self):
        return np.full((N, N), np.nan, dtype=np.complex64)


def test_nan_result_raises(monkeypatch):
    x, y, op = problem()
    solver = TotalVariationSolver(max_iter=2)
    monkeypatch.setattr(solver, "_app", lambda *a: _Diverging())
    with pytest.raises(RuntimeError, match="NaN"):
        solver(y, op)
