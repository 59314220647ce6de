"""Figures for the book and the labs. matplotlib and plotly are imported inside each function so
that ``import nlcourse`` stays light.

Figures are drawn on an opaque white background: the book's dark mode then shows them as light
cards instead of dark text on a dark page.
"""

from __future__ import annotations

import html
import importlib
from functools import partial

import numpy as np
import torch

from .blocks import NonLocalBlock

__all__ = ["use_style", "describe", "describe_figure", "min_font_px", "block_diagram",
           "map_geometry", "key_weights_on_image", "query_centre", "stroke_queries",
           "attention_overlay", "describe_query_map", "interactive_query_figure", "offline_html",
           "map_explorer", "scaling_plot"]


MIN_FONT_KEY = "nlcourse:min-font-px"   # PNG text chunk: the figure's smallest text, in its pixels


def use_style() -> None:
    """One look for every figure: opaque white background, readable sizes, no top/right spines.

    In a notebook it also has every figure shown as a PNG that carries words: its ``Description``
    (what :func:`describe_figure` says, the site's alt text) and the size of its smallest text
    in the image's own pixels (``MIN_FONT_KEY``), which the site's browser test scales by the
    width the figure is shown at.
    """
    import matplotlib as mpl  # heavy: import nlcourse stays light

    mpl.rcParams.update({
        "figure.facecolor": "white", "savefig.facecolor": "white", "axes.facecolor": "white",
        "figure.dpi": 110, "savefig.dpi": 110, "font.size": 11, "axes.titlesize": 11,
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": False,
        "figure.constrained_layout.use": True,
    })
    try:
        from IPython import get_ipython  # heavy: import nlcourse stays light
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    try:   # the configured backend, without resolving it (which would load it)
        backend = mpl.get_backend(auto_select=False)
    except TypeError:   # matplotlib before 3.10
        backend = mpl.rcParams._get("backend")
    if "inline" in str(backend):
        # The inline backend registers its PNG formatter once, when its module is first imported
        # (usually at the first figure): import it now, so that the formatter below comes last.
        importlib.import_module("matplotlib_inline.backend_inline")   # heavy: as above
    from matplotlib.figure import Figure  # heavy: as above

    png = shell.display_formatter.formatters["image/png"]
    try:   # keep the backend's options (bbox_inches="tight"), and ours on a second call
        options = dict(getattr(png.lookup_by_type(Figure), "keywords", {}))
    except KeyError:
        options = {"bbox_inches": "tight"}
    png.for_type(Figure, partial(_png_with_words, **options))


def describe(fig, text: str):
    """Say in words what a figure shows: its alt text on the site, instead of one read from its
    titles and labels. Returns the figure."""
    if not text or not text.strip():
        raise ValueError("text must say what the figure shows; got an empty string")
    fig._nlcourse_description = " ".join(text.split())
    return fig


def _texts(fig):
    from matplotlib.text import Text  # heavy: import nlcourse stays light

    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()
            and t.get_alpha() != 0 and t.get_color() not in ("none", (0, 0, 0, 0))]


def describe_figure(fig) -> str:
    """A figure in words: what :func:`describe` set, else its title, and each panel's title,
    axes and legend, read from the figure itself."""
    explicit = getattr(fig, "_nlcourse_description", None)
    if explicit:
        return explicit

    def clean(text):
        return " ".join(text.replace("$", "").replace("\\", "").split())

    parts = []
    title = getattr(fig, "_suptitle", None)
    if title is not None and title.get_text().strip():
        parts.append(clean(title.get_text()))
    panels = []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>" or not ax.get_visible():
            continue
        bits = [clean(t) for t in (ax.get_title(), ax.get_title("left"), ax.get_title("right"))
                if t.strip()]
        if ax.axison and ax.get_xlabel().strip():
            bits.append(f"x: {clean(ax.get_xlabel())}")
        if ax.axison and ax.get_ylabel().strip():
            bits.append(f"y: {clean(ax.get_ylabel())}")
        legend = ax.get_legend()
        if legend is not None:
            labels = [clean(t.get_text()) for t in legend.get_texts() if t.get_text().strip()]
            if labels:
                bits.append("legend: " + ", ".join(labels))
        if ax.images and not ax.axison:
            bits.append("an image")
        if bits:
            panels.append("; ".join(bits))
    if len(panels) == 1:
        parts.append(panels[0])
    elif panels:
        parts.append(f"{len(panels)} panels: " + " | ".join(panels))
    text = ". ".join(p.rstrip(".") for p in parts if p)
    return (text + ".") if text else "A figure without a title or labels."


