"""The feedback core shared by every exercise check.

A check runs the learner's code on several inputs and compares it with :mod:`nlcourse.reference`.
It is built so that no answer can crash it or fool it:

* a check that compared nothing fails (:attr:`Feedback.ok` needs at least one passed comparison);
* ``None``, wrong types and wrong shapes each get a message that names them;
* the inputs are cloned before the learner's call, the reference is computed on the untouched
  originals, and an input changed in place is reported;
* the tolerance follows the answer's dtype: a right float32 answer passes, with a note;
* an exception in the learner's code comes back as feedback with the last line of its traceback;
* every check runs at two or more sizes drawn at random on each run (batch above one, N != M,
  no two sizes equal), so no size can be copied from the check, plus inputs large enough that an
  exponential without the max subtracted overflows; the inputs require gradients, and the
  gradients of the answer are compared with the reference's too (which catches ``no_grad``,
  NumPy round trips and in-place operations that break the backward pass);
* a wrong answer is compared with each known mistake computed on the same inputs, and then read
  from the structure of its difference with the reference: a constant factor (named when it is a
  size of the problem, such as a forgotten 1/M or a hard-coded 32), a transposed map, a single
  batch item, a non-finite value; an answer that matches nothing still gets where it differs, by
  how much, and at which size.

Checks print their report and return a :class:`Feedback`, truthy when everything passed.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import inspect
import itertools
import math
import os
import random
import re
import textwrap
import traceback
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.overrides import TorchFunctionMode

# Names of the mistakes that every check can recognise (``Feedback.mistakes`` holds them).
NO_RETURN = "a forgotten return"
WRONG_TYPE = "a wrong return type"
NUMPY = "a NumPy array instead of a tensor"
INPLACE_INPUT = "an input modified in place"
DETACHED = "a detached output"
INPLACE_BACKWARD = "an in-place operation that breaks the backward pass"
WRONG_GRADIENT = "wrong gradients"
HARDCODED = "a hard-coded size"
BATCH = "the batch dimension mishandled"
CONSTANT = "a constant factor"
OVERFLOW = "an exponential that overflows"
NOT_FINITE = "NaN or infinite values"
SHAPE = "a wrong shape"
TRANSPOSED = "a transposed map"
AXES = "the axes in the wrong order"
UNREDUCED = "an unreduced tensor"
MATMUL_SHAPES = "mismatched shapes in a matrix product"
STUB = "the stub left in place"
EXCEPTION = "an exception"
ALL_ZERO = "an all-zero output"
EMPTY = "an empty tensor"
INTEGER = "an integer tensor"
NUMBER = "a Python number instead of a tensor"
AUTOGRAD = "autograd used instead of the formulas"
FORBIDDEN = "a call the exercise forbids"


@dataclass
class Feedback:
    exercise: str
    lines: list = field(default_factory=list)     # (ok: bool | None, text); None is a note
    mistakes: list = field(default_factory=list)  # names of recognised mistakes

    def good(self, text: str) -> None:
        self.lines.append((True, text))

    def note(self, text: str) -> None:
        """Information that does not fail the check (a float32 answer, say)."""
        self.lines.append((None, text))

    def bad(self, text: str, mistake: str | None = None) -> None:
        """A failed check; ``mistake`` names the known mistake it was recognised as."""
        if mistake:
            if mistake not in self.mistakes:
                self.mistakes.append(mistake)
            if mistake not in text:
                text = f"this looks like {mistake}: {text}"
        self.lines.append((False, text))

    def report(self) -> "Feedback":
        """Print the feedback and return it (a check's last step)."""
        print(self)
        return self

    @property
    def ok(self) -> bool:
        """True only when at least one comparison passed and none failed: a check that ran no
        comparison (a function returning None, say) is never a pass."""
        return (any(passed is True for passed, _ in self.lines)
                and not any(passed is False for passed, _ in self.lines))

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        head = f"{self.exercise}: " + ("all checks passed" if self.ok else "not yet")
        mark = {True: "✓", False: "✗", None: "·"}
        return "\n".join([head] + [f"  {mark[ok]} {text}" for ok, text in self.lines])

    def _repr_pretty_(self, printer, cycle):  # IPython shows the report, not a dataclass dump
        printer.text(str(self))


# --- running the learner's code ------------------------------------------------------------

class Failed:
    """What :func:`call` returns when the learner's code raised (the feedback says why)."""


FAILED = Failed()


def last_line(err: BaseException) -> str:
    """The last line of the traceback, and the learner's line that raised, in words."""
    text = traceback.format_exception_only(type(err), err)[-1].strip()
    text = text.splitlines()[0] if text else type(err).__name__
    text = text.split(" Hint:")[0]
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if not os.path.abspath(f.filename).startswith(package + os.sep)
              and "/torch/" not in f.filename.replace("\\", "/")]
    if frames and frames[-1].line:
        return f"{text} (in your line `{frames[-1].line.strip()}`)"
    return text


_SHAPE_ERRORS = ("cannot be multiplied", "must match the size", "size mismatch",
                 "is invalid for input of size", "Expected size for first two dimensions",
                 "batch1 and batch2 must", "mismatch in dimension", "operands do not broadcast",
                 "einsum()", "out of range", "out of bounds", "shape mismatch")


