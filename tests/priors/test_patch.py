"""Patch prior: stitching, coordinates, any matrix size, checkpoints, bad input, solvers on it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_ddpm_recon.priors import DDPMPrior, PatchDDPMPrior, coordinate_grid, prior_supports_size

SMALL = {"channels": (8, 8), "num_res_blocks": 1}


class _Channel(nn.Module):
    """A stand-in network that returns one of its input channels (image 0, row coordinate 1, column 2)."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x[:, self.index : self.index + 1] + 0 * self.dummy


def _prior(net=None, patch=16, tiling: str | None = "patches") -> PatchDDPMPrior:
    """A small patch prior; ``tiling`` None leaves the class default."""
    kw = {} if tiling is None else {"tiling": tiling}
    prior = PatchDDPMPrior(patch, network=net, network_kwargs=SMALL, train_patch_sizes=(8, 16), coord_scale=10.0, **kw)
    if net is None:  # MONAI zero-initialises the output layer: give the network non-trivial weights
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in prior.network.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return prior


@pytest.mark.parametrize("tiling", ["whole", "patches"])
@pytest.mark.parametrize("size", [(192, 224), (37, 53), (5, 7), (16, 16)])
def test_stitching_puts_every_pixel_back_in_place(size, tiling):
    torch.manual_seed(0)
    x = torch.randn(2, 1, *size)
    prior = _prior(_Channel(0), tiling=tiling)
    for t in (0, 17, 999):  # different tiling offsets
        assert torch.equal(prior.eps(x, t), x)


@pytest.mark.parametrize("tiling", ["whole", "patches"])
@pytest.mark.parametrize("size", [(192, 224), (37, 53), (5, 7)])
def test_coordinates_are_those_of_the_whole_image_whatever_the_offset(size, tiling):
    x = torch.zeros(1, 1, *size)
    expected = coordinate_grid(*size, coord_scale=10.0)
    for index, channel in ((1, 0), (2, 1)):
        prior = _prior(_Channel(index), tiling=tiling)
        for t in (3, 500):
            torch.testing.assert_close(prior.eps(x, t)[0, 0], expected[channel])
    # centre of an odd image is 0; one pixel right of it is 1/coord_scale
    r, c = (size[0] - 1) // 2, (size[1] - 1) // 2
    if size[0] % 2 and size[1] % 2:
        assert float(expected[0, r, c]) == 0.0 and float(expected[1, r, c + 1]) == pytest.approx(0.1)


def test_tiling_offset_changes_with_t_and_is_reproducible():
    prior = _prior()
    offsets = {prior.tiling_offset(t) for t in range(0, 1000, 37)}
    assert len(offsets) > 5 and all(0 <= o < 16 for off in offsets for o in off)
    assert prior.tiling_offset(123) == _prior().tiling_offset(123)


@pytest.mark.parametrize("tiling", ["whole", "patches"])
def test_real_network_results_do_not_depend_on_batch_or_call_history(tiling):
    torch.manual_seed(0)
    prior = _prior(tiling=tiling)
    prior.max_patches_per_forward = 1  # "whole": one image per call, so batching is exercised too
    x = torch.randn(3, 1, 40, 28)
    with torch.no_grad():
        full = prior.eps(x, 400)
        prior.eps(torch.randn(1, 1, 9, 9), 12)
        single = prior.eps(x[1:2], 400)
        mixed = prior.eps(x, torch.tensor([400, 12, 400]))
    torch.testing.assert_close(single, full[1:2])
    torch.testing.assert_close(mixed[[0, 2]], full[[0, 2]])
    assert not torch.allclose(mixed[1], full[1])


