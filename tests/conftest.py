from __future__ import annotations

import os

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))))


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same RNG state, so results are deterministic."""
    torch.manual_seed(0)
    np.random.seed(0)
    yield