def _literal_sizes(err: BaseException) -> list:
    """Integer literals of 3 or more in the learner's line that raised (candidate hard-coded
    sizes; 0, 1 and 2 are dimension indices far more often than sizes)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if not os.path.abspath(f.filename).startswith(package + os.sep)
              and "/torch/" not in f.filename.replace("\\", "/")]
    if not frames or not frames[-1].line:
        return []
    code = re.sub(r"(['\"]).*?\1", "", frames[-1].line)  # not inside strings
    return [int(n) for n in re.findall(r"(?<![\w.])(\d+)(?![\w.])", code) if int(n) >= 3]


def explain_exception(fb: Feedback, err: BaseException, where: str, earlier_ok: bool = False):
    """Report an exception raised by the learner's code, naming what it most likely means."""
    line = last_line(err)
    msg = str(err)
    literals = _literal_sizes(err) if any(s in msg for s in _SHAPE_ERRORS) else []
    if literals and not isinstance(err, NotImplementedError):
        fb.bad(f"your function raised {where}: {line}. That line uses the fixed number "
               f"{literals[0]}: take every size from the tensors' .shape, never from an example",
               mistake=HARDCODED)
    elif isinstance(err, NotImplementedError):
        fb.bad("the function still raises NotImplementedError: replace the stub with your code",
               mistake=STUB)
    elif re.search(r"shape '\[[\d, -]+\]' is invalid for input of size", msg):
        fb.bad(f"a .view/.reshape with fixed numbers failed {where}: {line}. Take every size "
               f"from the tensors' .shape, never from an example", mistake=HARDCODED)
    elif "modified by an inplace operation" in msg or "leaf Variable that requires grad" in msg:
        fb.bad(f"{where}: {line}. An in-place operation (x += ..., x[...] = ..., .div_(), ...) "
               f"overwrote a tensor that autograd needs; use the out-of-place form",
               mistake=INPLACE_BACKWARD)
    elif ("cannot be multiplied" in msg or ("size of tensor a" in msg and "must match" in msg)
          or "Expected size for first two dimensions of batch2" in msg
          or "batch1 and batch2 must" in msg or "mismatch in dimension" in msg
          or "operands do not broadcast" in msg or "einsum()" in msg):
        fb.bad(f"{where}: {line}. Check the shapes of each product: (B, N, C') @ (B, C', M) "
               f"needs phi transposed, and batch matrices multiply with @ or torch.bmm",
               mistake=HARDCODED if earlier_ok else MATMUL_SHAPES)
    elif earlier_ok:
        fb.bad(f"your function worked at the first size but raised {where}: {line}. Does it "
               f"depend on a size from an example?", mistake=HARDCODED)
    else:
        fb.bad(f"your function raised {where}: {line}", mistake=EXCEPTION)


def guarded(exercise: str):
    """Decorate a check so that nothing escapes it: whatever an answer makes go wrong inside the
    check becomes a failed :class:`Feedback` with the last line of the traceback, and the
    learner's random state is left as it was (the check seeds its own generators). The check
    runs on one CPU thread (its tensors are tiny: a thread pool only adds waiting, seconds on a
    busy machine), and the learner's thread count is restored afterwards."""
    def decorate(check):
        @functools.wraps(check)
        def wrapper(*args, **kwargs):
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                with torch.random.fork_rng(devices=[]):
                    try:
                        return check(*args, **kwargs)
                    except (Exception, SystemExit) as err:  # an answer the check did not foresee
                        fb = Feedback(exercise)
                        explain_exception(fb, err, "while the check ran it")
                        return fb.report()
            finally:
                torch.set_num_threads(threads)
        return wrapper
    return decorate


def is_stub(fn) -> bool:
    """True when ``fn``'s body is still a stub: only ``...``, ``pass`` or a raise of
    NotImplementedError (Otter's student notebooks leave ``...`` where the solution was)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return False
    node = tree.body[0] if tree.body else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    body = [b for b in node.body if not (isinstance(b, ast.Expr) and isinstance(
        b.value, ast.Constant) and isinstance(b.value.value, str))]   # the docstring
    return len(body) == 1 and (
        isinstance(body[0], ast.Pass)
        or (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and body[0].value.value is Ellipsis)
        or (isinstance(body[0], ast.Raise) and "NotImplementedError" in ast.dump(body[0])))


def stub_left(fb: Feedback, fn) -> bool:
    """Report a function that is still its stub (True), or nothing (False)."""
    if not is_stub(fn):
        return False
    fb.bad(f"{getattr(fn, '__name__', 'your function')} is still the stub (its body is only "
           f"`...` or `pass`): replace it with your code", mistake=STUB)
    return True


def call(fb: Feedback, fn, *args, where: str = "", earlier_ok: bool = False):
    """Run the learner's function; an exception becomes feedback and returns :data:`FAILED`."""
    try:
        return fn(*args)
    except (Exception, SystemExit) as err:  # the learner's bug, reported in words
        explain_exception(fb, err, where or "when called", earlier_ok)
        return FAILED


# --- tolerances -----------------------------------------------------------------------------

