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


ERROR_PERCENTILE = 99.0  # the panel's common error scale: this percentile of all its |error| values


def error_scale(errors: Sequence[np.ndarray], percentile: float = ERROR_PERCENTILE) -> float:
    """Upper end of a panel's common |error| colour scale: ``percentile`` of all error values pooled.

    Pooled over the panel, the scale is set by the largest errors (zero-filled, typically), so every map is drawn on
    the same scale and a 1 % tail of outliers does not compress the rest; falls back to the maximum, then to 1.
    """
    values = np.concatenate([np.ravel(e) for e in errors]) if errors else np.zeros(1)
    vmax = float(np.percentile(values, percentile))
    return vmax if vmax > 0 else (float(values.max()) or 1.0)


def _mask_image(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A ``(1, 1, W)``, ``(1, H, W)``, ``(W,)`` or ``(H, W)`` mask as an ``(H, W)`` image."""
    m = np.asarray(mask, dtype=np.float32)
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    return np.broadcast_to(m.reshape(1, -1) if m.ndim == 1 else m, shape)


def save_panel(
    target: np.ndarray,
    recons: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    titles: Mapping[str, str] | None = None,
    suptitle: str | None = None,
    mask: np.ndarray | None = None,
    stds: Mapping[str, np.ndarray] | None = None,
):
    """Save a PNG panel and return its (closed) matplotlib figure.

    Layout (every cell holds an image):

    - top row: ground truth | each reconstruction (grey, ``[0, max(target)]``);
    - bottom row: the sampling ``mask`` (if given) | each ``|recon − target|`` on one common scale
      (:func:`error_scale`: the 99th percentile of the panel's pooled errors) with one colour bar;
    - one extra column per entry of ``stds`` (posterior samples, K > 1): the pixelwise std σ on the same error scale
      (top; comparable with the errors) and ``|error| / σ`` on ``[0, 3]`` (bottom; ≤ 1: the error lies within
      one σ), each with its colour bar.

    Args:
        target: ground-truth magnitude ``(H, W)``.
        recons: name → magnitude ``(H, W)``, in display order.
        path: PNG path (written atomically).
        titles: name → title (e.g. with PSNR/SSIM); defaults to the name.
        suptitle: figure title.
        mask: sampling mask (``(1, 1, W)``, ``(1, H, W)`` or ``(H, W)``); ``None``: no mask cell.
        stds: name → pixelwise std ``(H, W)`` of that reconstruction's samples.
    """
    plt = _plt()
    target = np.asarray(target, dtype=np.float64)
    stds = {k: np.abs(np.asarray(v, dtype=np.float64)) for k, v in (stds or {}).items() if v is not None}
    errors = {name: np.abs(np.asarray(img, dtype=np.float64) - target) for name, img in recons.items()}
    vmax = float(np.max(target)) or 1.0
    emax = error_scale(list(errors.values()))
    n = 1 + len(recons) + len(stds)
    fig = plt.figure(figsize=(2.3 * n + 0.6, 4.9), layout="constrained")
    grid = fig.add_gridspec(2, n)
    cells = {}

    def show(row, col, image, title, **kw):
        ax = fig.add_subplot(grid[row, col])
        im = ax.imshow(image, **kw)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        cells[(row, col)] = ax
        return im

    show(0, 0, target, "ground truth", cmap="gray", vmin=0, vmax=vmax)
    if mask is not None:
        m = _mask_image(mask, target.shape)
        show(1, 0, m, f"k-space mask ({float(m.mean()):.1%} sampled)", cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    err_im = None
    for i, (name, img) in enumerate(recons.items(), start=1):
        show(0, i, img, (titles or {}).get(name, name), cmap="gray", vmin=0, vmax=vmax)
        err_im = show(1, i, errors[name], f"|error| {name}", cmap="inferno", vmin=0, vmax=emax)
    for j, (name, std) in enumerate(stds.items(), start=1 + len(recons)):
        show(0, j, std, f"std {name} (error scale)", cmap="inferno", vmin=0, vmax=emax)
        floor = 1e-3 * vmax  # σ ≈ 0 outside the object: keep the ratio finite
        z_im = show(1, j, errors.get(name, np.zeros_like(std)) / np.maximum(std, floor), f"|error| / std {name}",
                    cmap="coolwarm", vmin=0, vmax=3)
        fig.colorbar(z_im, ax=cells[(1, j)], shrink=0.8, label="|error| / σ")
    if err_im is not None:
        error_axes = [cells[(1, i)] for i in range(1, 1 + len(recons))]
        fig.colorbar(err_im, ax=error_axes, shrink=0.8, label="|error| (std: same scale)" if stds else "|error|")
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return fig


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
