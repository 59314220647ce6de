"""Exercise 11: path length, measured. How many layers must a signal cross before one pixel of
the input can change one pixel of the output? Measured with the input gradient, on stacks of
convolutions (square, wide and dilated kernels) and with a non-local block that is switched on,
or fresh (BN's gamma = 0, so that its long path carries no gradient yet).

The check builds five stacks drawn at random on each run, computes the answer for each with the
gradient (and the convolutions' reach as a cross-check in the tests), and reads a wrong set of
answers through the mistakes learners make: counting from 0, differentiating the whole output
map, swapping row and column, a threshold on the gradient, never trying the last layer, no None
for a pixel out of reach, a formula for 3x3 convolutions instead of a measurement."""

from __future__ import annotations

import math
import random

import torch
from torch import nn

from ..blocks import NonLocalBlock
from ._feedback import (CHECK_RNG, FAILED, NO_RETURN, Feedback, as_number, call, guarded,
                        stub_left)

FROM_ZERO = "depths counted from 0"
ONE_TOO_MANY = "one layer too many"
WHOLE_MAP = "the whole output map differentiated"
SWAPPED = "row and column swapped"
THRESHOLD = "a threshold on the gradient"
LAST_LAYER = "the last layer never tried"
NO_NONE = "no None when no depth reaches dst"
FORMULA = "the 3x3 formula instead of a measurement"
NO_GRAD = "x does not require grad"
GRAPH_FREED = "the graph freed after the first backward pass"


def reference(layers, x, src, dst, *, whole=False):
    """The smallest depth L whose output at ``dst`` has a non-zero gradient with respect to the
    input at ``src`` (any channel, any batch item), or None; and the relative size of that
    gradient at each depth (for the diagnosis)."""
    x = x.detach().clone().requires_grad_()
    h, found, sizes = x, None, []
    for depth, layer in enumerate(layers, 1):
        h = layer(h)
        out = h.sum() if whole else h[:, :, dst[0], dst[1]].sum()
        grad, = torch.autograd.grad(out, x, retain_graph=True)
        at_src = grad[:, :, src[0], src[1]].abs().max().item()
        sizes.append((at_src / max(grad.abs().max().item(), 1e-300), at_src))
        if found is None and at_src > 0:
            found = depth
    return found, sizes