_TOL = {torch.float64: (1e-6, 1e-9), torch.float32: (1e-3, 1e-4),
        torch.float16: (2e-2, 2e-2), torch.bfloat16: (5e-2, 5e-2)}


def tolerance(dtype) -> tuple[float, float]:
    """(relative, absolute as a fraction of the reference's largest value) for an answer's dtype."""
    return _TOL.get(dtype, _TOL[torch.float32])


def close(a, b, dtype=None, floor: float = 0.0) -> bool:
    """Same shape and values, at the tolerance of ``dtype`` (default: ``a``'s own). The absolute
    tolerance is a fraction of the larger of ``b``'s largest value and ``floor``, the size of the
    inputs (a saturated softmax has tiny gradients, computed from terms the size of its inputs)."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        return False
    if a.is_complex() or b.is_complex():
        return False
    rtol, atol = tolerance(dtype or a.dtype)
    a, b = a.detach().double(), b.detach().double()
    if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all())):
        # a known mistake may hold NaN or inf: the same non-finite entries, then the rest close
        if not torch.equal(torch.isfinite(a), torch.isfinite(b)):
            return False
        if not torch.equal(torch.isnan(a), torch.isnan(b)):
            return False
        infinite = torch.isinf(a)
        if not torch.equal(a[infinite], b[infinite]):
            return False
        keep = torch.isfinite(b)
        a, b = a[keep], b[keep]
    scale = max(b.abs().max().item() if b.numel() else 0.0, floor)
    return bool(torch.allclose(a, b, rtol=rtol, atol=atol * max(scale, 1e-12)))


# --- random sizes ---------------------------------------------------------------------------

CHECK_RNG = random.Random(os.environ.get("NLCOURSE_CHECK_SEED"))


def seed(value) -> None:
    """Make the random sizes reproducible (tests); by default each run draws new ones."""
    CHECK_RNG.seed(value)


ROOTED = ("Cp", "d", "C")   # widths whose square root can scale the scores (C'^-1/2, d^-1/2)


def distinct(rng: random.Random, ranges: dict, avoid=(1, 32, 64)) -> dict:
    """Draw one int per name from its (low, high) range, none in ``avoid``, such that every
    quantity a learner could confuse (:func:`confusable`: the sizes, M - 1, N - 1, k + 1) is
    different from every other, and no width of :data:`ROOTED` is a perfect square (a stray
    C'^-1/2 is then never a ratio of two counts, such as M / N)."""
    for _ in range(10000):
        out = {k: rng.randint(lo, hi) for k, (lo, hi) in ranges.items()}
        values = list(confusable(out).values())
        squares = [k for k in ROOTED if k in out and math.isqrt(out[k]) ** 2 == out[k]]
        if len(set(values)) == len(values) and not set(out.values()) & set(avoid) \
                and not squares:
            return out
    raise RuntimeError("could not draw distinct sizes")  # pragma: no cover


def token_sizes(rng: random.Random | None = None) -> list[dict]:
    """Three sizes for the token-layout exercises: N > M, then N < M, then large values (an
    exponential of these scores overflows in float64 unless the max is subtracted). B > 1 and the
    dims pairwise different, so that transposes, wrong axes and hard-coded sizes all show."""
    rng = rng or CHECK_RNG
    s1 = distinct(rng, dict(B=(2, 3), N=(11, 17), M=(5, 8), Cp=(4, 6), Cg=(9, 10)))
    s2 = distinct(rng, dict(B=(4, 5), N=(7, 10), M=(12, 16), Cp=(3, 3), Cg=(6, 6)))
    s3 = distinct(rng, dict(B=(2, 3), N=(18, 24), M=(9, 13), Cp=(6, 8), Cg=(4, 5)))
    s1["scale"], s2["scale"], s3["scale"] = 1.0, 1.0, 12.0
    return [s1, s2, s3]


def describe(size: dict) -> str:
    return ", ".join(f"{'C′' if k == 'Cp' else k}={v}" for k, v in size.items()
                     if k not in ("scale",)) + (" (large values)" if size.get("scale", 1) > 1
                                                else "")


def token_inputs(size: dict, gen_seed: int):
    """theta (B, N, C'), phi (B, M, C'), g (B, M, Cg) in float64, leaves that require grad."""
    gen = torch.Generator().manual_seed(gen_seed)
    B, N, M, Cp, Cg, s = (size[k] for k in ("B", "N", "M", "Cp", "Cg", "scale"))
    theta = torch.randn(B, N, Cp, dtype=torch.float64, generator=gen) * s
    phi = torch.randn(B, M, Cp, dtype=torch.float64, generator=gen) * s
    g = torch.randn(B, M, Cg, dtype=torch.float64, generator=gen)
    return [t.requires_grad_() for t in (theta, phi, g)]


# --- one case: call, validate, compare, diagnose, differentiate -----------------------------

@dataclass
class Case:
    """One run of the learner's function.

    ``args``: what the learner's function receives (tensors cloned from ``leaves``);
    ``watch``: {name: (tensor passed, untouched copy)} to detect in-place changes;
    ``leaves``: tensors (and parameters) whose gradients are compared;
    ``reference``: () -> tuple of expected outputs, computed from the untouched leaves;
    ``known``: () -> {mistake: (tuple of outputs or None, why)} on the same inputs;
    ``factors``: {factor: (mistake, why)}: constant factors that name a mistake;
    ``sizes``: {label: value} used to read a constant factor as a hard-coded size."""
    args: tuple
    watch: dict
    leaves: list
    reference: Callable
    known: Callable = dict
    factors: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)
    where: str = ""
    differentiable: bool = True   # compare the answer's gradients with the reference's
    no_grad_call: bool = False    # call the learner under torch.no_grad() (a backward by hand)
    floor: float = 0.0            # the inputs' scale, a floor for the absolute tolerance
    guard: Callable | None = None  # () -> Guard around the call: what the task forbids
    inspect: Callable | None = None  # (out) -> (mistake, text) or None, before the comparison


