"""The four pairwise functions as one table: what each f is, what C(x) is, whether the scale
C'^-1/2 may multiply it, and which fast kernel serves it. Every module asks this table rather
than comparing mode names, so a property is stated once (the chapters derive each row: the
Gaussian, embedded Gaussian, dot product and concatenation pages).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PairwiseFunction", "TABLE", "MODES", "SOFTMAX_MODES", "NO_BLOCK", "pairwise_function",
           "check_mode"]


@dataclass(frozen=True)
class PairwiseFunction:
    """One row of the table.

    ``form`` is how f combines a query and a key: ``"exp"`` (exp of their dot product), ``"dot"``
    (the dot product itself) or ``"concat"`` (ReLU of w^T [theta_i; phi_j]). ``embedded``: theta
    and phi are learned 1x1 convolutions (the Gaussian compares x itself). ``softmax``: C(x) is
    the sum of f over the keys, so f / C(x) is a softmax and every row sums to 1; otherwise C(x)
    is M, the number of keys. ``scalable``: ``use_scale`` may multiply theta . phi by C'^-1/2.
    ``kernel``: the function of :mod:`nlcourse.pairwise` that computes y without the N x M
    matrix. ``latex``: f for a figure (matplotlib's math text).
    """

    name: str
    title: str
    form: str
    embedded: bool
    softmax: bool
    scalable: bool
    kernel: str
    latex: str

    @property
    def normaliser(self) -> str:
        """C(x) in words."""
        return "sum_j f(x_i, x_j)" if self.softmax else "M, the number of keys"


TABLE: dict[str, PairwiseFunction] = {row.name: row for row in (
    PairwiseFunction("gaussian", "Gaussian", form="exp", embedded=False, softmax=True,
                     scalable=False, kernel="softmax_attention", latex=r"$e^{x_i^\top x_j}$"),
    PairwiseFunction("embedded_gaussian", "embedded Gaussian", form="exp", embedded=True,
                     softmax=True, scalable=True, kernel="softmax_attention",
                     latex=r"$e^{\theta_i^\top\phi_j}$"),
    PairwiseFunction("dot_product", "dot product", form="dot", embedded=True, softmax=False,
                     scalable=True, kernel="dot_product", latex=r"$\theta_i^\top\phi_j$"),
    PairwiseFunction("concatenation", "concatenation", form="concat", embedded=True,
                     softmax=False, scalable=False, kernel="concatenation",
                     latex=r"ReLU$(w_f^\top[\theta_i;\phi_j])$"),
)}

MODES = tuple(TABLE)
#: The model name of a network without blocks, beside the four f (the labs' baseline).
NO_BLOCK = "none"
SOFTMAX_MODES = tuple(name for name, row in TABLE.items() if row.softmax)


def check_mode(mode, argument: str = "mode", allow_none: bool = False):
    """Return ``mode`` if it names a pairwise function, else raise a ValueError that lists them.
    With ``allow_none`` (a network that may have no blocks), None or ``"none"`` give None."""
    if allow_none and (mode is None or mode == NO_BLOCK):
        return None
    if not isinstance(mode, str) or mode not in TABLE:
        valid = ", ".join(repr(m) for m in MODES) + (f", {NO_BLOCK!r} or None" if allow_none
                                                     else "")
        raise ValueError(f"{argument} must be one of {valid}; got {mode!r}")
    return mode


def pairwise_function(mode, argument: str = "mode") -> PairwiseFunction:
    """The table's row for ``mode`` (checked, with :func:`check_mode`'s message)."""
    return TABLE[check_mode(mode, argument)]
