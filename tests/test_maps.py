"""python -m nlcourse maps: the overlay and the raw maps for a test digit or one's own image, and a
clear one-line refusal of a bad image, a query outside the image or a checkpoint of another
architecture."""

import numpy as np
import pytest
import torch

from nlcourse import __main__ as cli
from nlcourse import maps
from nlcourse.models import LongRangeNet
from nlcourse.train import save_checkpoint

Image = pytest.importorskip("PIL.Image")


def _digit(path, size=28, light=False, colour=False):
    yy, xx = np.mgrid[:size, :size]
    ring = np.abs(np.hypot(yy - size / 2, xx - size / 2) - size / 4) < size / 14
    a = (ring * 255).astype(np.uint8)
    if light:
        a = 255 - a
    img = Image.fromarray(np.stack([a] * 3, -1) if colour else a)
    img.save(path)
    return path


def test_cli_writes_overlay_and_maps_for_a_test_digit(tmp_path, capsys):
    assert cli.main(["maps", "--mode", "dot_product", "--index", "2", "--query", "10,20",
                     "--out", str(tmp_path / "out")]) == 0
    saved = np.load(tmp_path / "out" / "maps.npz")
    assert saved["block1"].shape == (196, 49) and saved["block2"].shape == (49, 9)
    assert list(saved["query_cells"]) == [5 * 14 + 10, 2 * 7 + 5]
    assert abs(saved["probabilities"].sum() - 1) < 1e-5
    assert (tmp_path / "out" / "overlay.png").stat().st_size > 10_000
    assert "predicted" in capsys.readouterr().out


