"""Figures for the book and the labs. matplotlib and plotly are imported inside each function so
that ``import nlcourse`` stays light.

Figures are drawn on an opaque white background: the book's dark mode then shows them as light
cards instead of dark text on a dark page.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["use_style", "block_diagram", "map_geometry", "key_weights_on_image", "query_centre",
           "attention_overlay", "interactive_query_figure", "offline_html", "map_explorer",
           "scaling_plot"]


def use_style() -> None:
    """One look for every figure: opaque white background, readable sizes, no top/right spines."""
    import matplotlib as mpl  # heavy: import nlcourse stays light

    mpl.rcParams.update({
        "figure.facecolor": "white", "savefig.facecolor": "white", "axes.facecolor": "white",
        "figure.dpi": 110, "savefig.dpi": 110, "font.size": 10, "axes.titlesize": 11,
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": False,
        "figure.constrained_layout.use": True,
    })


def block_diagram(C: int = 64, H: int = 14, W: int = 14, mode: str = "embedded_gaussian"):
    """The non-local block as boxes and arrows, each tensor labelled with its shape."""
    import matplotlib.pyplot as plt  # heavy: import nlcourse stays light
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # heavy: import nlcourse stays light

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


def map_geometry(n_queries: int, n_keys: int, image_size: int = 28) -> dict:
    """Where a square map's queries and keys sit on the input image, in pixels.

    For MNISTNet's first block (196 x 49): query cells of 2 px, keys of 4 px; for its second
    (49 x 9): query cells of 4 px and keys of 8 px, which cover pixels 0-23 only (max-pooling 7
    cells by 2 drops the last row and column).
    """
    grid, key_grid = int(round(n_queries ** 0.5)), int(round(n_keys ** 0.5))
    if grid * grid != n_queries or key_grid * key_grid != n_keys:
        raise ValueError(f"expected square grids, got {n_queries} queries and {n_keys} keys")
    cell = image_size // grid
    return {"grid": grid, "key_grid": key_grid, "cell_px": cell,
            "key_px": cell * (grid // key_grid)}


def key_weights_on_image(weights, geometry: dict, image_size: int = 28) -> np.ndarray:
    """One query's key weights painted onto the image grid; pixels no key covers are NaN."""
    k, px = geometry["key_grid"], geometry["key_px"]
    painted = np.kron(np.asarray(weights, dtype=np.float64).reshape(k, k), np.ones((px, px)))
    out = np.full((image_size, image_size), np.nan)
    n = min(image_size, painted.shape[0])
    out[:n, :n] = painted[:n, :n]
    return out


def query_centre(query: int, geometry: dict) -> tuple[float, float]:
    """(row, column) of a query cell's centre, in image pixels."""
    cell = geometry["cell_px"]
    r, c = divmod(query, geometry["grid"])
    return r * cell + (cell - 1) / 2, c * cell + (cell - 1) / 2


def attention_overlay(image, weights, geometry: dict, query: int, ax=None, title=None,
                      cmap="magma", colorbar=True):
    """One query's weights over the keys, on the image, with a colour bar and the query marked.

    The colour scale runs from this map's smallest to its largest weight (normalised per map,
    never cast to 8 bits, which would wrap negative dot-product weights around).
    """
    import matplotlib.pyplot as plt  # heavy: import nlcourse stays light

    image = np.asarray(image, dtype=np.float64)
    painted = key_weights_on_image(weights, geometry, image.shape[0])
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    ax.imshow(image, cmap="gray")
    shown = ax.imshow(painted, cmap=cmap, alpha=0.65, vmin=np.nanmin(painted),
                      vmax=np.nanmax(painted))
    r, c = query_centre(query, geometry)
    ax.plot(c, r, marker="x", color="#00e5ff", markersize=10, mew=2.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)  # ax's own figure
    return ax


