"""deepinv interop: adjoint identities, equality with deepinv's MRI physics, the wrapped prior as an MMSE denoiser."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

dinv = pytest.importorskip("deepinv")

from monai_ddpm_recon.interop.deepinv import DeepinvOperator, OperatorPhysics, PriorDenoiser  # noqa: E402
from monai_ddpm_recon.operators import (  # noqa: E402
    MaskedFourier,
    SenseOperator,
    birdcage_maps,
    fft2c,
    ifft2c,
    make_mask,
)
from monai_ddpm_recon.operators.base import LinearOperator  # noqa: E402
from monai_ddpm_recon.priors.base import DiffusionPrior  # noqa: E402
from monai_ddpm_recon.priors.gaussian import GaussianPrior  # noqa: E402

H, W, C = 16, 12, 3


def _masks(batch: int = 1) -> dict[str, torch.Tensor]:
    """A 1D column mask (B,1,1,W) and a 2D random mask (B,1,H,W), float64, each with a sample at the centre."""
    col = (torch.rand(batch, 1, 1, W) < 0.4).double()
    col[..., W // 2] = 1
    two_d = (torch.rand(batch, 1, H, W) < 0.3).double()
    two_d[..., H // 2, W // 2] = 1
    return {"column": col, "2d": two_d}


def _maps(batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, C, H, W, dtype=torch.complex128)


def _ours(kind: str, coils: str, batch: int = 1):
    mask = _masks(batch)[kind]
    if coils == "single":
        return MaskedFourier(mask, image_shape=(H, W))
    return SenseOperator(_maps(batch), mask)


def _theirs(op) -> torch.nn.Module:
    """deepinv physics with the same mask (expanded to (B, H, W)) and coil maps as our operator."""
    # (B, 1, H, W): deepinv's check_mask reads a (B, H, W) mask with B = 2 as the re/im channel axis
    mask = op.mask.expand(op.mask.shape[0], 1, H, W)
    if isinstance(op, SenseOperator):
        return dinv.physics.MultiCoilMRI(mask=mask, coil_maps=op.sens_maps, img_size=(H, W))
    return dinv.physics.MRI(mask=mask, img_size=(H, W))


def _real_inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum()


def _complex_inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.conj() * b).sum()


# --- OperatorPhysics --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["column", "2d"])
@pytest.mark.parametrize("coils", ["single", "multi"])
def test_operator_physics_adjoint_identity_and_layout(kind, coils):
    op = _ours(kind, coils, batch=2)
    physics = OperatorPhysics(op)
    x = torch.randn(2, 2, H, W, dtype=torch.float64)
    y_shape = (2, 2, C, H, W) if coils == "multi" else (2, 2, H, W)
    y = torch.randn(*y_shape, dtype=torch.float64)
    ax = physics.A(x)
    assert ax.shape == y_shape and ax.dtype == torch.float64 and physics.measurement_shape(2) == y_shape
    aty = physics.A_adjoint(y)
    assert aty.shape == (2, 2, H, W)
    lhs, rhs = _real_inner(ax, y), _real_inner(x, aty)
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)
    torch.testing.assert_close(physics.A_adjoint_A(x), physics.A_adjoint(physics.A(x)), rtol=0, atol=1e-12)
    assert float(physics.adjointness_test(img_size=(2, H, W), num_samples=2, dtype=torch.float64)) < 1e-10


@pytest.mark.parametrize("kind", ["column", "2d"])
@pytest.mark.parametrize("coils", ["single", "multi"])
def test_operator_physics_equals_deepinv_mri(kind, coils):
    op = _ours(kind, coils)
    ours, theirs = OperatorPhysics(op), _theirs(op)
    x = torch.randn(3, 2, H, W, dtype=torch.float64)
    y = theirs.A(torch.randn(3, 2, H, W, dtype=torch.float64))
    torch.testing.assert_close(ours.A(x), theirs.A(x), rtol=0, atol=1e-5)
    torch.testing.assert_close(ours.A_adjoint(y), theirs.A_adjoint(y), rtol=0, atol=1e-5)
    torch.testing.assert_close(ours.A_adjoint_A(x), theirs.A_adjoint_A(x), rtol=0, atol=1e-5)
    # noise: like deepinv's MRI physics, none at unsampled locations
    noisy = OperatorPhysics(op, noise_model=dinv.physics.GaussianNoise(0.1))(x)
    unsampled = (op.mask.expand(1, 1, H, W) == 0)[:, :, None] if coils == "multi" else op.mask.expand(1, 1, H, W) == 0
    assert bool((noisy.masked_select(unsampled.expand_as(noisy)) == 0).all())
    assert not torch.equal(noisy, ours.A(x))


@pytest.mark.parametrize("kind", ["column", "2d"])
def test_operator_physics_closed_form_prox_and_dagger_equal_deepinv(kind):
    op = _ours(kind, "single", batch=2)
    ours, theirs = OperatorPhysics(op), _theirs(op)
    z = torch.randn(2, 2, H, W, dtype=torch.float64)
    y = theirs.A(torch.randn(2, 2, H, W, dtype=torch.float64))
    torch.testing.assert_close(ours.prox_l2(z, y, 0.7), theirs.prox_l2(z, y, 0.7), rtol=0, atol=1e-10)
    gamma = torch.tensor([0.5, 3.0], dtype=torch.float64)  # deepinv's MRI needs it shaped (B, 1, 1, 1); we take (B,)
    expected = theirs.prox_l2(z, y, gamma.reshape(2, 1, 1, 1))
    torch.testing.assert_close(ours.prox_l2(z, y, gamma), expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(ours.prox_l2(None, y, 2.0), theirs.prox_l2(None, y, 2.0), rtol=0, atol=1e-10)
    torch.testing.assert_close(ours.A_dagger(y), theirs.A_dagger(y), rtol=0, atol=1e-10)


def test_operator_physics_multicoil_prox_solves_the_normal_equations():
    op = SenseOperator(birdcage_maps(C, (H, W)).to(torch.complex128), _masks()["2d"])
    physics = OperatorPhysics(op, max_iter=30, tol=1e-7)
    z = torch.randn(1, 2, H, W, dtype=torch.float64)
    y = physics.A(torch.randn(1, 2, H, W, dtype=torch.float64))
    x = physics.prox_l2(z, y, 0.5)  # (I + γ AᴴA) x = z + γ Aᴴ y
    torch.testing.assert_close(x + 0.5 * physics.A_adjoint_A(x), z + 0.5 * physics.A_adjoint(y), rtol=0, atol=1e-5)


def test_operator_physics_float32_and_gradients():
    op = _ours("2d", "multi")
    physics = OperatorPhysics(op)
    x = torch.randn(1, 2, H, W, requires_grad=True)
    y = physics.A(x)
    assert y.dtype == torch.float32
    y.square().sum().backward()  # gradient of ||A x||² is 2 Aᴴ A x
    torch.testing.assert_close(x.grad, 2 * physics.A_adjoint_A(x.detach()), rtol=1e-4, atol=1e-4)


def test_operator_physics_layout_choice_and_bad_input():
    single_coil_sense = SenseOperator(_maps()[:, :1], _masks()["2d"])
    assert OperatorPhysics(single_coil_sense).multicoil  # coil maps -> MultiCoilMRI layout
    assert not OperatorPhysics(single_coil_sense, multicoil=False).multicoil
    assert OperatorPhysics(_ours("2d", "single"), multicoil=True).A(torch.randn(1, 2, H, W)).shape == (1, 2, 1, H, W)
    with pytest.raises(ValueError, match="multicoil"):
        OperatorPhysics(_ours("2d", "multi"), multicoil=False)
    with pytest.raises(TypeError, match="operator"):
        OperatorPhysics(object())
    with pytest.raises(TypeError, match="operator"):
        OperatorPhysics(dinv.physics.MRI(img_size=(H, W)))  # a deepinv physics is not one of our operators
    physics = OperatorPhysics(_ours("2d", "single"))
    with pytest.raises(ValueError, match="x has shape"):
        physics.A(torch.randn(1, 1, H, W))
    with pytest.raises(TypeError, match="x must be a real"):
        physics.A(torch.randn(1, 2, H, W, dtype=torch.complex64))
    with pytest.raises(ValueError, match="y has shape"):
        physics.A_adjoint(torch.randn(1, 2, 1, H, W))
    with pytest.raises(ValueError, match="mask"):
        physics.A(torch.randn(1, 2, H, W), mask=torch.ones(H, W))


# --- DeepinvOperator --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["column", "2d"])
@pytest.mark.parametrize("coils", ["single", "multi"])
def test_deepinv_operator_adjoint_identity_and_equality(kind, coils):
    ours = _ours(kind, coils, batch=2)
    op = DeepinvOperator(_theirs(ours))
    assert isinstance(op, LinearOperator)
    assert op.image_shape == (H, W) and op.num_coils == ours.num_coils
    assert op.mask.shape == (2, 1, H, W) and not torch.is_complex(op.mask)
    torch.testing.assert_close(op.mask, ours.mask.expand(2, 1, H, W))
    x = torch.randn(2, 1, H, W, dtype=torch.complex128)
    y = torch.randn(2, ours.num_coils, H, W, dtype=torch.complex128)
    ax, aty = op.forward(x), op.adjoint(y)
    assert ax.shape == y.shape and ax.dtype == torch.complex128 and aty.shape == x.shape
    lhs, rhs = _complex_inner(ax, y), _complex_inner(x, aty)
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)
    torch.testing.assert_close(op.normal(x), op.adjoint(op.forward(x)), rtol=0, atol=1e-12)
    # equal to our operator with the same mask / maps
    torch.testing.assert_close(op.forward(x), ours.forward(x), rtol=0, atol=1e-5)
    torch.testing.assert_close(op.adjoint(y), ours.adjoint(y), rtol=0, atol=1e-5)
    torch.testing.assert_close(op.normal(x), ours.normal(x), rtol=0, atol=1e-5)
    x32 = x.to(torch.complex64)
    assert op.forward(x32).dtype == torch.complex64 and op.normal(x32).dtype == torch.complex64


def test_deepinv_operator_column_mask_and_bad_input():
    col = make_mask("random", (H, W), 4, seed=0)  # (1, 1, 1, W)
    physics = dinv.physics.MRI(mask=col[0, 0], img_size=(H, W))  # deepinv keeps it as (1, 2, 1, W)
    with pytest.raises(ValueError, match="image_shape"):
        DeepinvOperator(physics)
    op = DeepinvOperator(physics, image_shape=(H, W))
    x = torch.randn(1, 1, H, W, dtype=torch.complex64)
    torch.testing.assert_close(op.forward(x), MaskedFourier(col, (H, W)).forward(x), rtol=0, atol=1e-5)
    with pytest.raises(TypeError, match="physics"):
        DeepinvOperator(dinv.physics.Denoising())
    with pytest.raises(TypeError, match="physics"):
        DeepinvOperator(_ours("2d", "single"))
    with pytest.raises(ValueError, match="image"):
        op.forward(torch.randn(1, 1, H, W + 1, dtype=torch.complex64))
    with pytest.raises(TypeError, match="complex"):
        op.forward(torch.randn(1, 1, H, W))


def test_round_trip_through_both_wrappers():
    ours = _ours("2d", "multi")
    back = DeepinvOperator(_theirs(ours))
    physics = OperatorPhysics(back)
    x = torch.randn(1, 2, H, W, dtype=torch.float64)
    torch.testing.assert_close(physics.A(x), OperatorPhysics(ours).A(x), rtol=0, atol=1e-12)


# --- PriorDenoiser ----------------------------------------------------------------------------------------------------
N = 16


def _wiener(prior: GaussianPrior, v: torch.Tensor, sigma_ve: float) -> torch.Tensor:
    """E[x0 | v] for v = x0 + σ z, x0 ~ N(μ, Fᴴ diag(P) F): μ + Fᴴ diag(P / (P + σ²)) F (v - μ)."""
    filt = prior.power / (prior.power + sigma_ve**2)
    return prior.mean + ifft2c(fft2c((v - prior.mean).to(torch.complex128)) * filt).real


class _TwoChannelGaussian(DiffusionPrior):
    """Real and imaginary parts independent stationary Gaussians: the exact ε-network acts channel by channel."""

    def __init__(self, image_size):
        super().__init__(image_size, channels=2)
        self.parts = (GaussianPrior(image_size, mean=0.1, std=0.3), GaussianPrior(image_size, mean=-0.2, std=0.2))

    def eps(self, x_t, t):
        self.check_input(x_t)
        return torch.cat([p.eps(x_t[:, i : i + 1], t) for i, p in enumerate(self.parts)], dim=1)


@pytest.fixture
def gaussian():
    return GaussianPrior((N, N), mean=0.1, std=0.3)


@pytest.mark.parametrize("t", [3, 120, 500])
def test_denoiser_is_the_wiener_filter_at_grid_sigmas(gaussian, t):
    denoiser = PriorDenoiser(gaussian)
    sigma = denoiser.sigma_of_timestep(t)  # deepinv units: σ_t / 2
    assert denoiser.timestep(sigma) == t
    clean = (gaussian.sample(3) + 1) / 2  # [0, 1] units
    noisy = clean + sigma * torch.randn_like(clean)
    out = denoiser(noisy, sigma)
    expected = (_wiener(gaussian, 2 * noisy - 1, 2 * sigma) + 1) / 2
    assert out.shape == noisy.shape and out.dtype == torch.float64
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)
    out32 = denoiser(noisy.float(), torch.tensor(sigma))
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), expected, rtol=0, atol=1e-5)


def test_denoiser_reduces_mse(gaussian):
    denoiser = PriorDenoiser(gaussian)
    sigma = denoiser.sigma_of_timestep(250)
    clean = (gaussian.sample(2) + 1) / 2
    mse_in, mse_out = 0.0, 0.0
    for _ in range(8):
        noisy = clean + sigma * torch.randn_like(clean)
        mse_in += float((noisy - clean).square().mean())
        mse_out += float((denoiser(noisy, sigma) - clean).square().mean())
    assert mse_out < 0.5 * mse_in


def test_denoiser_per_item_sigma_and_zero_sigma(gaussian):
    denoiser = PriorDenoiser(gaussian)
    sigmas = torch.tensor([denoiser.sigma_of_timestep(t) for t in (20, 300, 20)], dtype=torch.float64)
    noisy = (gaussian.sample(3) + 1) / 2 + sigmas.reshape(-1, 1, 1, 1) * torch.randn(3, 1, N, N, dtype=torch.float64)
    batched = denoiser(noisy, sigmas)
    one_by_one = torch.cat([denoiser(noisy[i : i + 1], float(sigmas[i])) for i in range(3)])
    torch.testing.assert_close(batched, one_by_one, rtol=0, atol=1e-12)
    torch.testing.assert_close(denoiser(noisy, [0.0, float(sigmas[1]), 0.0])[[0, 2]], noisy[[0, 2]], rtol=0, atol=1e-12)
    x = noisy.clone().requires_grad_(True)
    denoiser(x, sigmas).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


@pytest.mark.parametrize("mapping", ["affine", "identity"])
def test_two_channel_prior(mapping):
    prior = _TwoChannelGaussian((N, N))
    denoiser = PriorDenoiser(prior, mapping=mapping)
    t = 150
    sigma = denoiser.sigma_of_timestep(t)
    x0 = torch.cat([p.sample(2) for p in prior.parts], dim=1)  # (2, 2, N, N): real, imag in the prior's units
    clean = (x0 + 1) / 2 if mapping == "affine" else x0
    noisy = clean + sigma * torch.randn_like(clean)
    out = denoiser(noisy, sigma)
    v = 2 * noisy - 1 if mapping == "affine" else noisy
    sigma_ve = 2 * sigma if mapping == "affine" else sigma
    wiener = torch.cat([_wiener(p, v[:, i : i + 1], sigma_ve) for i, p in enumerate(prior.parts)], dim=1)
    torch.testing.assert_close(out, (wiener + 1) / 2 if mapping == "affine" else wiener, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="x has shape"):
        denoiser(noisy[:, :1], sigma)


def test_denoiser_bad_input(gaussian):
    three = GaussianPrior((N, N))
    three.channels = 3
    with pytest.raises(ValueError, match="prior.channels"):
        PriorDenoiser(three)
    with pytest.raises(TypeError, match="prior"):
        PriorDenoiser(object())
    with pytest.raises(ValueError, match="mapping"):
        PriorDenoiser(gaussian, mapping="log")
    denoiser = PriorDenoiser(gaussian)
    x = torch.rand(2, 1, N, N)
    with pytest.raises(ValueError, match="x has shape"):
        denoiser(torch.rand(2, 2, N, N), 0.1)
    with pytest.raises(ValueError, match="x has shape"):
        denoiser(torch.rand(2, 1, N, N + 2), 0.1)
    with pytest.raises(TypeError, match="x must be a real"):
        denoiser(x.to(torch.complex64), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        denoiser(x, -0.1)
    with pytest.raises(ValueError, match="sigma"):
        denoiser(x, torch.tensor([0.1, 0.1, 0.1]))
    with pytest.raises(ValueError, match="sigma"):
        denoiser(x, float("nan"))


def test_denoiser_on_a_ddpm_prior():
    from monai_ddpm_recon.priors.ddpm import DDPMPrior

    prior = DDPMPrior(image_size=16, channels=2, network_kwargs={"channels": [8, 8]}).eval()
    denoiser = PriorDenoiser(prior).eval()
    assert sum(p.numel() for p in denoiser.parameters()) > 0  # the network is registered with the denoiser
    x = torch.rand(2, 2, 16, 16)
    sigmas = torch.tensor([0.05, 0.3])
    with torch.no_grad():
        out = denoiser(x, sigmas)
        ts = [denoiser.timestep(float(s)) for s in sigmas]
        pieces = []
        for i, t in enumerate(ts):
            x_t = float(prior.alphas_cumprod[t]) ** 0.5 * (2 * x[i : i + 1] - 1)
            pieces.append((prior.x0(x_t, t) + 1) / 2)
        expected = torch.cat(pieces)
    assert ts[0] < ts[1] and out.shape == x.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


# --- end to end in deepinv --------------------------------------------------------------------------------------------
def test_diffpir_with_prior_denoiser_and_operator_physics():
    """deepinv's DiffPIR sampler (Zhu et al., 2023) runs our prior on our operator, both wrapped."""
    prior = _TwoChannelGaussian((N, N))
    physics = OperatorPhysics(MaskedFourier(make_mask("random", (N, N), 2, seed=0), (N, N)),
                              noise_model=dinv.physics.GaussianNoise(0.01))
    x0 = torch.cat([p.sample(1, dtype=torch.float32) for p in prior.parts], dim=1)
    clean = (x0 + 1) / 2
    y = physics(clean)
    sampler = dinv.sampling.DiffPIR(PriorDenoiser(prior), dinv.optim.data_fidelity.L2(), sigma=0.01, max_iter=15)
    x_hat = sampler(y, physics)
    assert x_hat.shape == clean.shape and bool(torch.isfinite(x_hat).all())
    # a posterior *sample* (expected error twice the MMSE): better than the prior mean, consistent with the data
    prior_mean = torch.stack([(p.mean.float() + 1) / 2 for p in prior.parts])[None]
    assert float((x_hat - clean).square().mean()) < float((prior_mean - clean).square().mean())
    assert float((physics.A(x_hat) - y).norm()) < 0.1 * float(y.norm())


def test_interop_package_does_not_import_deepinv():
    code = (
        "import sys, monai_ddpm_recon.interop as m; assert 'deepinv' not in sys.modules; "
        "assert set(m.__all__) == {'PriorDenoiser', 'OperatorPhysics', 'DeepinvOperator'}"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    import monai_ddpm_recon.interop as interop

    assert interop.PriorDenoiser is PriorDenoiser and interop.DeepinvOperator is DeepinvOperator
