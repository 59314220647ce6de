"""Exercise 5: read a trained model's map with numbers: where, how far, how concentrated."""

from __future__ import annotations

import math

import numpy as np

from ..viz import query_centre
from ._feedback import Feedback


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


def check_map_reading(answers: dict, weights, geometry: dict, query: int) -> Feedback:
    """``answers``: {"strongest_key": (row, col), "distance_px": float, "entropy": float}."""
    fb = Feedback("Exercise 5 (reading a map)")
    truth = map_facts(weights, geometry, query)
    missing = {"strongest_key", "distance_px", "entropy"} - set(answers)
    if missing:
        fb.bad(f"answers needs the keys {sorted(missing)}")
        return fb.report()
    key = tuple(int(v) for v in np.ravel(answers["strongest_key"]))
    row, col = truth["strongest_key"]
    if key == (row, col):
        # Success lines name what was right, never the value: the solved page is published.
        fb.good(f"the strongest key is right, as (row, column) of the {geometry['key_grid']}x"
                f"{geometry['key_grid']} key grid")
    elif key == (col, row):
        fb.bad("you gave (column, row): positions flatten row-major, so index j is at "
               "(j // width, j % width)", mistake="row and column swapped")
    elif len(key) == 1 and key[0] == row * geometry["key_grid"] + col:
        fb.bad("that is the flat index; give it as (row, column) on the key grid: divmod(j, width)")
    else:
        fb.bad(f"the strongest key is not at {key}: take the argmax over the query's row of the map")
    dist = float(answers["distance_px"])
    if math.isclose(dist, truth["distance_px"], rel_tol=1e-3, abs_tol=1e-3):
        fb.good("the distance is right: in pixels, from the query's centre to the key's centre")
    elif truth["distance_px"] > 0 and math.isclose(dist * geometry["key_px"], truth["distance_px"],
                                                   rel_tol=1e-2):
        fb.bad(f"that distance is in key cells; one key covers {geometry['key_px']} pixels",
               mistake="distance in cells, not pixels")
    elif truth["distance_px"] > 0 and math.isclose(dist * geometry["cell_px"], truth["distance_px"],
                                                   rel_tol=1e-2):
        fb.bad(f"that distance is in query cells; one query cell covers {geometry['cell_px']} pixels",
               mistake="distance in cells, not pixels")
    else:
        fb.bad("measure from the CENTRE of the query's cell to the CENTRE of the key's cell, in "
               "pixels of the input image (nlcourse.viz.query_centre gives the query's)")
    ent = float(answers["entropy"])
    if math.isclose(ent, truth["entropy"], rel_tol=1e-3, abs_tol=1e-6):
        fb.good(f"the entropy is right, in nats (uniform weights over {geometry['key_grid'] ** 2} "
                f"keys would give {math.log(geometry['key_grid'] ** 2):.3f})")
    elif math.isclose(ent * math.log(2), truth["entropy"], rel_tol=1e-3):
        fb.bad("that entropy is in bits (log base 2); use the natural log, nats",
               mistake="entropy in bits")
    elif math.isclose(-ent, truth["entropy"], rel_tol=1e-3):
        fb.bad("entropy is -sum p log p: your sign is flipped", mistake="entropy sign")
    else:
        fb.bad("entropy is -sum_j w_j log w_j over the query's weights (natural log)")
    return fb.report()