def as_outputs(fb: Feedback, out, names: tuple, where: str):
    """The learner's return value as a tuple of tensors, or None after saying what is wrong."""
    want = names[0] if len(names) == 1 else f"a tuple ({', '.join(names)})"
    if out is None:
        fb.bad(f"your function returned None {where}: did you forget the `return` statement? "
               f"Return {want}", mistake=NO_RETURN)
        return None
    items = (out,) if len(names) == 1 else out
    if len(names) > 1:
        if not isinstance(out, (tuple, list)):
            fb.bad(f"return {want}; got a single {type(out).__name__}", mistake=WRONG_TYPE)
            return None
        if len(out) != len(names):
            fb.bad(f"return {want}; got a {type(out).__name__} of {len(out)} items",
                   mistake=WRONG_TYPE)
            return None
    checked = []
    for name, item in zip(names, items):
        if item is None:
            fb.bad(f"{name} is None {where}: did a line forget to `return` or assign it?",
                   mistake=NO_RETURN)
            return None
        if type(item).__module__ == "numpy":
            fb.bad(f"{name} is a NumPy {type(item).__name__} {where}: keep the computation in "
                   f"torch, so that gradients flow", mistake=NUMPY)
            return None
        if isinstance(item, (bool, int, float, complex)):
            fb.bad(f"{name} is a Python {type(item).__name__} ({item!r:.30}) {where}, not a "
                   f"tensor: a .item(), float(...) or a sum over everything turned it into one "
                   f"number. Return the whole tensor", mistake=NUMBER)
            return None
        if not isinstance(item, torch.Tensor):
            fb.bad(f"{name} should be a torch.Tensor, got {type(item).__name__} {where}",
                   mistake=WRONG_TYPE)
            return None
        if item.numel() == 0:
            fb.bad(f"{name} is an empty tensor (shape {tuple(item.shape)}) {where}: a slice or "
                   f"a mask that kept nothing, or torch.empty never filled", mistake=EMPTY)
            return None
        if not item.is_floating_point():
            fb.bad(f"{name} has dtype {item.dtype} {where}, an integer type: it must be a "
                   f"floating-point tensor (a .long(), .int(), argmax or a comparison made it "
                   f"integer; or a tensor built from Python ints)", mistake=INTEGER)
            return None
        checked.append(item)
    return tuple(checked)


def as_number(fb: Feedback, value, what: str, where: str, integral: bool = False):
    """A learner's answer that should be one number, as a float, or None after naming what it is
    instead: None, a bool, a string, a sequence, an empty or a many-element tensor or array, NaN
    or infinity. Python and NumPy numbers and one-element tensors of any dtype are accepted (an
    integer tensor holds an integer). With ``integral``, the number must be a whole one."""
    subject = " ".join(part for part in (what, where) if part)
    if value is None:
        fb.bad(f"your function returned None {where}: did you forget the `return`? Return "
               f"{what}", mistake=NO_RETURN)
        return None
    if hasattr(value, "numel") or type(value).__module__ == "numpy":
        size = int(value.numel()) if hasattr(value, "numel") else int(getattr(value, "size", 1))
        kind = "tensor" if hasattr(value, "numel") else "NumPy array"
        if size == 0:
            fb.bad(f"{subject} is an empty {kind} (shape {tuple(value.shape)}): return one "
                   f"number", mistake=EMPTY)
            return None
        if size > 1:
            fb.bad(f"{subject} is a {kind} of {size} numbers (shape {tuple(value.shape)}): "
                   f"return one number (a sum over the terms?)", mistake=WRONG_TYPE)
            return None
        value = value.reshape(()).item() if hasattr(value, "reshape") else value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        shown = f"{value!r}"[:60]
        extra = (": return the number itself, not text" if isinstance(value, str) else
                 f": return one number, not a {type(value).__name__} of {len(value)} items"
                 if isinstance(value, (tuple, list, dict)) else "")
        fb.bad(f"{subject} should be one number, got {type(value).__name__} {shown}{extra}",
               mistake=WRONG_TYPE)
        return None
    value = float(value) if not isinstance(value, int) else value
    if not math.isfinite(value):
        fb.bad(f"{subject} is {value}: a division by zero or an overflow; it must be a "
               f"finite number", mistake=NOT_FINITE)
        return None
    if integral and value != int(value):
        fb.bad(f"{subject} is {value}, not a whole number", mistake=WRONG_TYPE)
        return None
    return value