def min_font_px(fig, dpi: float | None = None) -> float:
    """The size of the smallest text drawn in a figure, in pixels of its PNG (at ``dpi``)."""
    import matplotlib as mpl  # heavy: import nlcourse stays light

    dpi = dpi or mpl.rcParams["savefig.dpi"]
    dpi = fig.dpi if dpi == "figure" else dpi
    sizes = [t.get_fontsize() for t in _texts(fig)]
    return round(min(sizes) * dpi / 72, 2) if sizes else 0.0


def _png_with_words(fig, **options):
    """The inline backend's PNG (its ``options``), with the figure's description and smallest
    text size in it."""
    from IPython.core.pylabtools import print_figure  # heavy: import nlcourse stays light

    if not fig.axes and not fig.texts:
        return None
    options = {k: v for k, v in options.items() if k not in ("fmt", "base64", "metadata")}
    metadata = {"Description": describe_figure(fig), MIN_FONT_KEY: str(min_font_px(fig))}
    return print_figure(fig, "png", base64=True, metadata=metadata, **options)


def block_diagram(C: int = 64, spatial: tuple[int, ...] = (14, 14),
                  mode: str = "embedded_gaussian", sub_sample: bool = True):
    """The non-local block as operations (boxes) and the tensors between them (arrows), each
    arrow labelled with the shape the code produces: a block is built and run once, so the
    figure cannot drift from :class:`~nlcourse.blocks.NonLocalBlock`. ``spatial`` has 1, 2 or 3
    sizes (a sequence, an image, a clip)."""
    import matplotlib.pyplot as plt  # heavy: import nlcourse stays light
    from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch  # heavy: as above

    spatial = tuple(int(s) for s in spatial)
    block = NonLocalBlock(C, mode=mode, dimension=len(spatial), sub_sample=sub_sample).eval()
    with torch.no_grad():
        x = torch.zeros(1, C, *spatial)
        theta, phi, g = block.project(x)
        z, nl_map = block(x, return_nl_map=True)
    N, M, Cp = nl_map.shape[1], nl_map.shape[2], g.shape[-1]
    letters = "THW"[-len(spatial):] if len(spatial) > 1 else "L"

    def shape(*dims) -> str:
        return " x ".join(["B", *map(str, dims)])

    grid = shape(C, *spatial)
    pooled = "x".join(map(str, block.pool.kernel_size if isinstance(block.pool.kernel_size, tuple)
                          else (block.pool.kernel_size,) * len(spatial)))
    # 5.4 inches and 10.5-point labels: the smallest text stays above 9 CSS px when a phone
    # shrinks the figure to its column (358 px), or to a dropdown's inside it (347 px)
    size = 10.5
    fig, ax = plt.subplots(figsize=(5.4, 7.4), layout="constrained")
    ax.set_xlim(-0.9, 10.3)
    ax.set_ylim(-0.6, 12.0)   # room for the output box's lower edge
    ax.axis("off")
    colours = {"op": "#fdf1d8", "io": "#e8eef7", "out": "#e3f2e1"}

    def box(x, y, text, kind="op", w=3.0, h=0.9):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.06",
                                    fc=colours[kind], ec="#333333", lw=1))
        ax.text(x, y, text, ha="center", va="center", fontsize=size)
        return {"top": y + h / 2 + 0.08, "bottom": y - h / 2 - 0.08, "x": x, "w": w}

    def arrow(start, end, label=None, side="right", colour="#333333"):
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12,
                                     color=colour, lw=1.1, shrinkA=0, shrinkB=0))
        if label:
            mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
            dx = 0.12 if side == "right" else -0.12
            ax.text(mx + dx, my, label, fontsize=size, color="#1f4e8c",
                    ha="left" if side == "right" else "right", va="center")

    pool_text = f"\n+ {pooled} max-pool" if sub_sample else ""
    f = block.f
    embed = "1x1 conv" if f.embedded else "x itself"
    norm = r"softmax over $j$" if f.softmax else f"divided by M = {M}"
    width = Cp if f.embedded else C   # theta and phi: C' channels, or x's own C

    xb = box(4.6, 11.4, f"input x\n{grid}", "io", w=4.2, h=0.9)
    th = box(1.35, 9.2, f"theta ($\\theta$)\n{embed}", w=2.7, h=1.1)
    ph = box(4.6, 9.2, f"phi ($\\phi$)\n{embed}{pool_text}", w=2.9, h=1.1)
    gg = box(7.95, 9.2, f"g\n1x1 conv{pool_text}", w=2.9, h=1.1)
    for target in (th, ph, gg):
        arrow((min(max(target["x"], xb["x"] - 1.5), xb["x"] + 1.5), xb["bottom"]),
              (target["x"], target["top"]))
    fb = box(3.1, 6.9, f"pairwise f = {f.latex}\n{norm}", w=3.4, h=0.95)
    arrow((th["x"], th["bottom"]), (fb["x"] - 1.0, fb["top"]), r"$\theta$:" "\n" + shape(N, width),
          side="left")
    arrow((ph["x"], ph["bottom"]), (fb["x"] + 1.0, fb["top"]), r"$\phi$: " + shape(M, width))
    yb = box(6.0, 4.8, "weighted sum\ny = (f / C) g", w=2.6, h=0.9)
    arrow((fb["x"], fb["bottom"]), (yb["x"] - 0.9, yb["top"]), f"map f/C:\n{shape(N, M)}",
          side="left")
    arrow((gg["x"], gg["bottom"]), (yb["x"] + 0.9, yb["top"]), "g: " + shape(M, Cp))
    wb = box(6.0, 3.0, "$W_z$: 1x1 conv + BN\n(BN scale starts at 0)", w=3.6, h=0.9)
    arrow((yb["x"], yb["bottom"]), (wb["x"], wb["top"]), f"y, reshaped:\n{shape(Cp, *spatial)}")
    ax.add_patch(Circle((6.0, 1.45), 0.3, fc="white", ec="#333333", lw=1.1))
    ax.text(6.0, 1.45, "+", ha="center", va="center", fontsize=13)
    arrow((wb["x"], wb["bottom"]), (6.0, 1.75), f"$W_z y$: {grid}")
    zb = box(6.0, 0.25, f"output $z = W_z y + x$\n{grid}", "out", w=4.2, h=0.8)
    arrow((6.0, 1.15), (6.0, zb["top"]))
    # The residual: around every box, along the left margin, into the sum.
    left = -0.55
    ax.plot([xb["x"] - 1.7, left, left], [11.4, 11.4, 1.45], color="#888888", lw=1.1)
    arrow((left, 1.45), (5.7, 1.45), colour="#888888")
    ax.text(left + 0.15, 6.0, "residual: x itself", rotation=90, fontsize=size, color="#666666",
            va="center")
    dims = {1: "a sequence", 2: "an image", 3: "a clip"}[len(spatial)]
    ax.set_title(f"{f.title} block on {dims}, {'x'.join(letters)} = {'x'.join(map(str, spatial))}\n"
                 f"N = {N} queries, M = {M} keys, C = {C} channels, C' = {Cp}", fontsize=size)
    plt.close(fig)
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