class _Recorder(nn.Module):
    """Records the input shapes it is called with; returns zeros."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes = []
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return x[:, :1] * 0


def test_whole_tiling_runs_the_network_once_on_the_padded_image_and_patches_on_tiles():
    net = _Recorder()
    prior = _prior(net, tiling="whole")
    prior.eps(torch.zeros(3, 1, 37, 53), 10)
    assert net.shapes == [(3, 3, 38, 54)]  # padded to a multiple of 2 ** (levels - 1) = 2, all 3 images in one call
    net.shapes.clear()
    prior.tiling = "patches"
    prior.eps(torch.zeros(1, 1, 37, 53), 10)
    assert {s[1:] for s in net.shapes} == {(3, 16, 16)}
    with pytest.raises(ValueError, match="tiling"):
        prior.tiling = "tiles"
    # a real network sees more context in one pass than in a patch: the two tilings give different ε
    real = _prior(tiling="whole")
    x = torch.randn(1, 1, 40, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = real.eps(x, 300)
        tiled = real.with_tiling("patches").eps(x, 300)
    assert real.tiling == "whole"  # with_tiling is a view
    assert not torch.allclose(whole, tiled) and bool(torch.isfinite(whole).all())


def test_auto_tiling_covers_small_images_in_one_pass_and_large_ones_with_patches():
    net = _Recorder()
    prior = PatchDDPMPrior(16, network=net, network_kwargs=SMALL, train_patch_sizes=(8, 16), whole_max_side=40)
    assert prior.tiling == "auto"  # the default
    prior.eps(torch.zeros(1, 1, 40, 22), 10)  # longer side 40 <= whole_max_side: one pass
    assert net.shapes == [(1, 3, 40, 22)]
    net.shapes.clear()
    prior.eps(torch.zeros(1, 1, 22, 41), 10)  # longer side 41: patches, whichever side it is
    assert {s[1:] for s in net.shapes} == {(3, 16, 16)}
    assert [prior.tiling_for(s) for s in [(40, 40), (41, 8), (8, 41)]] == ["whole", "patches", "patches"]
    assert prior.with_tiling("whole").tiling_for((500, 500)) == "whole"  # an explicit tiling is never overridden
    # the shipped default: auto resolves to the same ε as the tiling it picks
    real = _prior(tiling=None)
    x = torch.randn(1, 1, 40, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(real.eps(x, 300), real.with_tiling("whole").eps(x, 300), rtol=0, atol=0)
    with pytest.raises(ValueError, match="whole_max_side"):
        PatchDDPMPrior(16, network_kwargs=SMALL, train_patch_sizes=(8, 16), whole_max_side=0)


def test_any_size_is_supported_and_whole_image_prior_is_not():
    assert prior_supports_size(_prior(), (192, 224)) and prior_supports_size(_prior(), (3, 5))
    whole = DDPMPrior(16, network_kwargs=SMALL)
    assert prior_supports_size(whole, (16, 16)) and not prior_supports_size(whole, (192, 224))


def test_checkpoint_round_trip_rebuilds_the_patch_prior(tmp_path):
    torch.manual_seed(0)
    prior = _prior(tiling=None)  # the tiling is an inference choice, not stored: both sides use the default
    path = tmp_path / "patch.pt"
    prior.save_checkpoint(path)
    loaded = DDPMPrior.from_checkpoint(path)
    assert isinstance(loaded, PatchDDPMPrior)
    assert loaded.train_patch_sizes == [8, 16] and loaded.coord_scale == 10.0 and loaded.patch_size == 16
    x = torch.randn(1, 1, 30, 21)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eps(x, 250), prior.eps(x, 250))


def test_patch_loader_refuses_a_whole_image_checkpoint(tmp_path):
    path = tmp_path / "whole.pt"
    DDPMPrior(16, network_kwargs=SMALL).save_checkpoint(path)
    with pytest.raises(ValueError, match="'whole_image' prior"):
        PatchDDPMPrior.from_checkpoint(path)


def test_bad_input_gets_one_clear_error():
    prior = _prior()
    with pytest.raises(ValueError, match=r"expects \(B, 1, H, W\)"):
        prior.eps(torch.zeros(1, 2, 20, 20), 3)
    with pytest.raises(ValueError, match=r"expects \(B, 1, H, W\)"):
        prior.eps(torch.zeros(20, 20), 3)
    with pytest.raises(TypeError, match="must be real"):
        prior.eps(torch.zeros(1, 1, 20, 20, dtype=torch.complex64), 3)
    with pytest.raises(ValueError, match="not divisible"):
        PatchDDPMPrior(16, network_kwargs=SMALL, train_patch_sizes=(5, 16))
    with pytest.raises(ValueError, match="coord_scale"):
        PatchDDPMPrior(16, network_kwargs=SMALL, coord_scale=0)
    with pytest.raises(ValueError, match="in/out_channels"):
        PatchDDPMPrior(16, network_kwargs={**SMALL, "in_channels": 1})


def test_solvers_run_on_a_non_square_grid_with_a_patch_prior():
    from monai_ddpm_recon.operators import MaskedFourier
    from monai_ddpm_recon.solvers import DiffPIRSolver, LossGuidanceSolver

    torch.manual_seed(0)
    H, W = 24, 40
    image = torch.rand(1, 1, H, W).to(torch.complex64)
    mask = (torch.rand(1, 1, 1, W) < 0.5).expand(1, 1, H, W).float()
    op = MaskedFourier(mask)
    y = op.forward(image)
    prior = _prior()
    for solver in (DiffPIRSolver(prior, num_steps=4, seed=0), LossGuidanceSolver(prior, num_steps=4, seed=0),
                   DiffPIRSolver(prior, num_steps=4, seed=0, t_start=200)):  # warm start: the estimate at 24 x 40
        out = solver(y, op)
        assert out.shape == (1, 1, H, W) and bool(torch.isfinite(out.abs()).all())
    whole = DDPMPrior(16, network_kwargs=SMALL)
    with pytest.raises(ValueError, match="differs from prior.image_size"):
        DiffPIRSolver(whole, num_steps=4)(y, op)
