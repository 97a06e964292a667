"""Bundle knobs -> solver arguments."""

from __future__ import annotations

import pytest

from monai_ddpm_recon.workflows.settings import default_solver_kwargs


def test_num_steps_is_an_equal_nfe_budget():
    kw = default_solver_kwargs(num_steps=99, guidance_scale=5.0, tv_lambda=1e-3)
    assert kw["loss_guidance"] == {"num_steps": 99, "guidance": 5.0}
    assert kw["frequency_replacement"] == {"num_steps": 99}
    lang, sbim = kw["langevin"], kw["sbim"]
    assert lang["num_levels"] * lang["steps_per_level"] == 99
    assert sbim["num_steps"] * (1 + sbim["corrector_steps"]) == 99
    assert kw["tv"] == {"lam": 1e-3}
    assert "zero_filled" not in kw


def test_defaults_leave_solvers_alone_and_bad_steps_raise():
    assert default_solver_kwargs() == {}
    with pytest.raises(ValueError, match="num_steps"):
        default_solver_kwargs(num_steps=0)


def test_final_data_consistency_is_switched_off_for_noisy_kspace():
    """With noise the final least-squares step fits the noise (benchmarks/results/noise_fit.md): the bundle turns it
    off when snr_db is set, unless the user says otherwise; the presets accept the argument."""
    from monai_ddpm_recon.priors.gaussian import GaussianPrior
    from monai_ddpm_recon.workflows.registry import build_solver
    from monai_ddpm_recon.workflows.settings import FINAL_DC_PRESETS, default_solver_kwargs

    assert default_solver_kwargs() == {}
    noisy = default_solver_kwargs(snr_db=30.0)
    assert {k for k, v in noisy.items() if v.get("final_data_consistency") is False} == {n.value for n in FINAL_DC_PRESETS}
    forced = default_solver_kwargs(snr_db=30.0, final_data_consistency=True)
    assert all(forced[n.value]["final_data_consistency"] is True for n in FINAL_DC_PRESETS)
    prior = GaussianPrior(image_size=(8, 8))
    for name in FINAL_DC_PRESETS:
        solver = build_solver(name, prior, **noisy[name.value])
        assert solver.final_data_consistency is False
