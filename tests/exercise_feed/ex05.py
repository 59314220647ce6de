"""Exercise 5, reading a map: answer(weights, geometry, query) -> the answers dict."""

import math

import numpy as np

from nlcourse import viz
from nlcourse.exercises import _feedback as fbk
from nlcourse.exercises.ex05_read_maps import BITS, CELLS, FEW_DIGITS, FLAT, ROW_COL, SIGN


def _right(weights, geometry, query):
    row, col = divmod(int(np.argmax(weights)), geometry["key_grid"])
    px = geometry["key_px"]
    qr, qc = viz.query_centre(query, geometry)
    return {"strongest_key": (row, col),
            "distance_px": math.hypot(row * px + (px - 1) / 2 - qr, col * px + (px - 1) / 2 - qc),
            "entropy": float(-(weights * np.log(weights)).sum())}


def edit(**changes):
    def answer(weights, geometry, query):
        out = _right(weights, geometry, query)
        for key, fn in changes.items():
            out[key] = fn(out, weights, geometry, query)
        return out
    return answer


def swapped(out, w, geo, q):
    return out["strongest_key"][::-1]


def flat(out, w, geo, q):
    return int(np.argmax(w))


def query_grid(out, w, geo, q):
    return divmod(int(np.argmax(w)), geo["grid"])


def from_one(out, w, geo, q):
    return (out["strongest_key"][0] + 1, out["strongest_key"][1] + 1)


def argmin(out, w, geo, q):
    return divmod(int(np.argmin(w)), geo["key_grid"])


def in_key_cells(out, w, geo, q):
    return out["distance_px"] / geo["key_px"]


def in_query_cells(out, w, geo, q):
    return out["distance_px"] / geo["cell_px"]


def squared(out, w, geo, q):
    return out["distance_px"] ** 2


def corner(out, w, geo, q):
    row, col = out["strongest_key"]
    qr, qc = viz.query_centre(q, geo)
    return math.hypot(row * geo["key_px"] - qr, col * geo["key_px"] - qc)


def city_block(out, w, geo, q):
    row, col = out["strongest_key"]
    px = geo["key_px"]
    qr, qc = viz.query_centre(q, geo)
    return abs(row * px + (px - 1) / 2 - qr) + abs(col * px + (px - 1) / 2 - qc)


def bits(out, w, geo, q):
    return float(-(w * np.log2(w)).sum())


def log10(out, w, geo, q):
    return float(-(w * np.log10(w)).sum())


def sign(out, w, geo, q):
    return float((w * np.log(w)).sum())


def mean(out, w, geo, q):
    return float(-(w * np.log(w)).mean())


def min_entropy(out, w, geo, q):
    return float(-np.log(w.max()))


def as_string(out, w, geo, q):
    return f"{out['distance_px']:.2f} px"


def three_digits(out, w, geo, q):
    """Typed from a printout, cut after two decimals."""
    return math.floor(out["entropy"] * 100) / 100


def distance_rounded(out, w, geo, q):
    return round(out["distance_px"], 1)


def entropy_tensor_vector(out, w, geo, q):
    import torch
    return torch.tensor([out["entropy"], out["entropy"]])


WRONG = [
    ("None", lambda w, g, q: None, {fbk.NO_RETURN}),
    ("a tuple", lambda w, g, q: tuple(_right(w, g, q).values()), {fbk.WRONG_TYPE}),
    ("a missing key", lambda w, g, q: {"strongest_key": _right(w, g, q)["strongest_key"]},
     {fbk.WRONG_TYPE}),
    ("(col, row)", edit(strongest_key=swapped), {ROW_COL}),
    ("flat index", edit(strongest_key=flat), {FLAT}),
    ("divmod by the query grid", edit(strongest_key=query_grid), {"the query grid's width"}),
    ("counted from 1", edit(strongest_key=from_one), {"counting from 1"}),
    ("argmin", edit(strongest_key=argmin), {"argmin instead of argmax"}),
    ("distance in key cells", edit(distance_px=in_key_cells), {CELLS}),
    ("distance in query cells", edit(distance_px=in_query_cells), {CELLS}),
    ("squared distance", edit(distance_px=squared), {"the squared distance"}),
    ("to the key's corner", edit(distance_px=corner), {"a corner instead of the centre"}),
    ("city-block distance", edit(distance_px=city_block), {"the city-block distance"}),
    ("entropy in bits", edit(entropy=bits), {BITS}),
    ("entropy in base 10", edit(entropy=log10), {"entropy in base 10"}),
    ("entropy sign", edit(entropy=sign), {SIGN}),
    ("mean instead of sum", edit(entropy=mean), {"a mean instead of a sum"}),
    ("min-entropy", edit(entropy=min_entropy), {"the min-entropy"}),
    ("distance as a string", edit(distance_px=as_string), {fbk.WRONG_TYPE}),
    ("key as None", edit(strongest_key=lambda *a: None), {fbk.WRONG_TYPE}),
    ("entropy cut to 3 digits", edit(entropy=three_digits), {FEW_DIGITS}),
    ("distance to 1 decimal", edit(distance_px=distance_rounded), {FEW_DIGITS}),
    ("entropy as a 2-vector", edit(entropy=entropy_tensor_vector), {fbk.WRONG_TYPE}),
]


def right_numpy_types(weights, geometry, query):
    out = _right(weights, geometry, query)
    return {"strongest_key": np.array(out["strongest_key"]),
            "distance_px": np.float32(out["distance_px"]),
            "entropy": np.float64(out["entropy"])}


def right_unravel(weights, geometry, query):
    k = geometry["key_grid"]
    row, col = np.unravel_index(np.argmax(weights), (k, k))
    out = _right(weights, geometry, query)
    out["strongest_key"] = [int(row), int(col)]
    out["entropy"] = float(-np.sum(weights * np.log(np.clip(weights, 1e-300, None))))
    return out


def right_scipy_style(weights, geometry, query):
    out = _right(weights, geometry, query)
    p = np.asarray(weights) / np.sum(weights)
    out["entropy"] = float(-np.nansum(p * np.log(p)))
    return out


def right_torch(weights, geometry, query):
    import torch
    w = torch.as_tensor(weights)
    k = geometry["key_grid"]
    j = w.argmax()
    out = _right(weights, geometry, query)
    out["strongest_key"] = (j // k, j % k)                       # a tuple of 0-d tensors
    out["entropy"] = -(w * w.log()).sum()                        # a 0-d tensor
    return out


def right_float_key(weights, geometry, query):
    out = _right(weights, geometry, query)
    out["strongest_key"] = tuple(float(v) for v in out["strongest_key"])   # 5.0, 1.0
    return out


RIGHT = [("the solution", _right), ("NumPy types", right_numpy_types),
         ("unravel_index", right_unravel), ("normalised first", right_scipy_style),
         ("torch, 0-d tensors", right_torch), ("integer-valued floats", right_float_key)]
