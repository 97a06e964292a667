"""Figures: reconstruction panels with error maps, and PSNR-vs-acceleration curves."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from .writers import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_panel(
    target: np.ndarray,
    recons: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    titles: Mapping[str, str] | None = None,
    error_gain: float = 5.0,
    suptitle: str | None = None,
) -> None:
    """Save a PNG: top row ground truth | each reconstruction; bottom row |error| × ``error_gain``.

    Args:
        target: ground-truth magnitude ``(H, W)``.
        recons: name → magnitude ``(H, W)``, in display order.
        titles: name → title (e.g. with PSNR/SSIM); defaults to the name.
    """
    plt = _plt()
    n = 1 + len(recons)
    vmax = float(np.max(target)) or 1.0
    fig, axes = plt.subplots(2, n, figsize=(2.4 * n, 5.0), squeeze=False)
    axes[0, 0].imshow(target, cmap="gray", vmin=0, vmax=vmax)
    axes[0, 0].set_title("ground truth", fontsize=8)
    axes[1, 0].axis("off")
    for i, (name, img) in enumerate(recons.items(), start=1):
        axes[0, i].imshow(img, cmap="gray", vmin=0, vmax=vmax)
        axes[0, i].set_title((titles or {}).get(name, name), fontsize=8)
        axes[1, i].imshow(np.abs(img - target) * error_gain, cmap="gray", vmin=0, vmax=vmax)
        axes[1, i].set_title(f"|error| ×{error_gain:g}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def save_psnr_vs_acceleration(
    results: Mapping[str, Sequence[tuple[float, float, float]]], path: str | os.PathLike, title: str | None = None
) -> None:
    """Plot PSNR (mean ± std) vs acceleration per solver. ``results[solver] = [(R, mean, std), ...]``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, pts in results.items():
        pts = sorted(pts)
        r, m, s = (np.array(v) for v in zip(*pts))
        ax.errorbar(r, m, yerr=s, marker="o", capsize=3, label=name)
    ax.set_xlabel("acceleration R")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