def test_own_image_is_resized_inverted_and_reported(tmp_path, capsys):
    path = _digit(tmp_path / "big.png", size=112, light=True, colour=True)
    assert cli.main(["maps", "--image", str(path), "--query", "14,14",
                     "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "resized from 112 x 112 to 28 x 28" in out and "inverted" in out and "grey" in out
    x = maps.load_image(_digit(tmp_path / "small.png"), log=lambda _: None)
    assert x.shape == (1, 1, 28, 28) and x.min() >= 0 and x.max() <= 1 and x.mean() < 0.5


@pytest.mark.parametrize("argv, message", [
    (["--query", "28,3"], "query: (28, 3) lies outside the 28 x 28 image"),
    (["--query", "3"], "query: expected ROW,COL in image pixels"),
    (["--query", "3,3", "--index", "10000"], "index: 10000 is not a test image"),
])
def test_bad_arguments_get_one_clear_line(tmp_path, capsys, argv, message):
    assert cli.main(["maps", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_bad_images_are_refused_by_name(tmp_path, capsys):
    (tmp_path / "notes.png").write_text("not an image")
    assert cli.main(["maps", "--image", str(tmp_path / "notes.png"), "--query", "1,1",
                     "--out", str(tmp_path)]) == 2
    assert "is not an image file" in capsys.readouterr().err
    tiny = _digit(tmp_path / "tiny.png", size=14)
    assert cli.main(["maps", "--image", str(tiny), "--query", "1,1", "--out", str(tmp_path)]) == 2
    assert "is 14 x 14 pixels; at least 28 x 28" in capsys.readouterr().err
    assert cli.main(["maps", "--image", str(tmp_path / "gone.png"), "--query", "1,1",
                     "--out", str(tmp_path)]) == 2
    assert "image: no file at" in capsys.readouterr().err


def test_checkpoint_of_another_architecture_is_refused(tmp_path, capsys):
    other = save_checkpoint(tmp_path / "lr.pt", LongRangeNet("embedded_gaussian"),
                            lab="long_range", model="embedded_gaussian")
    assert cli.main(["maps", "--checkpoint", str(other), "--query", "1,1",
                     "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not an MNISTNet with embedded_gaussian blocks (lab 'long_range'" in err
    gauss = save_checkpoint(tmp_path / "g.pt", maps.MNISTNet("gaussian"), lab="mnist",
                            model="gaussian")
    with pytest.raises(ValueError, match="missing blocks.0.phi.bias"):
        maps.load_model("embedded_gaussian", gauss)
    torch.manual_seed(0)
    same = save_checkpoint(tmp_path / "eg.pt", maps.MNISTNet("embedded_gaussian"), lab="mnist",
                           model="embedded_gaussian")
    assert isinstance(maps.load_model("embedded_gaussian", same), maps.MNISTNet)
    with pytest.raises(ValueError, match="mode must be one of"):
        maps.load_model("none")


@pytest.mark.parametrize("weights, label", [
    (np.full(49, 1 / 49), "peak 1.0× mean"),                       # uniform: per-map colour hides it
    (np.r_[np.full(48, 0.5 / 48), 0.5], "peak 24.5× mean"),        # half the weight on one key
    (np.r_[np.full(48, -0.1), 0.2], None),                         # mean below zero: no ratio
])
def test_overlay_says_how_far_the_peak_stands_above_the_mean(weights, label):
    """Colours are scaled per map, so a uniform map would look focused without this label."""
    plt = pytest.importorskip("matplotlib.pyplot")
    from nlcourse.viz import attention_overlay, map_geometry
    ax = attention_overlay(np.zeros((28, 28)), weights, map_geometry(196, 49), 0, colorbar=False)
    texts = [t.get_text() for t in ax.texts]
    assert texts == ([label] if label else []), texts
    plt.close(ax.figure)



def test_overlays_can_share_one_colour_scale():
    """vmin and vmax replace each map's own range, so that panels compared side by side
    (lab 5's far queries) paint the same weight in the same colour."""
    plt = pytest.importorskip("matplotlib.pyplot")
    from nlcourse.viz import attention_overlay, map_geometry
    geometry = map_geometry(196, 49)
    flat, peaked = np.full(49, 1 / 49), np.r_[np.full(48, 0.5 / 48), 0.5]
    own = attention_overlay(np.zeros((28, 28)), flat, geometry, 0, colorbar=False)
    assert own.images[-1].norm.vmin == own.images[-1].norm.vmax == pytest.approx(1 / 49)
    shared = [attention_overlay(np.zeros((28, 28)), w, geometry, 0, colorbar=False,
                                vmin=0.0, vmax=0.5) for w in (flat, peaked)]
    assert all((ax.images[-1].norm.vmin, ax.images[-1].norm.vmax) == (0.0, 0.5)
               for ax in shared)
    for ax in (own, *shared):
        plt.close(ax.figure)

def test_stroke_queries_finds_the_inkiest_cell_for_one_image_or_a_batch():
    from nlcourse import viz

    geometry = viz.map_geometry(196, 49)                              # 14x14 cells of 2 px
    images = torch.zeros(3, 1, 28, 28)
    for b, (r, c) in enumerate([(0, 0), (6, 4), (13, 13)]):
        images[b, 0, 2 * r:2 * r + 2, 2 * c:2 * c + 2] = 1.0
    assert viz.stroke_queries(images[:, 0], geometry).tolist() == [0, 6 * 14 + 4, 13 * 14 + 13]
    assert int(viz.stroke_queries(images[1, 0], geometry)) == 6 * 14 + 4
    with pytest.raises(ValueError, match=r"images must be \(\.\.\., H, W\) with H, W >= 28"):
        viz.stroke_queries(torch.zeros(20, 20), geometry)


@pytest.mark.parametrize("shape", [(196, 49), (49, 9)])
def test_the_interactive_figure_puts_each_key_weight_over_the_pixels_it_covers(shape):
    """The explorer draws keys at their own resolution; read back pixel by pixel it must be the
    painted map (key_weights_on_image), for every query the slider offers."""
    pytest.importorskip("plotly")
    from nlcourse import viz

    rng = np.random.default_rng(0)
    nl_map = rng.random(shape)
    fig = viz.interactive_query_figure(rng.random((28, 28)), nl_map)
    overlay = fig.data[1]
    geometry = viz.map_geometry(*shape)
    steps = fig.layout.sliders[0].steps
    assert len(steps) == shape[0]
    for q in (0, shape[0] // 2, shape[0] - 1):
        z = np.asarray(steps[q].args[0]["z"][0])
        painted = viz.key_weights_on_image(nl_map[q], geometry)
        for row in range(28):
            for col in range(28):
                i = round((27 - row - overlay.y0) / overlay.dy)
                j = round((col - overlay.x0) / overlay.dx)
                inside = 0 <= i < z.shape[0] and 0 <= j < z.shape[1]
                assert inside == (not np.isnan(painted[row, col])), (q, row, col)
                if inside:
                    assert z[i, j] == pytest.approx(painted[row, col], rel=1e-3)


def test_every_map_figure_has_words():
    """The text alternative names where the weight goes; an interactive figure needs one."""
    pytest.importorskip("plotly")
    pytest.importorskip("IPython")
    from nlcourse import viz

    row = np.full(49, 0.5 / 48)
    row[3 * 7 + 5] = 0.5
    text = viz.describe_query_map(row[None], viz.map_geometry(196, 49), 0)
    assert "rows 12-15 and columns 20-23" in text and "hold 54%" in text and "10%" in text
    fig = viz.interactive_query_figure(np.zeros((28, 28)), np.tile(row, (196, 1)))
    html = viz.offline_html(fig, "a map, in words").data
    assert 'aria-label="a map, in words"' in html and "<figcaption>a map, in words" in html
    with pytest.raises(ValueError, match="description must say in words"):
        viz.offline_html(fig, "  ")
