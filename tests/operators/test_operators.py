"""Operator maths: adjoint identity, normal operator, equality with sigpy and fastmri, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_ddpm_recon.operators import MaskedFourier, SenseOperator, fft2c, ifft2c, make_mask
from monai_ddpm_recon.operators.base import LinearOperator

H, W, C = 24, 20, 4


def _crandn(*shape, dtype=torch.complex128):
    return torch.randn(*shape, dtype=dtype)


def _inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Complex inner product ``<a, b> = Σ conj(a) b``."""
    return (a.conj() * b).sum()


def _masks(batch: int = 1):
    """A 1D column mask (B,1,1,W) and a 2D random mask (B,1,H,W), both with at least one sample."""
    col = (torch.rand(batch, 1, 1, W) < 0.4).double()
    col[..., W // 2] = 1
    two_d = (torch.rand(batch, 1, H, W) < 0.3).double()
    two_d[..., H // 2, W // 2] = 1
    return {"column": col, "2d": two_d}


@pytest.mark.parametrize("kind", ["column", "2d"])
@pytest.mark.parametrize("batch", [1, 3])
def test_masked_fourier_adjoint_identity(kind, batch):
    mask = _masks(batch)[kind]
    op = MaskedFourier(mask, image_shape=(H, W))
    x = _crandn(batch, 1, H, W)
    y = _crandn(batch, 1, H, W)
    lhs, rhs = _inner(op(x), y), _inner(x, op.adjoint(y))
    assert abs(lhs - rhs) <= 1e-6 * abs(lhs)
    assert torch.allclose(op.normal(x), op.adjoint(op.forward(x)), rtol=0, atol=1e-12)
    assert isinstance(op, LinearOperator)


@pytest.mark.parametrize("kind", ["column", "2d"])
@pytest.mark.parametrize("batch", [1, 2])
def test_sense_adjoint_identity_and_normal(kind, batch):
    mask = _masks(batch)[kind]
    maps = _crandn(batch, C, H, W)
    op = SenseOperator(maps, mask)
    x = _crandn(batch, 1, H, W)
    y = _crandn(batch, C, H, W)
    lhs, rhs = _inner(op(x), y), _inner(x, op.adjoint(y))
    assert abs(lhs - rhs) <= 1e-6 * abs(lhs)
    assert torch.allclose(op.normal(x), op.adjoint(op.forward(x)), rtol=0, atol=1e-12)
    assert op.num_coils == C and op.image_shape == (H, W)
    assert isinstance(op, LinearOperator)


def test_sense_broadcasts_one_mask_over_batch():
    maps = _crandn(2, C, H, W)
    mask = _masks(1)["column"]
    op = SenseOperator(maps, mask)
    x = _crandn(2, 1, H, W)
    y = op(x)
    for b in range(2):
        single = SenseOperator(maps[b : b + 1], mask)(x[b : b + 1])
        assert torch.allclose(y[b : b + 1], single)


@pytest.mark.parametrize("kind", ["column", "2d"])
def test_sense_equals_sigpy(kind):
    import sigpy.mri.linop

    mask = _masks(1)[kind]
    maps = _crandn(1, C, H, W)
    op = SenseOperator(maps, mask)
    weights = np.broadcast_to(mask[0, 0].numpy(), (H, W)).copy()
    ref = sigpy.mri.linop.Sense(maps[0].numpy(), weights=weights)

    x = _crandn(1, 1, H, W)
    y_ref = ref(x[0, 0].numpy())
    y = op(x)[0].numpy()
    assert np.linalg.norm(y - y_ref) <= 1e-5 * np.linalg.norm(y_ref)

    k = _crandn(1, C, H, W)
    a_ref = ref.H(k[0].numpy())
    a = op.adjoint(k)[0, 0].numpy()
    assert np.linalg.norm(a - a_ref) <= 1e-5 * np.linalg.norm(a_ref)


def test_masked_fourier_equals_sense_with_unit_map():
    mask = _masks(1)["2d"]
    x = _crandn(1, 1, H, W)
    single = MaskedFourier(mask)
    sense = SenseOperator(torch.ones(1, 1, H, W, dtype=torch.complex128), mask)
    assert torch.allclose(single(x), sense(x))
    y = _crandn(1, 1, H, W)
    assert torch.allclose(single.adjoint(y), sense.adjoint(y))


def test_fft2c_matches_fastmri_and_is_unitary():
    import fastmri

    x = torch.randn(2, 3, 16, 12, dtype=torch.complex64)
    ref = torch.view_as_complex(fastmri.fft2c(torch.view_as_real(x)).contiguous())
    assert torch.allclose(fft2c(x), ref, atol=1e-5)
    ref_inv = torch.view_as_complex(fastmri.ifft2c(torch.view_as_real(x)).contiguous())
    assert torch.allclose(ifft2c(x), ref_inv, atol=1e-5)
    assert torch.allclose(ifft2c(fft2c(x)), x, atol=1e-5)
    assert torch.allclose(fft2c(x).norm(), x.norm(), rtol=1e-5)
    # DC of a constant image sits at (H//2, W//2).
    k = fft2c(torch.ones(1, 1, 16, 12, dtype=torch.complex64))
    assert int(k.abs().flatten().argmax()) == 8 * 12 + 6


def test_operators_are_differentiable():
    mask = _masks(1)["column"]
    op = SenseOperator(_crandn(1, C, H, W), mask)
    x = _crandn(1, 1, H, W).requires_grad_(True)
    loss = (op(x).abs() ** 2).sum()
    loss.backward()
    # d/dx* ||Ax||² = AᴴA x (torch returns the conjugate Wirtinger gradient times 2)
    assert torch.allclose(x.grad, 2 * op.normal(x.detach()), atol=1e-10)


def test_complex64_stays_complex64():
    op = SenseOperator(torch.randn(1, C, H, W, dtype=torch.complex64), _masks(1)["2d"])
    assert op(torch.randn(1, 1, H, W, dtype=torch.complex64)).dtype == torch.complex64


# --- bad input --------------------------------------------------------------------------------------------------


def test_real_input_rejected():
    op = MaskedFourier(_masks(1)["2d"])
    with pytest.raises(TypeError, match="image"):
        op(torch.randn(1, 1, H, W))
    with pytest.raises(TypeError, match="kspace"):
        op.adjoint(torch.randn(1, 1, H, W))
    with pytest.raises(TypeError, match="sens_maps"):
        SenseOperator(torch.randn(1, C, H, W), _masks(1)["2d"])


def test_shape_mismatches_rejected():
    mask = _masks(1)["2d"]
    op = SenseOperator(_crandn(1, C, H, W), mask)
    with pytest.raises(ValueError, match="image"):
        op(_crandn(1, 1, H + 1, W))
    with pytest.raises(ValueError, match="image"):
        op(_crandn(1, 2, H, W))
    with pytest.raises(ValueError, match="kspace"):
        op.adjoint(_crandn(1, C + 1, H, W))
    with pytest.raises(ValueError, match="mask"):
        SenseOperator(_crandn(1, C, H, W), torch.ones(1, 1, H, W + 2))
    with pytest.raises(ValueError, match="mask"):
        MaskedFourier(torch.ones(1, 1, 1, W), image_shape=(H, W + 1))
    with pytest.raises(ValueError, match="batch"):
        SenseOperator(_crandn(2, C, H, W), mask)(_crandn(3, 1, H, W))
    with pytest.raises(ValueError, match="sens_maps"):
        SenseOperator(_crandn(C, H, W), mask)


def test_non_finite_rejected():
    mask = _masks(1)["2d"]
    maps = _crandn(1, C, H, W)
    maps[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="sens_maps"):
        SenseOperator(maps, mask)
    op = SenseOperator(_crandn(1, C, H, W), mask)
    k = _crandn(1, C, H, W)
    k[0, 1, 2, 3] = complex(float("inf"), 0)
    with pytest.raises(ValueError, match="kspace"):
        op.adjoint(k)
    with pytest.raises(ValueError, match="kspace"):
        MaskedFourier(mask).adjoint(k[:, :1].clone().fill_(float("nan")))


def test_all_zero_mask_rejected():
    with pytest.raises(ValueError, match="mask"):
        MaskedFourier(torch.zeros(1, 1, H, W))
    with pytest.raises(ValueError, match="mask"):
        SenseOperator(_crandn(1, C, H, W), torch.zeros(1, 1, 1, W))
    with pytest.raises(TypeError, match="mask"):
        MaskedFourier(torch.ones(1, 1, H, W, dtype=torch.complex64))
