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