def _convs(n, C, kernel=3, dilations=None, outer=1.0, gen=None):
    """n convolutions C -> C that keep the map's size; ``outer`` scales every tap but the
    centre (small outer taps make the gradient at the edge of the field tiny, not zero)."""
    layers = []
    for i in range(n):
        d = dilations[i % len(dilations)] if dilations else 1
        k = (kernel, kernel) if isinstance(kernel, int) else kernel
        conv = nn.Conv2d(C, C, k, padding=(d * (k[0] // 2), d * (k[1] // 2)), dilation=d)
        with torch.no_grad():
            conv.weight.uniform_(-1, 1, generator=gen).mul_((C * k[0] * k[1]) ** -0.5)
            centre = conv.weight[:, :, k[0] // 2, k[1] // 2].clone()
            conv.weight.mul_(outer)
            conv.weight[:, :, k[0] // 2, k[1] // 2] = centre
            conv.bias.uniform_(-0.1, 0.1, generator=gen)
        layers.append(conv)
    return layers


def _block(C, on: bool):
    block = NonLocalBlock(C, sub_sample=False)
    if on:
        nn.init.ones_(block.W[1].weight)            # gamma = 1: the long path carries gradient
    return block


class Stack:
    """One case: the layers (float64, eval mode), the input, src and dst, and what it shows."""

    def __init__(self, name, layers, x, src, dst, note):
        self.name, self.x, self.src, self.dst, self.note = name, x, src, dst, note
        self.layers = [layer.double().eval() for layer in layers]
        self.answer, self.sizes = reference(self.layers, x, src, dst)
        self.where = (f"for {name} ({len(layers)} layers, x of shape {tuple(x.shape)}, "
                      f"src={src}, dst={dst})")

    def chebyshev(self):
        return max(abs(self.src[0] - self.dst[0]), abs(self.src[1] - self.dst[1]))


def _pixels(rng, H, W, dr, dc):
    """src and dst dr rows and dc columns apart, both inside an H x W map (and inside its
    transpose, so that a row-column swap runs and gives a different answer)."""
    side = min(H, W)
    r0 = rng.randint(0, side - 1 - dr)
    c0 = rng.randint(0, side - 1 - dc)
    if rng.random() < 0.5:
        return (r0, c0), (r0 + dr, c0 + dc)
    return (r0 + dr, c0 + dc), (r0, c0)


def draw_sizes(rng=None) -> dict:
    """The sizes of one run: batch B, channels C, an H x W map (H != W), and the depths and
    distances of the five stacks, all drawn at random (B, C, H, W all different)."""
    rng = rng or CHECK_RNG
    for _ in range(1000):
        s = dict(B=rng.randint(2, 3), C=rng.randint(3, 5), H=rng.randint(15, 19),
                 W=rng.randint(15, 19))
        if len(set(s.values())) == len(s):
            break
    s["square"] = rng.randint(9, 11)              # depth of the 3x3 stack
    s["reach"] = rng.randint(5, s["square"] - 2)  # its Chebyshev distance (reached inside)
    s["wide"] = rng.randint(7, 9)                 # depth of the (3, 5) stack
    s["wide_rows"] = rng.randint(4, s["wide"] - 1)
    s["before"] = rng.randint(2, 3)               # convolutions before the block
    s["after"] = rng.randint(1, 2)                # and after it
    return s


def build(sizes: dict, seed: int = 0) -> list:
    """The five stacks of one run (see :func:`draw_sizes`)."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    B, C, H, W = sizes["B"], sizes["C"], sizes["H"], sizes["W"]

    def x():
        return torch.randn(B, C, H, W, dtype=torch.float64, generator=gen)
    out = []
    # 1. 3x3 convolutions with small outer taps: the gradient at the edge of the field is tiny
    reach = sizes["reach"]
    other = rng.randint(0, reach - 1)
    dr, dc = (reach, other) if rng.random() < 0.5 else (other, reach)
    src, dst = _pixels(rng, H, W, dr, dc)
    out.append(Stack("3x3 convolutions", _convs(sizes["square"], C, outer=0.01, gen=gen), x(), src,
                     dst, "each 3x3 layer reaches one pixel further, with a tiny gradient at the edge"))
    # 2. (3, 5) kernels: one row but two columns per layer, so rows and columns differ
    rows = sizes["wide_rows"]
    cols = rng.randint(rows + 1, min(2 * rows - 1, min(H, W) - 1))
    src, dst = _pixels(rng, H, W, rows, cols)
    out.append(Stack("(3, 5) convolutions", _convs(sizes["wide"], C, kernel=(3, 5), gen=gen),
                     x(), src, dst, "a (3, 5) kernel reaches one row and two columns per layer"))
    # 3. dilated 3x3 convolutions, dilations 1, 2, 4, 8: far in few layers, with gaps
    d = rng.randint(11, min(H, W) - 2)
    src, dst = _pixels(rng, H, W, d, rng.randint(0, 3))
    out.append(Stack("dilated 3x3 convolutions", _convs(6, C, dilations=(1, 2, 4, 8), gen=gen),
                     x(), src, dst, "dilations 1, 2, 4, 8 reach 15 pixels in four layers"))
    # 4. and 5. convolutions, a block, convolutions: switched on, then fresh (gamma = 0)
    before, after = sizes["before"], sizes["after"]
    far = min(H, W) - 1
    for on in (True, False):
        src, dst = _pixels(rng, H, W, far, rng.randint(far - 3, far))
        layers = (_convs(before, C, gen=gen) + [_block(C, on)] + _convs(after, C, gen=gen))
        out.append(Stack(f"a {'switched-on' if on else 'fresh'} non-local block after "
                         f"{before} convolutions", layers, x(), src, dst,
                         "the block reaches every pixel at once" if on else
                         "a fresh block (gamma = 0) passes no gradient on its long path"))
    # 6. 3x3 convolutions exactly as deep as the distance: reached at the last layer only
    depth = rng.randint(5, 8)
    src, dst = _pixels(rng, H, W, depth, rng.randint(0, depth - 1))
    out.append(Stack("3x3 convolutions as deep as the distance", _convs(depth, C, gen=gen), x(),
                     src, dst, "reached at the last layer"))
    return out


def _predict(stack: Stack, mistake: str):
    """What a learner with ``mistake`` answers for ``stack``."""
    right, n = stack.answer, len(stack.layers)
    if mistake == FROM_ZERO:
        return None if right is None else right - 1
    if mistake == WHOLE_MAP:
        return reference(stack.layers, stack.x, stack.src, stack.dst, whole=True)[0]
    if mistake == SWAPPED:
        return reference(stack.layers, stack.x, stack.src[::-1], stack.dst[::-1])[0]
    if mistake == ONE_TOO_MANY:
        return None if right is None else right + 1
    if mistake == LAST_LAYER:
        return None if right == n else right
    if mistake == FORMULA:
        return stack.chebyshev()
    raise ValueError(mistake)


WHY = {
    FROM_ZERO: "depth L counts layers from 1: after the first layer, L = 1 (enumerate(layers, 1))",
    WHOLE_MAP: "differentiate the output at dst only, h[:, :, r, c].sum(): the sum over the whole "
               "map asks whether src reaches ANY output pixel",
    SWAPPED: "pixels are (row, column) and a (B, C, H, W) tensor is indexed [:, :, row, column]",
    ONE_TOO_MANY: "the depth is the number of layers run when the gradient first reaches src: "
                  "return it before running the next layer",
    LAST_LAYER: "try every depth from 1 to len(layers) inclusive: range(1, len(layers) + 1)",
    FORMULA: "a formula for 3x3 convolutions, max(|dr|, |dc|), is the answer only for such a "
             "stack: measure the gradient, whatever the layers",
}


def _describe(value):
    return "None" if value is None else str(value)


def _threshold(stacks, answers) -> bool:
    """Every answer at or after the right depth, and every depth skipped had a gradient at src
    that is non-zero but small (below 1e-2 of the largest, or below 1e-3): a threshold, or a
    rounding, dropped it."""
    skipped = False
    for stack, got in zip(stacks, answers):
        right = stack.answer
        if got == right:
            continue
        if right is None or (got is not None and got < right):
            return False
        stop = len(stack.layers) if got is None else got - 1
        small = stack.sizes[right - 1:stop]
        if not small or not all(0 < rel < 1e-2 or 0 < size < 1e-3 for rel, size in small):
            return False
        skipped = True
    return skipped


@guarded("Exercise 11 (path length)")
def check_path_length(fn) -> Feedback:
    """``fn(layers, x, src, dst) -> L or None``: the smallest depth at which the output at pixel
    ``dst`` depends on the input at pixel ``src`` (a non-zero input gradient), against the same
    measurement done by the check, on six stacks drawn at random."""
    fb = Feedback("Exercise 11 (path length)")
    stacks = build(draw_sizes(), seed=CHECK_RNG.randint(0, 10 ** 6))
    answers = []
    for stack in stacks:
        x = stack.x.clone()
        got = call(fb, fn, list(stack.layers), x, stack.src, stack.dst, where=stack.where)
        if got is FAILED:
            text = fb.lines[-1][1].split(": ", 1)[-1] if fb.lines[-1][1].startswith(
                "this looks like") else fb.lines[-1][1]
            if "does not require grad" in text:
                fb.lines[-1] = (False, f"this looks like {NO_GRAD}: {text}. x arrives without "
                                f"requires_grad: differentiate a copy, x = "
                                f"x.clone().requires_grad_()")
                fb.mistakes[-1:] = [NO_GRAD]
            elif "backward through the graph a second time" in text:
                fb.lines[-1] = (False, f"this looks like {GRAPH_FREED}: {text}. One forward pass"
                                f" serves every depth only with "
                                f"torch.autograd.grad(..., retain_graph=True)")
                fb.mistakes[-1:] = [GRAPH_FREED]
            return fb.report()
        if not torch.equal(x, stack.x):
            fb.bad(f"your function changed x in place {stack.where}: work on a copy",
                   mistake="an input modified in place")
            return fb.report()
        if stack.answer is None and isinstance(got, float) and math.isinf(got):
            fb.bad(f"depth {got} {stack.where}, where no depth reaches dst ({stack.note}): "
                   f"return None, not infinity, when no layer makes the gradient at src non-zero",
                   mistake=NO_NONE)
            return fb.report()
        if got is not None:
            got = as_number(fb, got, "the depth", stack.where, integral=True)
            if got is None:
                return fb.report()
            got = int(got) if math.isfinite(got) else got
        answers.append(got)
    wrong = [k for k, (s, got) in enumerate(zip(stacks, answers)) if got != s.answer]
    if not wrong:
        fb.good(f"the depths match the input gradient's on {len(stacks)} random stacks: "
                + "; ".join(f"{s.name}: {s.note}" for s in stacks))
        return fb.report()
    k = wrong[0]
    stack, got = stacks[k], answers[k]
    head = (f"depth {_describe(got)} {stack.where}, expected {_describe(stack.answer)}")
    if all(a is None for a in answers) and stub_left(fb, fn):
        return fb.report()
    if all(a is None for a in answers):
        fb.bad(f"your function returned None for every stack, though dst is reached in "
               f"{sum(s.answer is not None for s in stacks)} of them: did you forget the "
               f"`return`?", mistake=NO_RETURN)
        return fb.report()
    for mistake in (FROM_ZERO, ONE_TOO_MANY, LAST_LAYER, SWAPPED, WHOLE_MAP, FORMULA):
        if all(_predict(s, mistake) == a for s, a in zip(stacks, answers)):
            fb.bad(f"{head}: {WHY[mistake]}", mistake=mistake)
            return fb.report()
    unreachable = [(s, a) for s, a in zip(stacks, answers) if s.answer is None and a is not None]
    if unreachable and all(a == s.answer for s, a in zip(stacks, answers) if s.answer is not None):
        s, a = unreachable[0]
        fb.bad(f"depth {a} {s.where}, where no depth reaches dst ({s.note}): return None when "
               f"the gradient at src stays exactly zero through every layer", mistake=NO_NONE)
        return fb.report()
    if _threshold(stacks, answers):
        right = stack.answer
        fb.bad(f"{head}: at depth {right} the gradient at src is {stack.sizes[right - 1][1]:.1e}"
               f", {stack.sizes[right - 1][0]:.1e} of the largest: small, but not zero. Depending is a yes or no question: compare "
               f"with 0 exactly (grad != 0), with no threshold", mistake=THRESHOLD)
        return fb.report()
    fb.bad(f"{head} ({stack.note}). Measure: for L = 1, 2, ..., run the first L layers on "
           f"x.clone().requires_grad_(), differentiate the output at dst, and return the first L "
           f"whose gradient at src is not zero; None if none is")
    return fb.report()


__all__ = ["check_path_length", "reference", "build", "draw_sizes", "Stack"]