def interactive_query_figure(image, nl_map, title: str = ""):
    """A plotly figure with a slider over every query position of one map: works in a static
    page, without a kernel and without the network (plotly.js is embedded from the package).

    ``nl_map`` is one image's (N, M) map. Returns the figure; ``offline_html(fig)`` embeds it.
    """
    import plotly.graph_objects as go  # heavy: import nlcourse stays light

    nl_map = np.asarray(nl_map, dtype=np.float64)
    geometry = map_geometry(*nl_map.shape, image_size=np.asarray(image).shape[0])
    fig = go.Figure()
    fig.add_trace(go.Heatmap(z=np.asarray(image)[::-1], colorscale="gray", showscale=False,
                             hoverinfo="skip"))
    steps = []
    for q in range(nl_map.shape[0]):
        painted = key_weights_on_image(nl_map[q], geometry, np.asarray(image).shape[0])[::-1]
        r, c = query_centre(q, geometry)
        fig.add_trace(go.Heatmap(z=painted, colorscale="Magma", opacity=0.65, visible=q == 0,
                                 colorbar=dict(title="weight"), zmin=np.nanmin(painted),
                                 zmax=np.nanmax(painted),
                                 hovertemplate="x %{x}, y %{y}: weight %{z:.4f}<extra></extra>"))
        steps.append(dict(method="update", label=f"{divmod(q, geometry['grid'])}",
                          args=[{"visible": [True] + [k == q for k in range(nl_map.shape[0])]},
                                {"shapes": [_cross(r, c, np.asarray(image).shape[0])]}]))
    r, c = query_centre(0, geometry)
    fig.update_layout(title=title, width=470, height=520, shapes=[_cross(r, c, np.asarray(image).shape[0])],
                      sliders=[dict(steps=steps, currentvalue=dict(prefix="query (row, col): "),
                                    pad=dict(t=30))],
                      xaxis=dict(visible=False), yaxis=dict(visible=False, scaleanchor="x"),
                      margin=dict(l=10, r=10, t=40, b=10), paper_bgcolor="white",
                      plot_bgcolor="white")
    return fig


def _cross(r: float, c: float, size: int) -> dict:
    y = size - 1 - r
    return dict(type="circle", x0=c - 1, x1=c + 1, y0=y - 1, y1=y + 1,
                line=dict(color="#00e5ff", width=3))


def offline_html(fig):
    """Display a plotly figure with plotly.js embedded in the page (no CDN, works offline)."""
    from IPython.display import HTML  # heavy: import nlcourse stays light

    return HTML(fig.to_html(include_plotlyjs=True, full_html=False))


def map_explorer(model, images, labels=None):
    """An ipywidgets explorer for live notebooks: image, block and query (row, column) sliders."""
    import ipywidgets as widgets  # heavy: import nlcourse stays light
    import matplotlib.pyplot as plt  # heavy: import nlcourse stays light

    with torch.no_grad():
        _, maps = model(images, return_nl_maps=True)
    geometries = [map_geometry(*m.shape[1:]) for m in maps]

    def draw(index, block, row, col):
        g = geometries[block]
        row, col = min(row, g["grid"] - 1), min(col, g["grid"] - 1)
        query = row * g["grid"] + col
        fig, ax = plt.subplots(figsize=(4, 4))
        label = f", label {int(labels[index])}" if labels is not None else ""
        attention_overlay(images[index, 0], maps[block][index, query].numpy(), g, query, ax=ax,
                          title=f"image {index}{label}, block {block + 1}, query ({row}, {col})")
        plt.show()

    return widgets.interactive(
        draw, index=widgets.IntSlider(0, 0, len(images) - 1, description="image"),
        block=widgets.Dropdown(options=[(f"block {b + 1}", b) for b in range(len(maps))],
                               description="block"),
        row=widgets.IntSlider(7, 0, geometries[0]["grid"] - 1, description="query row"),
        col=widgets.IntSlider(7, 0, geometries[0]["grid"] - 1, description="query col"))


def scaling_plot(rows: list[dict], x_key: str = "positions"):
    """Time and peak memory against the number of positions, reference and fast, every mode."""
    import matplotlib.pyplot as plt  # heavy: import nlcourse stays light

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