def stroke_queries(images: torch.Tensor, geometry: dict) -> torch.Tensor:
    """The query cell holding the most ink of each image (..., H, W): a point on the stroke, the
    query the pages and labs look at first. Returns the cell indices, shape (...)."""
    g, cell = geometry["grid"], geometry["cell_px"]
    if images.dim() < 2 or min(images.shape[-2:]) < g * cell:
        raise ValueError(f"images must be (..., H, W) with H, W >= {g * cell} for a {g}x{g} grid "
                         f"of {cell}-pixel cells; got shape {tuple(images.shape)}")
    lead = images.shape[:-2]
    ink = images[..., :g * cell, :g * cell].reshape(*lead, g, cell, g, cell).sum((-3, -1))
    return ink.flatten(-2).argmax(-1)


def query_centre(query: int, geometry: dict) -> tuple[float, float]:
    """(row, column) of a query cell's centre, in image pixels."""
    cell = geometry["cell_px"]
    r, c = divmod(query, geometry["grid"])
    return r * cell + (cell - 1) / 2, c * cell + (cell - 1) / 2


def attention_overlay(image, weights, geometry: dict, query: int, ax=None, title=None,
                      cmap="magma", colorbar=True, fontsize: float = 10, vmin=None,
                      vmax=None):
    """One query's weights over the keys, on the image, with a colour bar and the query marked.

    The colour scale runs from this map's smallest to its largest weight (normalised per map,
    never cast to 8 bits, which would wrap negative dot-product weights around). Per-map scaling
    makes a nearly uniform map look as focused as a sharp one, so the corner says how far the
    largest weight stands above the mean weight (for a softmax map, above uniform attention).
    ``fontsize`` (points) sets the title and that corner label: 10 points stays readable on a
    phone in a figure up to about 5.5 inches wide. ``vmin`` and ``vmax`` replace the map's own
    smallest and largest weight, so that several panels share one colour scale. Returns the
    axes; the painted image is ``ax.images[-1]``.
    """
    import matplotlib.pyplot as plt  # heavy: import nlcourse stays light

    image = np.asarray(image, dtype=np.float64)
    painted = key_weights_on_image(weights, geometry, image.shape[0])
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    ax.imshow(image, cmap="gray")
    shown = ax.imshow(painted, cmap=cmap, alpha=0.65,
                      vmin=np.nanmin(painted) if vmin is None else vmin,
                      vmax=np.nanmax(painted) if vmax is None else vmax)
    r, c = query_centre(query, geometry)
    ax.plot(c, r, marker="x", color="#00e5ff", markersize=10, mew=2.5)
    ax.set_xticks([])
    ax.set_yticks([])
    flat = np.asarray(weights, dtype=np.float64)
    if flat.mean() > 0:  # a dot-product map can average to zero or below: no ratio to give then
        ax.text(0.03, 0.03, f"peak {flat.max() / flat.mean():.1f}× mean", transform=ax.transAxes,
                fontsize=fontsize, color="white", va="bottom",
                bbox=dict(facecolor="black", alpha=0.6, pad=1.5, linewidth=0))
    if title:
        ax.set_title(title, fontsize=fontsize)
    if colorbar:
        ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)  # ax's own figure
    return ax


