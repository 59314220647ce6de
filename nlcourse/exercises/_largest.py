"""Record the largest tensor an operation creates, to tell an algorithm from its shortcut."""

from __future__ import annotations

from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class Largest(TorchDispatchMode):
    """Inside ``with Largest() as m:``, ``m.largest`` is the element count of the largest tensor
    any operation produced, ``m.shapes`` the shapes of all of them, and ``m.operations`` the
    number of operations run."""

    def __init__(self):
        super().__init__()
        self.largest = 0
        self.operations = 0
        self.shapes = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.operations += 1
        for t in tree_flatten(out)[0]:
            if hasattr(t, "numel"):
                self.largest = max(self.largest, t.numel())
                self.shapes.add(tuple(t.shape))
        return out


def largest_intermediate(fn, *args):
    """Run ``fn(*args)``; return (its result, the element count of the largest tensor created)."""
    with Largest() as mode:
        out = fn(*args)
    return out, mode.largest
