"""Export the attention maps of a trained MNIST network for one image: your own picture or a test
digit, the shipped weights or your own checkpoint. This is what ``python -m nlcourse maps`` runs.

The query is given in image pixels (row, column of the 28 x 28 input), which is what a reader can
point at; each block maps it to its own query cell. Pillow and matplotlib are imported inside the
functions that need them, so ``import nlcourse`` stays light.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ._modes import MODES
from .models import MNISTNet
from .shipped import pretrained
from .train import load_checkpoint, load_weights
from .viz import attention_overlay, map_geometry

SIZE = 28


def load_image(path: str | Path, log=print) -> torch.Tensor:
    """A grey image as MNISTNet's input (1, 1, 28, 28) in [0, 1], white digit on black.

    Colour images are converted to grey, larger ones resized to 28 x 28 and light-background
    images inverted (MNIST digits are white on black); each change is reported through ``log``.
    """
    from PIL import Image, UnidentifiedImageError  # heavy: import nlcourse stays light

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image: no file at {path}")
    try:
        with Image.open(path) as img:
            img.load()
            mode, size = img.mode, img.size
            grey = img.convert("L")
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"image: {path} is not an image file Pillow can read "
                         f"(a PNG or JPEG of a digit is expected): {err}") from None
    if mode not in ("L", "1", "I", "I;16", "F"):
        log(f"{path.name}: converted from {mode} to grey")
    width, height = size
    if width < SIZE or height < SIZE:
        raise ValueError(f"image: {path} is {width} x {height} pixels; at least {SIZE} x {SIZE} "
                         "is expected (the network was trained on 28 x 28 digits)")
    if (width, height) != (SIZE, SIZE):
        if width != height:
            log(f"{path.name}: {width} x {height} is not square; it is squeezed to "
                f"{SIZE} x {SIZE}, which distorts the digit")
        else:
            log(f"{path.name}: resized from {width} x {height} to {SIZE} x {SIZE}")
        grey = grey.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    x = torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0)
    if x.mean() > 0.5:
        log(f"{path.name}: mostly light, so inverted to a light digit on black, as in MNIST")
        x = 1.0 - x
    return x[None, None]


def load_model(mode: str, checkpoint: str | Path | None = None) -> MNISTNet:
    """The shipped network for ``mode``, or the MNISTNet saved in ``checkpoint``, in eval mode.

    A checkpoint of another architecture (another lab, or another pairwise function) is refused
    with what it holds and what was expected.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)} (a network with blocks has "
                         f"maps), got {mode!r}")
    if checkpoint is None:
        return pretrained(mode)
    saved = load_checkpoint(checkpoint)
    return load_weights(MNISTNet(mode), saved, checkpoint,
                        f"an MNISTNet with {mode} blocks").eval()


def parse_query(text: str) -> tuple[int, int]:
    """'ROW,COL' in image pixels, each in 0..27."""
    try:
        row, col = (int(part) for part in str(text).split(","))
    except ValueError:
        raise ValueError(f"query: expected ROW,COL in image pixels (for example 14,14), "
                         f"got {text!r}") from None
    if not (0 <= row < SIZE and 0 <= col < SIZE):
        raise ValueError(f"query: ({row}, {col}) lies outside the {SIZE} x {SIZE} image; "
                         f"rows and columns run from 0 to {SIZE - 1}")
    return row, col


def export_maps(net: MNISTNet, image: torch.Tensor, query: tuple[int, int], out: str | Path,
                title: str = "") -> dict:
    """Write ``overlay.png`` (the image and, for each block, the query's weights over the keys)
    and ``maps.npz`` (the image, each block's whole map, the query cell of each block, the
    class probabilities) into ``out``. Returns the paths, the prediction and the query cells."""
    # A Figure of its own, not pyplot's: no backend is switched and no open figure is touched.
    from matplotlib.figure import Figure  # heavy: import nlcourse stays light

    if tuple(image.shape) != (1, 1, SIZE, SIZE):
        raise ValueError(f"image must be shaped (1, 1, {SIZE}, {SIZE}), got {tuple(image.shape)}")
    row, col = query
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        logits, maps = net.eval()(image, return_nl_maps=True)
    probs = logits.softmax(-1)[0]
    picture = image[0, 0].numpy()
    cells, arrays = [], {"image": picture, "probabilities": probs.numpy()}
    fig = Figure(figsize=(3.4 * (1 + len(maps)), 3.4), layout="constrained")  # whatever rcParams say
    axes = fig.subplots(1, 1 + len(maps))
    axes[0].imshow(picture, cmap="gray")
    axes[0].plot(col, row, marker="x", color="#00e5ff", markersize=10, mew=2.5)
    axes[0].set_title(f"input: predicted {int(probs.argmax())} ({float(probs.max()):.0%})",
                      fontsize=9)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    for k, (m, ax) in enumerate(zip(maps, axes[1:]), 1):
        geometry = map_geometry(m.shape[1], m.shape[2])
        cell = min(row // geometry["cell_px"], geometry["grid"] - 1) * geometry["grid"] + \
            min(col // geometry["cell_px"], geometry["grid"] - 1)
        cells.append(cell)
        arrays[f"block{k}"] = m[0].numpy()
        attention_overlay(picture, m[0, cell].numpy(), geometry, cell, ax=ax,
                          title=f"block {k}: query cell {cell} of {m.shape[1]}")
    arrays["query_cells"] = np.array(cells)
    arrays["query_pixel"] = np.array([row, col])
    if title:
        fig.suptitle(title, fontsize=10)
    png, npz = out / "overlay.png", out / "maps.npz"
    fig.savefig(png, dpi=120)
    np.savez_compressed(npz, **arrays)
    return {"png": png, "npz": npz, "prediction": int(probs.argmax()), "query_cells": cells}
