"""Exercise 5: read a trained model's map with numbers: where, how far, how concentrated."""

from __future__ import annotations

import math

import numpy as np

from ..viz import query_centre
from ._feedback import NO_RETURN, WRONG_TYPE, Feedback, as_number, guarded


def map_facts(weights, geometry: dict, query: int) -> dict:
    """The answers: the strongest key (row, col) on the key grid, its centre's distance in pixels
    from the query's centre, and the entropy of the weights in nats."""
    weights = np.asarray(weights, dtype=np.float64)
    k, px = geometry["key_grid"], geometry["key_px"]
    row, col = divmod(int(weights.argmax()), k)
    qr, qc = query_centre(query, geometry)
    kr, kc = row * px + (px - 1) / 2, col * px + (px - 1) / 2
    p = weights[weights > 0]
    return {"strongest_key": (row, col), "distance_px": math.hypot(kr - qr, kc - qc),
            "entropy": float(-(p * np.log(p)).sum())}


ROW_COL = "row and column swapped"
FLAT = "a flat index"
CELLS = "distance in cells, not pixels"
BITS = "entropy in bits"
SIGN = "entropy sign"


RTOL = 1e-3   # the tolerance the task states: within 0.1% of the exact value
FEW_DIGITS = "an answer given to too few digits"


def _number(fb: Feedback, answers: dict, key: str, what: str):
    """answers[key] as a float, or None after saying what it is instead."""
    value = answers[key]
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    return as_number(fb, value, f"answers[{key!r}] ({what})", "")


def _digits(value: float) -> int:
    """The significant digits a number was given with (its shortest repr): 2.47 has 3."""
    mantissa = repr(abs(value)).lower().split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa.rstrip("0")) or 1


def _rounded(value: float, truth: float) -> bool:
    """True when ``value`` is ``truth`` rounded or cut to the digits it was given with."""
    n = _digits(value)
    if n >= 6 or truth == 0:
        return False
    step = 10.0 ** (math.floor(math.log10(abs(truth))) - n + 1)
    return any(math.isclose(value, candidate, rel_tol=1e-9, abs_tol=step * 1e-6)
               for candidate in (float(f"{truth:.{n}g}"), math.trunc(truth / step) * step))


def _close(value: float, truth: float, fb: Feedback, what: str) -> bool | None:
    """True when right to the stated tolerance, False (with a message) when right only to the
    digits given, None otherwise."""
    if math.isclose(value, truth, rel_tol=RTOL, abs_tol=1e-6):
        return True
    if _rounded(value, truth):
        fb.bad(f"{what} is right to the {_digits(value)} significant digits you gave, but the "
               f"check needs it within 0.1% of the exact value: give more digits (use the "
               f"unrounded number)", mistake=FEW_DIGITS)
        return False
    return None


def _as_int(v):
    """An int from a Python, NumPy or 0-d tensor integer, or an integer-valued float; else None."""
    if hasattr(v, "numel") and v.numel() == 1:
        v = v.reshape(()).item()
    elif type(v).__module__ == "numpy" and getattr(v, "size", 1) == 1:
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return int(v) if float(v) == int(v) else None


def _key(fb: Feedback, value):
    """answers["strongest_key"] as a tuple of ints, or None after saying why not."""
    if hasattr(value, "tolist") and getattr(value, "ndim", 1) > 0:
        value = value.tolist()
    single = _as_int(value)
    if single is not None:
        return (single,)
    if isinstance(value, (tuple, list)) and len(value) in (1, 2):
        ints = [_as_int(v) for v in value]
        if all(i is not None for i in ints):
            return tuple(ints)
    fb.bad(f"answers['strongest_key'] should be a (row, column) pair of ints on the key grid, "
           f"got {type(value).__name__} {value!r:.60}", mistake=WRONG_TYPE)
    return None


