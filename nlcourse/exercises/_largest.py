"""Record the largest tensor an operation creates, to tell an algorithm from its shortcut."""

from __future__ import annotations

from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class _Largest(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if hasattr(t, "numel"):
                self.largest = max(self.largest, t.numel())
        return out


def largest_intermediate(fn, *args):
    """Run ``fn(*args)``; return (its result, the element count of the largest tensor created)."""
    with _Largest() as mode:
        out = fn(*args)
    return out, mode.largest
