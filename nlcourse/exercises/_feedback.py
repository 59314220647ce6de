"""The feedback core shared by every exercise check.

A check runs the learner's code on several inputs, compares with the reference, and when the
answer is wrong compares it with each known mistake computed on the same inputs, so that the
feedback can say which mistake it looks like and why it is one. Checks print their report and
return a :class:`Feedback`, which is truthy when everything passed (``assert check(...)`` works).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .. import reference


@dataclass
class Feedback:
    exercise: str
    lines: list = field(default_factory=list)   # (ok: bool, text)
    mistakes: list = field(default_factory=list)  # names of recognised mistakes

    def good(self, text: str) -> None:
        self.lines.append((True, text))

    def bad(self, text: str, mistake: str | None = None) -> None:
        """A failed check; ``mistake`` names the known mistake it was recognised as."""
        if mistake:
            self.mistakes.append(mistake)
            if mistake not in text:
                text = f"this looks like {mistake}. {text[0].upper()}{text[1:]}"
        self.lines.append((False, text))

    def report(self) -> "Feedback":
        """Print the feedback and return it (a check's last step)."""
        print(self)
        return self

    @property
    def ok(self) -> bool:
        return all(passed for passed, _ in self.lines)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        head = f"{self.exercise}: " + ("all checks passed" if self.ok else "not yet")
        return "\n".join([head] + [f"  {'✓' if ok else '✗'} {text}" for ok, text in self.lines])

    def _repr_pretty_(self, printer, cycle):  # IPython shows the report, not a dataclass dump
        printer.text(str(self))


def close(a, b, tol: float = 1e-8) -> bool:
    """Same shape and values (float64 inputs, so a tight tolerance)."""
    return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
            and torch.allclose(a.double(), b.double(), rtol=1e-6, atol=tol))


def call(fb: Feedback, fn, *args):
    """Run the learner's function; an exception becomes feedback instead of a traceback."""
    try:
        return fn(*args)
    except NotImplementedError:
        fb.bad("the function still raises NotImplementedError: replace the stub with your code")
    except Exception as err:  # the learner's bug, reported in words
        fb.bad(f"the function raised {type(err).__name__}: {err}")
    return None


def as_pair(fb: Feedback, out, what: str = "(y, attention)"):
    """Unpack a learner's ``(y, attention)`` return value, or say what was returned instead."""
    if out is None:
        return None
    if not (isinstance(out, tuple) and len(out) == 2):
        fb.bad(f"return a tuple {what}, got {type(out).__name__}")
        return None
    return out


def diagnose(fb: Feedback, answer, expected, known: dict, what: str) -> bool:
    """Compare ``answer`` with ``expected``; on a mismatch name the known mistake it matches.

    ``known`` maps a mistake's name to (its output on the same inputs, the explanation)."""
    if close(answer, expected):
        return True
    for name, (wrong, why) in known.items():
        if wrong is not None and close(answer, wrong):
            fb.bad(f"{what} matches a known mistake, {name}: {why}", mistake=name)
            return False
    if isinstance(answer, torch.Tensor) and answer.shape != expected.shape:
        fb.bad(f"{what} has shape {tuple(answer.shape)}, expected {tuple(expected.shape)}")
    else:
        err = (answer.double() - expected.double()).abs().max().item() if isinstance(
            answer, torch.Tensor) else float("nan")
        fb.bad(f"{what} differs from the reference (largest difference {err:.3g}) and matches no "
               f"mistake this check knows; print a small case next to nlcourse.reference")
    return False


def token_inputs(seed: int, B: int = 2, N: int = 12, M: int = 5, Cp: int = 4, Cg: int = 3):
    """theta (B, N, C'), phi (B, M, C'), g (B, M, Cg) in float64; N != M so transposes show."""
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(B, N, Cp, dtype=torch.float64, generator=gen)
    phi = torch.randn(B, M, Cp, dtype=torch.float64, generator=gen)
    g = torch.randn(B, M, Cg, dtype=torch.float64, generator=gen)
    return theta, phi, g


SHAPES = [dict(B=2, N=12, M=5, Cp=4, Cg=3), dict(B=1, N=9, M=9, Cp=2, Cg=6),
          dict(B=3, N=20, M=6, Cp=8, Cg=8)]


def answers(fb: Feedback, fn, mode: str):
    """For each of :data:`SHAPES`: (shape, (theta, phi, g), the learner's (y, attention), the
    reference's). Stops at the first call that fails or returns no pair: ``fb`` then says why and
    is not ``ok``, which the check tests after its loop."""
    for k, shape in enumerate(SHAPES):
        theta, phi, g = token_inputs(k, **shape)
        out = as_pair(fb, call(fb, fn, theta, phi, g))
        if out is None:
            return
        yield shape, (theta, phi, g), out, reference.nonlocal_op(mode, theta, phi, g)


def diagnose_pair(fb: Feedback, answer, expected, known_maps: dict, known_y: dict,
                  shape: dict) -> bool:
    """A learner's (y, attention) against the reference's: the map first, whose mistakes are the
    telling ones, then y."""
    (y, attention), (y_ref, a_ref) = answer, expected
    return (diagnose(fb, attention, a_ref, known_maps, f"the attention for shape {shape}")
            and diagnose(fb, y, y_ref, known_y, f"y for shape {shape}"))
