"""Zero-filled and SENSE baselines: analytic cases, batching, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sigpy
import torch

from monai_ddpm_recon.operators import MaskedFourier, SenseOperator, birdcage_maps, fft2c, ifft2c, make_mask
from monai_ddpm_recon.solvers.base import ReconInfo, Solver
from monai_ddpm_recon.solvers.baselines import SenseSolver, ZeroFilledSolver, kspace_scale

N = 32


def phantom(n: int = N) -> torch.Tensor:
    """Shepp-Logan with a smooth phase, ``(1, 1, n, n)`` complex64."""
    mag = torch.from_numpy(np.abs(sigpy.shepp_logan((n, n))).astype(np.float32))
    u = torch.linspace(-1, 1, n)
    phase = 0.7 * u[None, :] + 0.4 * u[:, None] ** 2
    return (mag * torch.exp(1j * phase)).to(torch.complex64)[None, None]


def sense_problem(accel: float | None = 4, coils: int = 4, normalize: bool = True, n: int = N):
    x = phantom(n)
    maps = birdcage_maps(coils, (n, n), normalize=normalize)
    mask = torch.ones(n) if accel is None else make_mask("random", (n, n), accel, center_fraction=0.1, seed=0)
    op = SenseOperator(maps, mask)
    return x, op.forward(x), op


def test_zero_filled_adjoint_is_operator_adjoint_and_inverts_full_sampling():
    x, y, op = sense_problem(accel=4)
    zf = ZeroFilledSolver()
    assert isinstance(zf, Solver)
    torch.testing.assert_close(zf(y, op), op.adjoint(y))
    assert isinstance(zf.info, ReconInfo) and zf.info.iterations == 0
    xf, yf, opf = sense_problem(accel=None)  # Σ|S|² = 1: SENSE combination inverts full sampling
    torch.testing.assert_close(zf(yf, opf), xf, atol=1e-5, rtol=1e-5)
    single = MaskedFourier(torch.ones(N), (N, N))
    torch.testing.assert_close(zf(single.forward(x), single), x, atol=1e-5, rtol=1e-5)


def test_zero_filled_rss():
    x, y, op = sense_problem(accel=4)
    rss = ZeroFilledSolver("rss")(y, op)
    expected = ifft2c(op.mask * y).abs().pow(2).sum(dim=1, keepdim=True).sqrt()
    assert rss.dtype == y.dtype and rss.shape == (1, 1, N, N)
    torch.testing.assert_close(rss.real, expected)
    assert float(rss.imag.abs().max()) == 0.0
    xf, yf, opf = sense_problem(accel=None)  # sqrt(Σ|S_c x|²) = |x| when Σ|S|² = 1
    torch.testing.assert_close(ZeroFilledSolver("rss")(yf, opf).real, xf.abs(), atol=1e-5, rtol=1e-5)


def test_sense_full_sampling_returns_image_with_unnormalised_maps():
    x, y, op = sense_problem(accel=None, coils=6, normalize=False)
    s = SenseSolver(max_iter=100, tol=1e-7)
    rec = s(y, op)
    assert float((rec - x).abs().max() / x.abs().max()) < 1e-4
    assert 1 <= s.info.iterations <= 100 and s.info.extra["lambda"] == 0.0


def test_sense_tikhonov_matches_closed_form_single_coil():
    x = phantom()
    mask = make_mask("random", (N, N), 4, center_fraction=0.1, seed=1)
    op = MaskedFourier(mask, (N, N))
    y = op.forward(x)
    mu = 0.3
    rec = SenseSolver(mu=mu, max_iter=50, tol=1e-8)(y, op)
    m = op.mask
    expected = ifft2c(m * y / (m * m + mu))  # (FᴴM²F + μI)⁻¹ FᴴM y is diagonal in k-space
    torch.testing.assert_close(rec, expected, atol=1e-5, rtol=1e-4)


def test_sense_batched_equals_per_item_and_beats_zero_filled():
    xs = torch.cat([phantom(), phantom().conj() * 0.5])
    maps = birdcage_maps(4, (N, N))
    masks = torch.cat([make_mask("random", (N, N), 2, center_fraction=0.1, seed=s) for s in (0, 1)])
    op = SenseOperator(maps, masks)
    y = op.forward(xs)
    s = SenseSolver(max_iter=40, tol=0)
    batched = s(y, op)
    for b in range(2):
        single = s(y[b : b + 1], SenseOperator(maps, masks[b : b + 1]))
        torch.testing.assert_close(batched[b : b + 1], single, atol=1e-5, rtol=1e-4)
    err_sense = float((batched - xs).abs().norm())
    err_zf = float((op.adjoint(y) - xs).abs().norm())
    assert err_sense < 0.7 * err_zf  # 4 coils at 32² are ill-conditioned: CG improves slowly, but it improves
    assert max(s.info.extra["relative_residual"]) < 1e-3


def test_kspace_scale_is_99th_percentile_and_equivariant():
    x, y, op = sense_problem()
    s = kspace_scale(y, op)
    ref = np.percentile(op.adjoint(y).abs().numpy().ravel(), 99)
    assert s.shape == (1,) and math.isclose(float(s), ref, rel_tol=1e-5)
    assert math.isclose(float(kspace_scale(123.0 * y, op)), 123.0 * ref, rel_tol=1e-5)


def test_solver_scales_follow_the_one_rule():
    """CS baselines (p 99) and the diffusion solvers' mapping (p 100) both use ``intensity_scale`` of ``|Aᴴ y|``."""
    from monai_ddpm_recon.data.slices import intensity_scale
    from monai_ddpm_recon.solvers.mapping import SCALE_PERCENTILE, PriorMapping

    x, y, op = sense_problem()
    y2 = torch.cat([y, 0.3 * y.flip(-1)])
    op2 = SenseOperator(op.sens_maps.expand(2, *op.sens_maps.shape[1:]), op.mask)
    zf = op2.adjoint(y2)
    assert kspace_scale(y2, op2).tolist() == [float(torch.tensor(intensity_scale(z, 99.0), dtype=torch.float32)) for z in zf]
    mapped = PriorMapping.from_kspace(y2, op2, 1, "none").scale.flatten().tolist()
    assert SCALE_PERCENTILE == 100.0
    assert mapped == [float(torch.tensor(intensity_scale(z, SCALE_PERCENTILE), dtype=torch.float32)) for z in zf]
    empty = torch.zeros_like(y2)
    assert kspace_scale(empty, op2).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="scale"):
        PriorMapping.from_kspace(empty, op2, 1, "none")


