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
    results: Mapping[str, Sequence[tuple[float, float, float]]] | Mapping[str, Mapping[str, Sequence[tuple[float, float, float]]]],
    path: str | os.PathLike,
    title: str | None = None,
) -> None:
    """Plot PSNR (mean ± std) vs acceleration per solver.

    Args:
        results: ``{solver: [(R, mean, std), ...]}`` for one panel, or ``{panel title: {solver: [...]}}`` for one
            panel per group (e.g. per coil setting); a solver keeps its colour and marker across panels.
        path: PNG path (written atomically).
        title: figure title.
    """
    plt = _plt()
    nested = bool(results) and all(isinstance(v, Mapping) for v in results.values())
    panels = dict(results) if nested else {"": results}
    names = list(dict.fromkeys(n for curves in panels.values() for n in curves))
    cmap = plt.get_cmap("tab10")
    markers = "osD^vP*X<>"
    style = {n: dict(color=cmap(i % 10), marker=markers[i % len(markers)], linestyle="-" if i < 10 else "--")
             for i, n in enumerate(names)}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 1.8, 3.6), sharey=True, squeeze=False)
    for ax, (panel, curves) in zip(axes[0], panels.items()):
        for name, pts in curves.items():
            r, m, s = (np.array(v) for v in zip(*sorted(pts)))
            ax.errorbar(r, m, yerr=s, capsize=3, label=name, markersize=4, **style[name])
        ax.set_xlabel("acceleration R")
        ax.grid(alpha=0.3)
        if panel:
            ax.set_title(panel, fontsize=9)
    axes[0][0].set_ylabel("PSNR (dB)")
    seen: dict[str, object] = {}  # one legend entry per solver, whichever panel it appears in
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen.keys()), loc="center right", fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1 - 1.6 / fig.get_figwidth(), 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
