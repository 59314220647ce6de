"""Cells of an exercise notebook that need an earlier answer: :func:`require` stops such a cell
with one line, not a NameError and its traceback, while the cell that defines the answer has not
run (a student version whose stub is not filled in yet fails once, at the stub)."""

from __future__ import annotations

import sys


class NotReady(Exception):
    """An answer the cell needs is not defined yet. IPython shows its one line and no traceback
    (an exception with ``_render_traceback_`` renders itself)."""

    def _render_traceback_(self):
        return [f"{type(self).__name__}: {self}"]


def require(*names: str, checked: str | None = None) -> None:
    """Stop the calling cell with one line if any of ``names`` is not defined in the notebook, or,
    with ``checked`` (the name of a check's result, e.g. ``"feedback"``), if that check has not
    run or has not passed: a cell that uses the learner's function after its check then says so,
    instead of failing again inside the stub or on a wrong answer."""
    frame = sys._getframe(1)
    scope = {**frame.f_globals, **frame.f_locals}
    missing = [name for name in names if name not in scope]
    if missing:
        listed = ", ".join(f"`{name}`" for name in missing)
        raise NotReady(f"{listed} {'is' if len(missing) == 1 else 'are'} not defined yet: fill in "
                       f"the cell above that defines {'it' if len(missing) == 1 else 'them'}, "
                       f"run it, then run this cell")
    if checked is not None:
        if checked not in scope:
            raise NotReady(f"run the check cell above first (it defines `{checked}`), then this "
                           f"cell")
        if not scope[checked]:
            raise NotReady("this cell uses your answer, and its check above has not passed yet: "
                           "fix the answer, rerun the check, then run this cell")