def _ratio(answer, expected):
    """(r, relative residual) of the best fit answer ~ r * expected."""
    a, e = answer.detach().double().flatten(), expected.detach().double().flatten()
    den = float(e @ e)
    if den == 0 or not math.isfinite(den) or not bool(torch.isfinite(a).all()):
        return None, math.inf
    r = float(a @ e) / den
    res = float((a - r * e).norm()) / max(float(a.norm()), float((r * e).norm()), 1e-300)
    return r, res


def _permuted(answer, expected, dtype) -> bool:
    """True when some order of ``answer``'s axes gives ``expected``."""
    for order in itertools.permutations(range(answer.dim())):
        if tuple(answer.shape[i] for i in order) == tuple(expected.shape) and close(
                answer.permute(*order), expected, dtype):
            return True
    return False


# The sizes a factor can come from, in the order a check names them: the normaliser first.
ORDER = ("M", "N", "Cp", "Cg", "C", "H", "W", "k", "h", "d", "E", "B")
LABEL = {"Cp": "C'", "Cg": "C_g"}
BATCH_HINT = " (len(t) and t.shape[0] are the batch size: take M from t.shape[1])"


def _primary(sizes: dict) -> list:
    """The sizes of a case as (label, value), in :data:`ORDER` (``scale`` is not a size)."""
    return [(LABEL.get(k, k), sizes[k]) for k in ORDER if k in sizes]


def confusable(sizes: dict) -> dict:
    """Every quantity a learner could put in place of another: the sizes of the case and the
    off-by-one forms of the counts (M - 1 for an unbiased mean, k + 1 for a top-k bound). The
    checks draw sizes that keep these pairwise different (tests/test_exercise_sizes.py), so that
    a mistake gets the same name whatever the draw."""
    out = dict(_primary(sizes))
    for k in ("M", "N"):
        if k in sizes:
            out[f"{k} - 1"] = sizes[k] - 1
    if "k" in sizes:
        out["k + 1"] = sizes["k"] + 1
    return out


def size_swap(r: float, sizes: dict):
    """((meant, value), (used, value)) when ``r`` = meant / used, with meant the case's count of
    keys M (or of positions N, where there is no M) and used another quantity of the case: a
    learner who divided by the wrong size. None otherwise."""
    quantities = confusable(sizes)
    meant = next(((k, sizes[k]) for k in ("M", "N") if k in sizes), None)
    if meant is None:
        return None
    for used, uv in quantities.items():
        if used != meant[0] and uv > 0 and math.isclose(r, meant[1] / uv, rel_tol=1e-9):
            return meant, (used, uv)
    return None