def test_sense_runs_in_float64():
    x, y, op = sense_problem(accel=None)
    rec = SenseSolver()(y.to(torch.complex128), op)
    assert rec.dtype == torch.complex128


@pytest.mark.parametrize(
    "kwargs, name", [({"mu": -1.0}, "mu"), ({"mu": float("nan")}, "mu"), ({"max_iter": 0}, "max_iter"),
                     ({"max_iter": 2.5}, "max_iter"), ({"tol": -1e-3}, "tol")]
)
def test_sense_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SenseSolver(**kwargs)


def test_bad_mode_and_mismatch():
    with pytest.raises(ValueError, match="mode"):
        ZeroFilledSolver("sum")
    x, y, op = sense_problem(coils=4)
    for solver in (ZeroFilledSolver(), SenseSolver()):
        with pytest.raises(ValueError, match="kspace"):
            solver(y[:, :3], op)  # 3 coils for a 4-coil operator
        with pytest.raises(ValueError, match="kspace"):
            solver(y[..., :-1], op)
        with pytest.raises(TypeError, match="kspace"):
            solver(y.real, op)
        with pytest.raises(TypeError, match="operator"):
            solver(y, object())
        bad = y.clone()
        bad[0, 0, 0, 0] = float("nan")
        with pytest.raises(ValueError, match="kspace"):
            solver(bad, op)


class _NaNOperator:
    """Follows the protocol but returns NaN from adjoint (a broken operator)."""

    def __init__(self, op):
        self._op = op
        self.image_shape, self.num_coils, self.mask = op.image_shape, op.num_coils, op.mask

    def forward(self, x):
        return self._op.forward(x)

    def adjoint(self, y):
        return self._op.adjoint(y) * float("nan")

    def normal(self, x):
        return self._op.normal(x) * float("nan")


def test_nan_result_raises_instead_of_returning():
    x = phantom()
    op = MaskedFourier(torch.ones(N), (N, N))
    y = fft2c(x)
    for solver in (ZeroFilledSolver(), SenseSolver()):
        with pytest.raises(RuntimeError, match="NaN"):
            solver(y, _NaNOperator(op))
