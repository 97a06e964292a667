"""Exponential moving average of network weights (Polyak averaging, as in Ho et al. 2020)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """``θ_ema <- d θ_ema + (1 - d) θ`` after each optimiser step, with warm-up ``d_k = min(d, (1+k)/(10+k))``.

    Args:
        network: the trained network (its parameters are read, never written).
        decay: final decay ``d`` in ``[0, 1)``.
    """

    def __init__(self, network: nn.Module, decay: float = 0.999) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"ema decay must lie in [0, 1), got {decay!r}.")
        self.decay = float(decay)
        self.model = copy.deepcopy(network).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.num_updates = 0

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for e, p in zip(self.model.parameters(), network.parameters()):
            e.lerp_(p.detach(), 1 - d)
        for e, b in zip(self.model.buffers(), network.buffers()):
            e.copy_(b)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "model": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        self.model.load_state_dict(state["model"])