def diagnose_value(fb: Feedback, name: str, answer, expected, case: Case, known_cache: dict,
                   index: int) -> bool:
    """Compare one output with the reference; on a mismatch say which mistake it is."""
    where = case.where
    dtype = answer.dtype
    if answer.shape == expected.shape and close(answer, expected, floor=case.floor):
        return True
    # 1. a known mistake computed on the same inputs (whatever its shape)
    if "known" not in known_cache:
        with torch.no_grad():
            try:
                known_cache["known"] = case.known()
            except Exception:  # a mistake that cannot run on these inputs is simply not offered
                known_cache["known"] = {}
    for mistake, (outputs, why, *named) in known_cache["known"].items():
        if outputs is None:
            continue
        wrong = outputs[index] if isinstance(outputs, tuple) else outputs
        if wrong is not None and close(answer, wrong, dtype, case.floor):
            # an entry may carry the name to record, when several entries are one mistake
            fb.bad(f"{name} {where} matches a known mistake, {mistake}: {why}",
                   mistake=named[0] if named else mistake)
            return False
    # 2. shapes
    shape, ref_shape = tuple(answer.shape), tuple(expected.shape)
    if shape != ref_shape:
        if expected.dim() >= 3 and shape == ref_shape[:-2] + (ref_shape[-1], ref_shape[-2]):
            if close(answer.transpose(-1, -2), expected, dtype):
                fb.bad(f"{name} {where} has shape {shape}, the transpose of {ref_shape}: rows "
                       f"must be the queries and columns the keys", mistake=TRANSPOSED)
            else:
                fb.bad(f"{name} {where} has shape {shape}, expected {ref_shape}: queries and "
                       f"keys swapped", mistake=TRANSPOSED)
        elif shape == ref_shape[1:]:
            fb.bad(f"{name} {where} has shape {shape}, expected {ref_shape}: the batch "
                   f"dimension is missing (did you use batch item 0 only?)", mistake=BATCH)
        elif len(shape) == len(ref_shape) + 1 and shape[:len(ref_shape)] == ref_shape:
            fb.bad(f"{name} {where} has shape {shape}, expected {ref_shape}: a last dimension "
                   f"of {shape[-1]} was never summed over (reduce it, e.g. with @ or .sum(-1))",
                   mistake=UNREDUCED)
        elif sorted(shape) == sorted(ref_shape) and _permuted(answer, expected, dtype):
            fb.bad(f"{name} {where} has shape {shape}, expected {ref_shape}: the right values "
                   f"with the axes in another order (a transpose or permute too many, or one "
                   f"missing)", mistake=AXES)
        elif answer.numel() == expected.numel():
            fb.bad(f"{name} {where} has shape {shape}, expected {ref_shape}: the right number of"
                   f" entries laid out in another shape, as a .view or .reshape with fixed "
                   f"numbers does. Take every size from the tensors' .shape", mistake=HARDCODED)
        else:
            fb.bad(f"{name} {where} has shape {shape}, expected {ref_shape}", mistake=SHAPE)
        return False
    a, e = answer.detach().double(), expected.detach().double()
    # 3. non-finite values, then an output that is zero everywhere
    if not bool(torch.isfinite(a).all()):
        nan, inf = int(torch.isnan(a).sum()), int(torch.isinf(a).sum())
        what = " and ".join(part for part in (f"NaN in {nan}" if nan else "",
                                              f"infinity in {inf}" if inf else "") if part)
        first = tuple(int(i) for i in (~torch.isfinite(a)).nonzero()[0])
        if bool(torch.isfinite(e).all()) and case.sizes.get("scale", 1) > 1:
            fb.bad(f"{name} {where} holds {what} of its {a.numel()} entries (first at index "
                   f"{first}): exp of large scores overflows. Subtract each row's max before the "
                   f"exponential (torch.softmax does this for you)", mistake=OVERFLOW)
        else:
            fb.bad(f"{name} {where} holds {what} of its {a.numel()} entries (first at index "
                   f"{first}), where the reference is finite: a division by zero, a log of 0 or "
                   f"an overflow", mistake=NOT_FINITE)
        return False
    if not bool(a.any()):
        fb.bad(f"{name} {where} is zero everywhere: a tensor made with torch.zeros (or "
               f"zeros_like) and never filled, a product with a zero tensor, or values that "
               f"underflowed", mistake=ALL_ZERO)
        return False
    # 4. the batch: only item 0 right, or item 0 repeated
    if a.dim() >= 2 and a.shape[0] > 1 and close(a[0], e[0], dtype):
        fb.bad(f"{name} {where}: batch item 0 is right but the others are not: use the whole "
               f"batch (a leading dimension B = {a.shape[0]}), not item 0 or a fixed batch size",
               mistake=BATCH)
        return False
    # 5. a constant factor
    r, res = _ratio(a, e)
    if a.dim() == 3 and not (r is not None and res < 1e-6):
        rows = (a * e).sum(-1) / (e * e).sum(-1).clamp_min(1e-300)
        if bool(torch.allclose(a, rows.unsqueeze(-1) * e, rtol=1e-5, atol=1e-9 * max(
                e.abs().max().item(), 1e-12))):
            mistake, why = case.factors.get("rows", (
                "a missing normalisation", "each row is the right one times its own factor: the "
                "normalisation C(x) is missing or wrong"))
            fb.bad(f"{name} {where}: {why} (row factors from {rows.min().item():.3g} to "
                   f"{rows.max().item():.3g})", mistake=mistake)
            return False
    if r is not None and res < 1e-6 and abs(r - 1) > 1e-6 and r != 0:
        for factor, (mistake, why) in case.factors.items():
            if factor != "rows" and math.isclose(r, factor, rel_tol=1e-6):
                fb.bad(f"{name} {where} is {r:.4g} times the reference: {why}", mistake=mistake)
                return False
        swap = size_swap(r, case.sizes)
        if swap is not None:
            meant, used = swap
            fb.bad(f"{name} {where} is {r:.4g} times the reference, as if you divided by "
                   f"{used[0]} = {used[1]} where {meant[0]} = {meant[1]} was meant"
                   f"{BATCH_HINT if used[0] == 'B' else ''}",
                   mistake=f"dividing by {used[0]} where {meant[0]} was meant")
            return False
        for label, value in _primary(case.sizes):
            for k in (value / r, value * r):
                if k >= 1.5 and abs(k - round(k)) < 1e-6 and round(k) != value:
                    fb.bad(f"{name} {where} is {r:.4g} times the reference, as if you divided "
                           f"by {round(k)} where {label} = {value} was meant (or multiplied): a "
                           f"hard-coded size? Take sizes from .shape", mistake=HARDCODED)
                    fb.mistakes.append(CONSTANT)
                    return False
        fb.bad(f"{name} {where} is the reference times a constant factor {r:.4g} (1/{1 / r:.4g})"
               f": check your normalisation and any fixed number", mistake=CONSTANT)
        return False
    # 6. where it differs, by how much
    diff = (a - e).abs()
    flat = int(diff.argmax())
    idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
    scale = e.abs().max().item()
    fb.bad(f"{name} {where} differs from the reference: largest difference {diff.max().item():.3g}"
           f" at index {idx} (yours {a[idx].item():.4g}, expected {e[idx].item():.4g}; the "
           f"reference's largest value is {scale:.3g}); {int((diff > 1e-6 * max(scale, 1)).sum())}"
           f" of {diff.numel()} entries differ. Print a small case next to nlcourse.reference")
    return False