@guarded("Exercise 5 (reading a map)")
def check_map_reading(answers, weights, geometry: dict, query: int) -> Feedback:
    """``answers``: {"strongest_key": (row, col), "distance_px": float, "entropy": float}."""
    fb = Feedback("Exercise 5 (reading a map)")
    truth = map_facts(weights, geometry, query)
    if answers is None:
        fb.bad("answers is None: build a dict {'strongest_key': (row, col), 'distance_px': ..., "
               "'entropy': ...} (did a function forget its return?)", mistake=NO_RETURN)
        return fb.report()
    if not isinstance(answers, dict):
        fb.bad(f"answers should be a dict with the keys 'strongest_key', 'distance_px' and "
               f"'entropy', got a {type(answers).__name__}", mistake=WRONG_TYPE)
        return fb.report()
    missing = {"strongest_key", "distance_px", "entropy"} - set(answers)
    if missing:
        fb.bad(f"answers needs the keys {sorted(missing)}", mistake=WRONG_TYPE)
        return fb.report()
    k = geometry["key_grid"]
    row, col = truth["strongest_key"]
    key = _key(fb, answers["strongest_key"])
    if key is None:
        pass
    elif key == (row, col):
        # Success lines name what was right, never the value: the solved page is published.
        fb.good(f"the strongest key is right, as (row, column) of the {k}x{k} key grid")
    elif key == (col, row):
        fb.bad("you gave (column, row): positions flatten row-major, so index j is at "
               "(j // width, j % width)", mistake=ROW_COL)
    elif len(key) == 1 and key[0] == row * k + col:
        fb.bad("that is the flat index; give it as (row, column) on the key grid: divmod(j, width)",
               mistake=FLAT)
    elif len(key) == 2 and key == divmod(row * k + col, geometry["grid"]):
        fb.bad(f"you divided the flat index by the QUERY grid's width {geometry['grid']}; keys lie "
               f"on the {k}x{k} key grid: divmod(j, {k})", mistake="the query grid's width")
    elif len(key) == 2 and key == (row + 1, col + 1):
        fb.bad("counted from 1: rows and columns start at 0", mistake="counting from 1")
    elif len(key) == 2 and (key[0] * k + key[1]) == int(np.argmin(np.asarray(weights))):
        fb.bad("that is the WEAKEST key: take the argmax", mistake="argmin instead of argmax")
    else:
        fb.bad(f"the strongest key is not at {key}: take the argmax over the query's row of the "
               f"map, then divmod(j, {k})")
    dist = _number(fb, answers, "distance_px", "a distance in pixels")
    d = truth["distance_px"]
    verdict = None if dist is None else _close(dist, d, fb, "the distance")
    if dist is None or verdict is False:
        pass
    elif verdict:
        fb.good("the distance is right: in pixels, from the query's centre to the key's centre")
    elif d > 0 and math.isclose(dist * geometry["key_px"], d, rel_tol=1e-2):
        fb.bad(f"that distance is in key cells; one key covers {geometry['key_px']} pixels",
               mistake=CELLS)
    elif d > 0 and math.isclose(dist * geometry["cell_px"], d, rel_tol=1e-2):
        fb.bad(f"that distance is in query cells; one query cell covers {geometry['cell_px']} "
               f"pixels", mistake=CELLS)
    elif d > 0 and math.isclose(dist, d * d, rel_tol=1e-3):
        fb.bad("that is the squared distance: take the square root (math.hypot)",
               mistake="the squared distance")
    else:
        qr, qc = query_centre(query, geometry)
        px = geometry["key_px"]
        kr, kc = row * px + (px - 1) / 2, col * px + (px - 1) / 2
        corner = math.hypot(row * px - qr, col * px - qc)
        if math.isclose(dist, abs(kr - qr) + abs(kc - qc), rel_tol=1e-3) and not math.isclose(
                dist, d, rel_tol=1e-2):
            fb.bad("that is the city-block distance |dr| + |dc|; use the straight-line distance "
                   "sqrt(dr^2 + dc^2)", mistake="the city-block distance")
        elif math.isclose(dist, corner, rel_tol=1e-3):
            fb.bad("you measured to the key's top-left pixel; measure to its centre, "
                   "r * key_px + (key_px - 1) / 2", mistake="a corner instead of the centre")
        else:
            fb.bad("measure from the CENTRE of the query's cell to the CENTRE of the key's cell, "
                   "in pixels of the input image (nlcourse.viz.query_centre gives the query's)")
    ent = _number(fb, answers, "entropy", "an entropy in nats")
    h = truth["entropy"]
    p = np.asarray(weights, dtype=np.float64)
    verdict = None if ent is None else _close(ent, h, fb, "the entropy")
    if ent is None or verdict is False:
        pass
    elif verdict:
        fb.good(f"the entropy is right, in nats (uniform weights over {k ** 2} keys would give "
                f"{math.log(k ** 2):.3f})")
    elif math.isclose(ent * math.log(2), h, rel_tol=1e-3):
        fb.bad("that entropy is in bits (log base 2); use the natural log, nats", mistake=BITS)
    elif math.isclose(ent * math.log(10), h, rel_tol=1e-3):
        fb.bad("that entropy uses log base 10; use the natural log (nats)",
               mistake="entropy in base 10")
    elif math.isclose(-ent, h, rel_tol=1e-3):
        fb.bad("entropy is -sum p log p: your sign is flipped", mistake=SIGN)
    elif math.isclose(ent, float(-(p * np.log(p + 1e-300)).mean()), rel_tol=1e-3):
        fb.bad("you took the mean of -p log p; entropy is the SUM over the keys",
               mistake="a mean instead of a sum")
    elif math.isclose(ent, float(-np.log(p.max())), rel_tol=1e-3):
        fb.bad("-log of the largest weight is the min-entropy; use -sum_j w_j log w_j",
               mistake="the min-entropy")
    else:
        fb.bad("entropy is -sum_j w_j log w_j over the query's weights (natural log)")
    return fb.report()
