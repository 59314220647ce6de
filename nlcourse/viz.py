"""Figures for the book and the labs. matplotlib and plotly are imported inside each function so
that ``import nlcourse`` stays light.

Figures are drawn on an opaque white background: the book's dark mode then shows them as light
cards instead of dark text on a dark page.
"""

from __future__ import annotations

import numpy as np

__all__ = ["use_style", "block_diagram", "attention_overlay", "scaling_plot"]


def use_style() -> None:
    """One look for every figure: opaque white background, readable sizes, no top/right spines."""
    import matplotlib as mpl

    mpl.rcParams.update({
        "figure.facecolor": "white", "savefig.facecolor": "white", "axes.facecolor": "white",
        "figure.dpi": 110, "savefig.dpi": 110, "font.size": 10, "axes.titlesize": 11,
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": False,
        "figure.constrained_layout.use": True,
    })


def block_diagram(C: int = 64, H: int = 14, W: int = 14, mode: str = "embedded_gaussian"):
    """The non-local block as boxes and arrows, each tensor labelled with its shape."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    Cp, N, M = C // 2, H * W, (H // 2) * (W // 2)
    fig, ax = plt.subplots(figsize=(8.6, 6.2))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10.4)
    ax.axis("off")
    colours = {"tensor": "#e8eef7", "op": "#fdf1d8", "out": "#e3f2e1"}

    def box(x, y, text, kind="tensor", w=2.6, h=0.75):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05",
                                    fc=colours[kind], ec="#333333", lw=1))
        ax.text(x, y, text, ha="center", va="center", fontsize=9)

    def arrow(x0, y0, x1, y1, label=None):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12,
                                     color="#333333", lw=1))
        if label:
            ax.text((x0 + x1) / 2 + 0.08, (y0 + y1) / 2, label, fontsize=8, color="#555555",
                    va="center")

    box(5, 9.8, f"x: B x {C} x {H} x {W}")
    xs = {"theta": 1.8, "phi": 5.0, "g": 8.2}
    first = "x itself" if mode == "gaussian" else "1x1 conv"
    box(1.8, 8.4, f"theta: {first}\nB x {N} x {Cp if mode != 'gaussian' else C}", "op")
    box(5.0, 8.4, f"phi: {first} + 2x2 max-pool\nB x {M} x {Cp if mode != 'gaussian' else C}",
        "op", w=3.0)
    box(8.2, 8.4, f"g: 1x1 conv + 2x2 max-pool\nB x {M} x {Cp}", "op", w=3.0)
    for name, x in xs.items():
        arrow(5 if name == "phi" else x, 9.4, x, 8.85)
    formula = {"gaussian": "exp(x_i . x_j)", "embedded_gaussian": "exp(theta_i . phi_j)",
               "dot_product": "theta_i . phi_j", "concatenation": "ReLU(w^T [theta_i; phi_j])"}
    norm = "/ sum_j f  (softmax)" if "gaussian" in mode else f"/ M  (M = {M})"
    box(3.4, 6.7, f"f = {formula[mode]}\n{norm}\nB x {N} x {M}", "op", w=3.6, h=1.0)
    arrow(1.8, 7.95, 3.0, 7.25)
    arrow(5.0, 7.95, 3.9, 7.25)
    box(5.6, 5.0, f"y = (f / C) g\nB x {N} x {Cp}", "op", w=3.0, h=0.85)
    arrow(3.4, 6.15, 5.0, 5.45)
    arrow(8.2, 7.95, 6.3, 5.45)
    box(5.6, 3.6, f"reshape: B x {Cp} x {H} x {W}")
    arrow(5.6, 4.55, 5.6, 4.0)
    box(5.6, 2.3, f"W: 1x1 conv + BN (gamma = 0)\nB x {C} x {H} x {W}", "op", w=3.4, h=0.85)
    arrow(5.6, 3.2, 5.6, 2.75)
    box(5.6, 0.8, f"z = W y + x:  B x {C} x {H} x {W}", "out", w=3.6)
    arrow(5.6, 1.85, 5.6, 1.2)
    ax.annotate("", xy=(3.75, 0.8), xytext=(3.7, 9.8),
                arrowprops=dict(arrowstyle="-|>", color="#999999", lw=1,
                                connectionstyle="bar,fraction=-0.08"))
    ax.text(0.15, 4.0, "residual:\nx is added back", fontsize=8, color="#777777")
    ax.set_title(f"A non-local block ({mode.replace('_', ' ')}), N = {N} queries, "
                 f"M = {M} keys, C' = {Cp}")
    return fig


def attention_overlay(image, attention_row, query, key_shape, ax=None, title=None, cmap="magma"):
    """One query's weights over the keys, upsampled onto the image, with a colour bar.

    The map is normalised per figure by its own range (not cast to 8 bits, which would wrap
    negative dot-product weights around), and the query position is marked with a cross.
    """
    import matplotlib.pyplot as plt

    image = np.asarray(image, dtype=np.float64)
    weights = np.asarray(attention_row, dtype=np.float64).reshape(key_shape)
    H, W = image.shape
    zoom = np.kron(weights, np.ones((H // key_shape[0], W // key_shape[1])))
    if zoom.shape != image.shape:  # pooled grids that do not divide the image: pad the border
        pad = [(0, H - zoom.shape[0]), (0, W - zoom.shape[1])]
        zoom = np.pad(zoom, pad, mode="edge")
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    ax.imshow(image, cmap="gray")
    shown = ax.imshow(zoom, cmap=cmap, alpha=0.6, vmin=weights.min(), vmax=weights.max())
    ax.plot(query[1], query[0], marker="x", color="#00e5ff", markersize=10, mew=2.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    plt.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    return ax


def scaling_plot(rows: list[dict], x_key: str = "positions"):
    """Time and peak memory against the number of positions, reference and fast, every mode."""
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(r["mode"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for mode, colour in zip(modes, plt.cm.tab10.colors):
        sub = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r[x_key])
        xs = [r[x_key] for r in sub]
        for path, style in (("reference", "--"), ("fast", "-")):
            axes[0].plot(xs, [1e3 * r[f"{path}_seconds"] for r in sub], style, color=colour,
                         marker="o", ms=3, label=f"{mode.replace('_', ' ')} ({path})")
            axes[1].plot(xs, [r[f"{path}_peak_bytes"] / 2 ** 20 for r in sub], style,
                         color=colour, marker="o", ms=3)
    for ax, label in zip(axes, ("forward + backward (ms)", "peak memory (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("positions N = H x W")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7, ncol=1, frameon=False)
    return fig