class Guard:
    """Inside ``with Guard(forbidden, autograd=...) as g:``, records what the task forbids:

    * ``forbidden``: {name of a torch function (its qualified name, or the end of it): (mistake,
      why)}, seen through a :class:`~torch.overrides.TorchFunctionMode` (every torch function,
      method and ``torch.nn.functional`` call passes through it);
    * ``autograd=True``: any use of autograd, in any form: a graph built (a tensor saved for the
      backward pass, seen by :func:`torch.autograd.graph.saved_tensors_hooks`),
      ``torch.autograd.grad``, ``.backward()``, ``requires_grad_``, forward-mode dual tensors, and
      ``torch.func`` (whose transforms refuse to run under those hooks);
    * ``calls``: objects whose ``forward`` the guard replaces while it runs (a module the learner
      must not call), {name: (module, mistake, why)}.

    ``g.found`` is the first (mistake, why) seen, or None."""

    AUTOGRAD_CALLS = ("grad", "backward", "requires_grad_", "_make_dual", "vjp", "jvp")

    def __init__(self, forbidden: dict | None = None, autograd: bool = False,
                 calls: dict | None = None):
        self.forbidden, self.autograd, self.calls = forbidden or {}, autograd, calls or {}
        self.found = None
        self._stack = None

    def _see(self, mistake, why):
        if self.found is None:
            self.found = (mistake, why)

    def __enter__(self):
        guard = self

        class Seen(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                name = getattr(func, "__qualname__", getattr(func, "__name__", ""))
                short = name.rsplit(".", 1)[-1]
                if guard.autograd and short in Guard.AUTOGRAD_CALLS:
                    guard._see(AUTOGRAD, f"your function called {name.replace('TensorBase', 'Tensor')}")
                for key, (mistake, why) in guard.forbidden.items():
                    if name == key or short == key:
                        guard._see(mistake, why)
                return func(*args, **(kwargs or {}))

        self._stack = contextlib.ExitStack()
        for label, (module, mistake, why) in self.calls.items():
            original = module.forward

            def spy(*args, _original=original, _mistake=mistake, _why=why, **kwargs):
                self._see(_mistake, _why)
                return _original(*args, **kwargs)
            module.forward = spy
            self._stack.callback(module.__dict__.pop, "forward", None)
        if self.autograd:
            def pack(t):
                self._see(AUTOGRAD, "your function built an autograd graph (a tensor that "
                          "requires grad, under torch.enable_grad())")
                return t
            self._stack.enter_context(torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t))
        self._stack.enter_context(Seen())
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False

    def explain(self, err: BaseException | None = None):
        """(mistake, why) of a forbidden use, the exception ``err`` included, or None."""
        if err is not None and self.autograd and "saved tensor hooks" in str(err):
            self._see(AUTOGRAD, "your function used torch.func (grad, vjp, jacrev, ...)")
        return self.found


def _forbidden(fb: Feedback, guard, where: str, err: BaseException | None = None) -> bool:
    """Report what the guard saw (True), or nothing (False)."""
    found = guard.explain(err) if isinstance(guard, Guard) else None
    if found is None:
        return False
    mistake, why = found
    fb.bad(f"{why} {where}, which this exercise rules out: {GUARD_ADVICE.get(mistake, '')}"
           .rstrip(": "), mistake=mistake)
    return True


GUARD_ADVICE = {AUTOGRAD: "write each gradient with tensor operations (matrix products, sums), "
                          "the way the chapter derives them"}


