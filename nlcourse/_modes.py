"""The four pairwise functions by name, and the one error message for any other name."""

MODES = ("gaussian", "embedded_gaussian", "dot_product", "concatenation")
SOFTMAX_MODES = ("gaussian", "embedded_gaussian")


def check_mode(mode, argument: str = "mode", allow_none: bool = False):
    """Return ``mode`` if it names a pairwise function, else raise a ValueError that lists them."""
    if allow_none and mode is None:
        return None
    if not isinstance(mode, str) or mode not in MODES:
        valid = ", ".join(repr(m) for m in MODES) + (" or None" if allow_none else "")
        raise ValueError(f"{argument} must be one of {valid}; got {mode!r}")
    return mode