def describe_query_map(nl_map, geometry: dict, query: int, top: int = 5) -> str:
    """In words, what one query's row of a map does: where its largest weight lies and how much
    of the weight its ``top`` largest keys hold against an even spread. The text alternative of
    a map figure, and the summary beside the interactive one."""
    row = np.asarray(nl_map, dtype=np.float64)[query]
    k, px = geometry["key_grid"], geometry["key_px"]
    top = min(top, row.size)
    best = int(row.argmax())
    kr, kc = divmod(best, k)
    r, c = query_centre(query, geometry)
    where = (f"the key covering rows {kr * px}-{(kr + 1) * px - 1} and columns "
             f"{kc * px}-{(kc + 1) * px - 1}")
    text = (f"The query at pixel ({r:.1f}, {c:.1f}) gives its largest weight, {row.max():.3f}, "
            f"to {where}")
    if (row >= 0).all() and row.sum() > 0:
        share = np.sort(row)[::-1][:top].sum() / row.sum()
        text += (f"; its {top} largest of {row.size} keys hold {share:.0%} of its weight "
                 f"(an even spread would give them {top / row.size:.0%})")
    return text + "."


def interactive_query_figure(image, nl_map, title: str = ""):
    """A plotly figure with a slider over every query position of one map: works in a static
    page, without a kernel and without the network (plotly.js is embedded from the package).

    ``nl_map`` is one image's (N, M) map. Each query's weights are drawn at the keys' own
    resolution (M numbers to four digits, placed over the image) on one overlay that the slider
    restyles, so the page carries tens of kilobytes, not megabytes. Returns the figure;
    ``offline_html(fig, description)`` embeds it.
    """
    import plotly.graph_objects as go  # heavy: import nlcourse stays light

    image = np.asarray(image)
    size = image.shape[0]
    nl_map = np.asarray(nl_map, dtype=np.float64)
    geometry = map_geometry(*nl_map.shape, image_size=size)
    k, px = geometry["key_grid"], geometry["key_px"]
    shown = min(k, -(-size // px))            # key rows and columns that start on the image
    # Key row r (from the top) covers image rows r*px .. r*px + px - 1; the figure's y axis runs
    # upwards, so row r's centre is at y = size - 1 - (r*px + (px - 1)/2).
    y0 = size - 1 - ((shown - 1) * px + (px - 1) / 2)

    def weights(q):   # one query's key weights, rows flipped for the upward y axis, 4 digits
        return [[float(f"{w:.4g}") for w in row]
                for row in nl_map[q].reshape(k, k)[:shown, :shown][::-1]]

    fig = go.Figure()
    fig.add_trace(go.Heatmap(z=image[::-1], colorscale="gray", showscale=False,
                             hoverinfo="skip"))
    # One overlay; each step of the slider gives it another query's weights (restyling one trace
    # keeps the page small: a trace per query would repeat the layout 196 times).
    fig.add_trace(go.Heatmap(z=weights(0), x0=(px - 1) / 2, dx=px, y0=y0, dy=px,
                             colorscale="Magma", opacity=0.65,
                             colorbar=dict(title=dict(text="weight", side="top"),
                                           orientation="h", y=-0.02, yanchor="top",
                                           len=0.9, thickness=12),
                             hovertemplate="key at x %{x}, y %{y}: weight %{z:.4f}"
                                           "<extra></extra>"))
    steps = []
    for q in range(nl_map.shape[0]):
        r, c = query_centre(q, geometry)
        steps.append(dict(method="update", label=f"{divmod(q, geometry['grid'])}",
                          args=[{"z": [weights(q)]}, {"shapes": [_cross(r, c, size)]}, [1]]))
    r, c = query_centre(0, geometry)
    # No fixed width: the page gives the figure its width (a phone's too), the colour bar lies
    # under the image, and the slider's tick labels are hidden (the current one is printed).
    fig.update_layout(title=title, autosize=True, height=600,
                      shapes=[_cross(r, c, size)],
                      sliders=[dict(steps=steps, pad=dict(t=70), ticklen=0, minorticklen=0,
                                    font=dict(color="rgba(0,0,0,0)", size=1),
                                    currentvalue=dict(prefix="query (row, col): ",
                                                      font=dict(color="#333333", size=13)))],
                      xaxis=dict(visible=False, range=[-0.5, size - 0.5]),
                      yaxis=dict(visible=False, scaleanchor="x", range=[-0.5, size - 0.5]),
                      margin=dict(l=10, r=10, t=40, b=10), paper_bgcolor="white",
                      plot_bgcolor="white")
    return fig


def _cross(r: float, c: float, size: int) -> dict:
    y = size - 1 - r
    return dict(type="circle", x0=c - 1, x1=c + 1, y0=y - 1, y1=y + 1,
                line=dict(color="#00e5ff", width=3))


def offline_html(fig, description: str):
    """Display a plotly figure with plotly.js embedded in the page (no CDN, works offline), in a
    figure element whose caption says in words what it shows (for a screen reader, and for a
    reader whose browser runs no JavaScript)."""
    from IPython.display import HTML  # heavy: import nlcourse stays light

    if not description or not description.strip():
        raise ValueError("description must say in words what the figure shows (its text "
                         "alternative); got an empty string")
    plot = fig.to_html(include_plotlyjs=True, full_html=False, default_width="100%",
                       config={"responsive": True, "displaylogo": False})
    text = html.escape(description.strip())
    return HTML(f'<figure class="nlcourse-interactive" role="group" aria-label="{text}">{plot}'
                f'<figcaption>{text}</figcaption></figure>')


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