def run_case(fb: Feedback, fn, case: Case, names: tuple, earlier_ok: bool, measure=None):
    """Run, validate, compare and differentiate one case. True when everything matched.

    ``measure``: a context-manager factory (e.g. the largest-tensor recorder) around the call;
    the case's ``measured`` attribute then holds it."""
    where = case.where
    guard = case.guard() if case.guard is not None else contextlib.nullcontext()
    if measure is not None:
        case.measured = measure()
        try:
            with guard, case.measured:
                out = fn(*case.args)
        except Exception as err:
            if not _forbidden(fb, guard, where, err):
                explain_exception(fb, err, where, earlier_ok)
            return False
    else:
        try:
            with torch.no_grad() if case.no_grad_call else contextlib.nullcontext(), guard:
                out = fn(*case.args)
        except (Exception, SystemExit) as err:  # the learner's bug, reported in words
            if not _forbidden(fb, guard, where, err):
                explain_exception(fb, err, where, earlier_ok)
            return False
    if _forbidden(fb, guard, where):
        return False
    if out is None and stub_left(fb, fn):
        return False
    if case.inspect is not None:
        found = case.inspect(out)
        if found is not None:
            fb.bad(f"{found[1]} {where}", mistake=found[0])
            return False
    outputs = as_outputs(fb, out, names, where)
    if outputs is None:
        return False
    for arg_name, (passed, original) in case.watch.items():
        if passed.shape != original.shape or not torch.equal(passed.detach(), original):
            fb.bad(f"your function changed its input {arg_name} in place {where} (an in-place "
                   f"operation such as {arg_name} /= ..., {arg_name}.mul_(...) or "
                   f"{arg_name}[...] = ...): the caller's tensor is now wrong. Work on a new tensor",
                   mistake=INPLACE_INPUT)
            return False
    expected = case.reference()
    cache = {}
    dtype_noted = False
    order = sorted(range(len(names)),   # the map first: its mistakes are the telling ones
                   key=lambda i: names[i] not in ("attention", "weights"))
    for i in order:
        name, answer, ref = names[i], outputs[i], expected[i]
        if not diagnose_value(fb, name, answer, ref, case, cache, i):
            if earlier_ok and fb.mistakes and fb.mistakes[-1] in (SHAPE, CONSTANT, BATCH):
                fb.mistakes.append(HARDCODED)
                fb.lines[-1] = (False, fb.lines[-1][1] + ". It was right at the first size: a "
                                "size hard-coded from an example?")
            return False
        if answer.dtype != ref.dtype and not dtype_noted and not any(
                "accepted at" in text for _, text in fb.lines):
            dtype_noted = True
            fb.note(f"{name} is {answer.dtype} while the inputs are {ref.dtype}: accepted at "
                    f"{answer.dtype}'s tolerance, but a function should keep its inputs' dtype "
                    f"(no .float() or float32 constants)")
    if not case.differentiable:
        return True
    # gradients: the answer must be differentiable, and its gradients right
    if not all(o.requires_grad for o in outputs):
        off = [n for n, o in zip(names, outputs) if not o.requires_grad]
        fb.bad(f"the values are right {where}, but {', '.join(off)} carries no gradient: it "
               f"was computed under torch.no_grad(), through NumPy, with .detach()/.item(), or "
               f"copied into a new tensor. Training needs the gradient: stay in torch operations",
               mistake=DETACHED)
        return False
    gen = torch.Generator().manual_seed(1234)
    weights = [torch.randn(r.shape, dtype=torch.float64, generator=gen) for r in expected]
    leaves = [t for t in case.leaves if t.requires_grad]
    try:
        loss = sum((o.double() * w).sum() for o, w in zip(outputs, weights))
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    except Exception as err:
        explain_exception(fb, err, f"in the backward pass {where}")
        if not fb.mistakes or fb.mistakes[-1] == EXCEPTION:
            fb.mistakes.append(INPLACE_BACKWARD)
        return False
    ref_loss = sum((r.double() * w).sum() for r, w in zip(expected, weights))
    ref_grads = torch.autograd.grad(ref_loss, leaves, allow_unused=True)
    for leaf, got, want in zip(leaves, grads, ref_grads):
        want = torch.zeros_like(leaf) if want is None else want
        got = torch.zeros_like(leaf) if got is None else got
        if not close(got, want, outputs[0].dtype if outputs[0].dtype != torch.float64 else None,
                     case.floor):
            label = getattr(leaf, "_nl_name", "an input")
            if bool((got == 0).all()):
                fb.bad(f"the values are right {where}, but no gradient reaches {label}: part "
                       f"of the computation was detached (.detach(), .data, torch.no_grad(), "
                       f"NumPy)", mistake=DETACHED)
            else:
                err = (got.double() - want.double()).abs().max().item()
                fb.bad(f"the values are right {where}, but the gradient with respect to {label}"
                       f" differs from the reference's by up to {err:.3g}: an in-place operation"
                       f" or a .data/.detach() somewhere changed what autograd sees",
                       mistake=WRONG_GRADIENT)
            return False
    return True


def name_leaves(**tensors):
    """Give leaves a name for messages about their gradients."""
    for name, t in tensors.items():
        t._nl_name = name
    return list(tensors.values())


def clone_args(leaves: list, names: list):
    """Clones of the leaves for the learner (still in the graph, so gradients flow back) and
    untouched copies to detect in-place changes."""
    passed = [t.clone() for t in leaves]
    watch = {n: (p, t.detach().clone()) for n, p, t in zip(names, passed, leaves)}
    return passed, watch


def run_cases(fb: Feedback, fn, cases, names: tuple, measure=None, after=None) -> bool:
    """Run every case in turn; stop at the first failure. ``after(case)`` may add checks (memory,
    say) and returns False to stop. True when every case passed."""
    passed = 0
    for case in cases:
        if not run_case(fb, fn, case, names, earlier_ok=passed > 0, measure=measure):
            return False
        if after is not None and not after(case):
            return False
        passed += 1
    return passed > 0


def token_case(size: dict, k: int, reference: Callable, known: Callable | None = None,
               factors: Callable | None = None, extra: dict | None = None) -> Case:
    """A :class:`Case` for a function of (theta, phi, g[, extra tensors]) in token layout.

    ``reference(theta, phi, g, *extra)``, ``known(theta, phi, g, *extra)`` and
    ``factors(size)`` receive the untouched leaves (and the size)."""
    theta, phi, g = token_inputs(size, 1000 * k + sum(size[x] for x in ("B", "N", "M")))
    named = dict(theta=theta, phi=phi, g=g, **(extra or {}))
    leaves = name_leaves(**named)
    passed, watch = clone_args(leaves, list(named))
    return Case(args=tuple(passed), watch=watch, leaves=leaves,
                reference=lambda: reference(*leaves),
                known=(lambda: known(*[t.detach() for t in leaves])) if known else dict,
                factors=factors(size) if factors else {},
                sizes=dict(size), floor=size["scale"] if size.get("scale", 1.0) > 1 else 0.0,
                where=f"at size {describe(size)}")
