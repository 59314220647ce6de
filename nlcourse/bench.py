"""The benchmarks: the block's fast path against the literal formula at the sizes below, the
cheaper blocks against the full block, a training step per model, and the shipped networks in
lower precision. They train nothing: each measures with :mod:`nlcourse.cost` and writes one JSON
file with the run record (``python -m nlcourse bench paths|variants|step|precision --out DIR``),
which the complexity and cheaper-blocks chapters read.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import json
import math
import os
import platform
import shutil
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import efficient, reference
from ._modes import MODES, NO_BLOCK, pairwise_function
from .blocks import NonLocalBlock
from .budget import Budget
from .cost import (count_flops, count_operations, matmul_gflops, peak_memory, reference_bytes,
                   time_call)
from .data import load_mnist
from .models import MNISTNet
from .provenance import run_record
from .shipped import pretrained, pretrained_sha256
from .train import make_optimizer, pick_device

__all__ = ["DEFAULT_SHAPES", "TARGETS", "compare_paths", "precision_check", "compare_variants",
           "run_benchmark", "target_verdicts",
           "run_variant_benchmark", "STEP_MODELS", "STEP_BATCHES", "training_step",
           "run_step_benchmark", "compiler_missing", "run_precision_benchmark", "write",
           "PEER_SHAPES", "PEER_ALL_KEYS_MAX", "PEERS", "PEER_TARGETS", "PEER_MIN_SECONDS",
           "mmcv_missing",
           "mmcv_twin", "textbook_forward", "compare_peers", "peer_verdicts",
           "run_peer_benchmark"]

# Four image maps and a short video clip, C = 64: where the literal formula's N x M matrix is
# tiny (16 x 16: 256 queries x 64 keys, where overheads rule), small (32 x 32), large (128 x 128:
# 16,384 queries x 4,096 keys) and three-dimensional.
DEFAULT_SHAPES = ((1, 64, 16, 16), (1, 64, 32, 32), (1, 64, 64, 64), (1, 64, 128, 128),
                  (1, 64, 8, 32, 32))
DEFAULT_REPEATS = 30

#: What the fast path must achieve against the literal formula on a CPU (forward + backward, the
#: median over alternating pairs): (modes, image side, measured field, at least).
TARGETS = (
    (MODES, 16, "speedup", 1.0),   # never slower, down to the smallest map
    (MODES, 32, "speedup", 1.0),
    (MODES, 64, "speedup", 1.0),
    (("concatenation",), 64, "speedup", 20.0),
    (("concatenation",), 64, "memory_ratio", 40.0),
    (("dot_product",), 128, "speedup", 10.0),
    (("gaussian", "embedded_gaussian"), 128, "speedup", 1.5),
    (("gaussian", "embedded_gaussian"), 128, "memory_ratio", 10.0),
)


def target_verdicts(rows) -> list[dict]:
    """Each :data:`TARGETS` line against the rows that measure it (1 x 64 x side x side maps);
    a target with no such row is listed as not measured."""
    verdicts = []
    for modes, side, field, least in TARGETS:
        for mode in modes:
            row = next((r for r in rows if r["mode"] == mode and r["shape"] == [1, 64, side, side]
                        and field in r), None)
            verdicts.append({"mode": mode, "shape": [1, 64, side, side], "field": field,
                             "at_least": least, "measured": row[field] if row else None,
                             "met": bool(row) and row[field] >= least})
    return verdicts


def write(result: dict, out: str | Path, name: str, command: str, data=None) -> Path:
    """``result`` with its run record, as ``out/name.json`` (``data``: the data set it measured
    on, if any)."""
    device = torch.device(result["machine"]["device_type"])
    record = run_record(lab="bench", model=name, budget=None, seed=0, data=data, device=device,
                        precision=result["machine"]["dtype"].replace("torch.", ""),
                        command=command)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps({**record, **result}, indent=2) + "\n")
    return path


def _random_block(mode: str, shape: tuple, device, dtype, seed: int, **options) -> NonLocalBlock:
    """A block for ``shape`` (B, C, *spatial) whose every parameter is drawn from N(0, 0.05): W
    is not zero, so the block adds something and backward reaches every parameter."""
    torch.manual_seed(seed)
    block = NonLocalBlock(shape[1], mode=mode, dimension=len(shape) - 2, **options)
    block = block.to(device, dtype)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.05)
    return block


def _alternate(steps: dict, rounds: int, warmup: int, device,
               runs: int = 1) -> dict[str, list[float]]:
    """Seconds of each of ``steps`` (name: function) in ``rounds`` rounds after ``warmup`` runs of
    each: every round runs each step ``runs`` times, back to back (the time is their mean), the
    order of the steps rotated from one round to the next, so that drift on a shared machine hits
    all of them alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    names = list(steps)
    times = {name: [] for name in names}

    def repeated(step):
        def run():
            for _ in range(runs):
                step()
        return run

    timed = {name: repeated(step) if runs > 1 else step for name, step in steps.items()}
    for i in range(rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            times[name] += [t / runs for t in time_call(timed[name], repeats=1, warmup=0,
                                                        device=device)]
    return times


def _ratio(numerator: list[float], denominator: list[float]) -> tuple[float, list[float] | None]:
    """The median over the rounds of numerator / denominator, taken round by round, and its
    lower and upper quartiles (None below 4 rounds): a burst of load in one round moves neither."""
    ratios = [a / b for a, b in zip(numerator, denominator)]
    if len(ratios) < 4:
        return statistics.median(ratios), None
    low, _, high = statistics.quantiles(ratios, n=4, method="inclusive")
    return statistics.median(ratios), [float(low), float(high)]


# The fast path against the literal formula

def compare_paths(mode: str, shape: tuple, repeats: int = 5, warmup: int = 1,
                  device: str | torch.device | None = None, dtype=torch.float32,
                  memory: bool = True, seed: int = 0) -> dict:
    """Forward+backward of one block through ``reference.block_forward`` and through the block's
    fast path, and peak memory.

    The two are timed in pairs, back to back, the order swapped from one pair to the next, so
    drift on a shared machine hits both alike. ``speedup`` is the median over the pairs of
    reference / fast (with its quartiles), which a burst of load in one pair cannot move;
    ``*_seconds`` are each path's median."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    block = _random_block(mode, shape, device, dtype, seed)
    x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)

    def run(path):
        def step():
            block.zero_grad(set_to_none=True)
            x.grad = None
            z = reference.block_forward(block, x)[0] if path == "reference" else block(x)
            z.sum().backward()
        return step

    paths = {"reference": run("reference"), "fast": run("fast")}
    times = _alternate(paths, repeats, warmup, device)
    result = {"mode": mode, "shape": list(shape), "device": str(device), "dtype": str(dtype),
              "threads": torch.get_num_threads(), "torch_version": torch.__version__,
              "repeats": repeats}
    for name in paths:
        result[f"{name}_seconds"] = statistics.median(times[name])
    result["speedup"], quartiles = _ratio(times["reference"], times["fast"])
    if quartiles is not None:
        result["speedup_quartiles"] = quartiles
    if memory:
        for name, step in paths.items():
            result[f"{name}_peak_bytes"] = peak_memory(step, device)
        result["memory_ratio"] = result["reference_peak_bytes"] / max(result["fast_peak_bytes"], 1)
    return result


def precision_check(shape: tuple = (1, 64, 32, 32), modes=None, device=None,
                    seed: int = 0) -> list[dict]:
    """How far float32 lands from float64, for the block's fast path and the literal formula.

    For every mode: the largest difference of z from the same block run in float64, relative to
    the largest ``|z - x|`` (the part the block adds). On CUDA it is measured twice, with cuDNN's
    TF32 convolutions allowed (PyTorch's default) and forbidden, because the block's four 1x1
    convolutions (theta, phi, g, W) then round their inputs to 10 mantissa bits. The flags are
    restored afterwards.
    """
    device = pick_device(device)
    settings = (True, False) if device.type == "cuda" else (None,)
    saved = torch.backends.cudnn.allow_tf32
    rows = []
    try:
        for mode in modes or MODES:
            # a non-zero W, so that z - x is the whole block's work
            block = _random_block(mode, shape, device, torch.float32, seed)
            x = torch.randn(shape, device=device)
            exact = copy.deepcopy(block).double()
            with torch.no_grad():
                z64 = exact(x.double())
                added = (z64 - x.double()).abs().max().item()
                for tf32 in settings:
                    if tf32 is not None:
                        torch.backends.cudnn.allow_tf32 = tf32
                    fast = block(x).double()
                    literal = reference.block_forward(block, x)[0].double()
                    rows.append({"mode": mode, "shape": list(shape), "device": str(device),
                                 "cudnn_tf32": tf32,
                                 "fast_error": (fast - z64).abs().max().item() / added,
                                 "literal_error": (literal - z64).abs().max().item() / added})
    finally:
        torch.backends.cudnn.allow_tf32 = saved
    return rows


def compare_variants(shape: tuple, chunk: int = 1024, keep: int = 16, rank_divisor: int = 4,
                     repeats: int = 3, warmup: int = 1, device=None, dtype=torch.float32,
                     seed: int = 0) -> list[dict]:
    """Forward+backward of one embedded-Gaussian block on ``shape`` as the block's own fast path
    ("full"), the literal N x M formula ("full, literal"), and the variants of
    :mod:`nlcourse.efficient`: chunked queries (``chunk``), top-k (k = M / ``keep``) and low rank
    (r = C' / ``rank_divisor``). Each row: median seconds, peak bytes, and the largest difference
    of z from the full block's (absolute, and relative to the largest ``|z - x|``, the part the block
    adds), all measured alternately in one process."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    block = _random_block("embedded_gaussian", shape, device, dtype, seed)
    x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
    M = block.project(x)[1].shape[1]
    k, rank = max(1, M // keep), max(1, block.inter_channels // rank_divisor)
    paths = {
        "full": (block, {}),
        "full, literal": (lambda t: reference.block_forward(block, t)[0], {}),
        "chunked": (efficient.make_variant(block, "chunked", chunk=chunk), {"chunk": chunk}),
        "top_k": (efficient.make_variant(block, "top_k", k=k), {"k": k, "keys": M}),
        "low_rank": (efficient.make_variant(block, "low_rank", rank=rank),
                     {"rank": rank, "inter_channels": block.inter_channels}),
    }
    with torch.no_grad():
        z_full = block(x)
        added = (z_full - x).abs().max().item()

    def step(fn):
        def run():
            x.grad = None
            block.zero_grad(set_to_none=True)
            fn(x).sum().backward()
        return run

    steps = {name: step(fn) for name, (fn, _) in paths.items()}
    for run in steps.values():
        for _ in range(warmup):
            run()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, run in steps.items():
            times[name] += time_call(run, repeats=1, warmup=0, device=device)
    rows = []
    for name, (fn, settings) in paths.items():
        with torch.no_grad():
            error = (fn(x) - z_full).abs().max().item()
        rows.append({"variant": name, "shape": list(shape), "settings": settings,
                     "seconds": statistics.median(times[name]),
                     "peak_bytes": peak_memory(steps[name], device),
                     "max_abs_error": error, "relative_error": error / max(added, 1e-30)})
    for row in rows:
        row["time_ratio"] = row["seconds"] / rows[0]["seconds"]
        row["memory_ratio"] = row["peak_bytes"] / max(rows[0]["peak_bytes"], 1)
    return rows


def run_benchmark(shapes=DEFAULT_SHAPES, modes=None, repeats: int = DEFAULT_REPEATS,
                  warmup: int = 2, device=None, max_reference_gib: float = 16.0, dtype=torch.float32,
                  log=print) -> dict:
    """Reference against fast path for every mode and shape: times, ratio, peak memory, FLOPs and
    achieved GFLOP/s, plus the machine (threads, device, torch, matmul rate). Shapes whose literal
    reference would need more than ``max_reference_gib`` are measured on the fast path only, and
    the row says why."""
    modes = tuple(modes or MODES)
    device = pick_device(device)
    machine = _machine(device, dtype)
    if log:
        log(f"{machine['device']}, {machine['threads']} thread(s), torch {machine['torch_version']}: "
            f"float32 matmul {machine['matmul_gflops']:.0f} GFLOP/s")
    rows = []
    for shape in shapes:
        for mode in modes:
            need = reference_bytes(mode, shape) / 2 ** 30
            row = _measure(mode, tuple(shape), repeats, warmup, device, dtype,
                           with_reference=need <= max_reference_gib)
            if need > max_reference_gib:
                row["reference_skipped"] = (f"the literal reference needs about {need:.0f} GiB, "
                                            f"more than --max-reference-gib {max_reference_gib:g}")
            rows.append(row)
            if log:
                log(_describe(row))
    precision = precision_check(modes=modes, device=device)
    if log:
        for row in precision:
            tf32 = "" if row["cudnn_tf32"] is None else f", TF32 convolutions {row['cudnn_tf32']}"
            log(f"{row['mode']:>18} float32 vs float64{tf32}: fast path "
                f"{row['fast_error']:.1e}, literal {row['literal_error']:.1e} (relative)")
    targets = target_verdicts(rows) if device.type == "cpu" and dtype == torch.float32 else []
    if log:
        for t in targets:
            if t["measured"] is not None:
                log(f"target {t['mode']} {t['shape'][2]}x{t['shape'][3]} {t['field']} >= "
                    f"{t['at_least']:g}: {t['measured']:.2f} {'met' if t['met'] else 'NOT MET'}")
    return {"machine": machine, "rows": rows, "float32_error": precision, "targets": targets}


def run_variant_benchmark(shapes=DEFAULT_SHAPES, repeats: int = 3, device=None, log=print,
                          **options) -> dict:
    """:func:`compare_variants` at every shape, with the machine it ran on."""
    device = pick_device(device)
    machine = _machine(device, torch.float32)
    rows = []
    for shape in shapes:
        for row in compare_variants(tuple(shape), repeats=repeats, device=device, **options):
            rows.append(row)
            if log:
                log(f"{'x'.join(map(str, row['shape'])):>14} {row['variant']:>14}: "
                    f"{1e3 * row['seconds']:8.1f} ms ({row['time_ratio']:5.2f}x), "
                    f"{row['peak_bytes'] / 2**20:8.1f} MiB ({row['memory_ratio']:5.2f}x), "
                    f"relative error {row['relative_error']:.1e}")
    return {"machine": machine, "rows": rows}


def _machine(device: torch.device, dtype) -> dict:
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else
        (platform.processor() or platform.machine()),
        "device_type": device.type, "threads": torch.get_num_threads(),
        "torch_version": torch.__version__, "python": platform.python_version(),
        "matmul_gflops": matmul_gflops(device), "dtype": str(dtype),
        # What float32 means on this device: on CUDA these let convolutions or matmuls use TF32.
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _measure(mode, shape, repeats, warmup, device, dtype, with_reference):
    if with_reference:
        row = compare_paths(mode, shape, repeats=repeats, warmup=warmup, device=device,
                            dtype=dtype)
    else:
        row = _fast_only(mode, shape, repeats, warmup, device, dtype)
    row["positions"] = 1
    for s in shape[2:]:
        row["positions"] *= s
    torch.manual_seed(0)
    block = NonLocalBlock(shape[1], mode=mode, dimension=len(shape) - 2).to(device, dtype)
    x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
    row["fast_flops"] = count_flops(lambda: block(x).sum().backward())
    if with_reference:
        row["reference_flops"] = count_flops(
            lambda: reference.block_forward(block, x)[0].sum().backward())
    for path in ("reference", "fast"):
        if f"{path}_flops" in row:
            row[f"{path}_gflops_per_s"] = row[f"{path}_flops"] / row[f"{path}_seconds"] / 1e9
    return row


def _fast_only(mode, shape, repeats, warmup, device, dtype):
    torch.manual_seed(0)
    block = NonLocalBlock(shape[1], mode=mode, dimension=len(shape) - 2).to(device, dtype)
    x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)

    def step():
        block.zero_grad(set_to_none=True)
        block(x).sum().backward()

    return {"mode": mode, "shape": list(shape), "device": str(device), "dtype": str(dtype),
            "threads": torch.get_num_threads(), "torch_version": torch.__version__,
            "fast_seconds": statistics.median(time_call(step, repeats, warmup, device)),
            "fast_peak_bytes": peak_memory(step, device)}


def _describe(row) -> str:
    shape = "x".join(map(str, row["shape"]))
    fast = f"fast {1e3 * row['fast_seconds']:8.1f} ms {row['fast_peak_bytes'] / 2**20:8.1f} MiB"
    if "reference_seconds" not in row:
        return f"{row['mode']:>18} {shape:>14}: {fast}  (reference skipped)"
    return (f"{row['mode']:>18} {shape:>14}: reference {1e3 * row['reference_seconds']:8.1f} ms "
            f"{row['reference_peak_bytes'] / 2**20:8.1f} MiB, {fast}: {row['speedup']:6.1f}x faster, "
            f"{row['memory_ratio']:6.1f}x less memory")


# The block against what a user would pick instead: mmcv's NonLocal2d, the library block most
# users reach for, and the formula as a textbook writes it.

#: The peer benchmark's maps, C = 64 (C' = 32): keys sub-sampled 2 x 2 at every size, and every
#: position a key (no sub-sampling) up to :data:`PEER_ALL_KEYS_MAX` positions; at 128 x 128 the
#: literal concatenation of all 16,384 keys would need about 200 GiB.
PEER_SHAPES = ((1, 64, 16, 16), (1, 64, 32, 32), (1, 64, 64, 64), (1, 64, 128, 128))
PEER_ALL_KEYS_MAX = 64 * 64
#: The peers, as the rows of ``bench peers`` name them.
PEERS = ("mmcv", "formula")
#: What the block must achieve against each peer wherever both were timed: the median over the
#: alternating rounds of the peer's time over the block's at least ``median``, and its lower
#: quartile at least ``lower_quartile`` (so a target is not met by rerunning until the noise
#: agrees), over at least ``rounds`` rounds.
PEER_TARGETS = {"median": 1.0, "lower_quartile": 0.95, "rounds": 30}
#: The shortest a measurement lasts: each round runs each path as many times as it takes.
PEER_MIN_SECONDS = 0.02


def mmcv_missing() -> str | None:
    """Why mmcv's non-local blocks (``pip install mmcv-lite``) cannot be imported here, or None."""
    try:   # by name: an optional test dependency, heavy (mmengine), only for bench peers
        for name in ("mmcv", "mmcv.cnn.bricks.non_local"):
            importlib.import_module(name)
    except Exception as error:  # noqa: BLE001  (a missing or a broken install: either way, say why)
        return f"{type(error).__name__}: {error}"
    return None


def mmcv_twin(block: NonLocalBlock):
    """mmcv's ``NonLocal1d``/``2d``/``3d`` built as ``block`` is (mode, C', sub-sampling, scale,
    BatchNorm or no norm after W) and holding its weights, in its dtype, on its device and in its
    training mode: the same function, computed by mmcv's code.

    mmcv scales theta . phi only in the embedded Gaussian mode, pools with a 2x2 max, and its
    convolution before a norm has no bias; a block that differs raises a ValueError."""
    non_local = importlib.import_module("mmcv.cnn.bricks.non_local")   # as in mmcv_missing

    f = block.f
    norm = block.W[1] if isinstance(block.W, nn.Sequential) else None
    w_conv = block.W[0] if norm is not None else block.W
    differs = [what for what, true in (
        ("W ends with a norm other than BatchNorm", norm is not None and not block.bn_layer),
        ("W's convolution has a bias before the norm", norm is not None and bool(
            w_conv.bias.detach().abs().max() > 0)),
        ("theta . phi is scaled outside the embedded Gaussian", block.use_scale and not (
            f.softmax and f.embedded)),
        ("the keys are average-pooled", block.sub_sample and block.pool_type != "max"),
        ("C' is not C // reduction", block.inter_channels != max(block.in_channels //
                                                                   block.reduction, 1))) if true]
    if differs:
        raise ValueError(f"mmcv's non-local block cannot hold this block: {'; '.join(differs)}")
    kind = {1: non_local.NonLocal1d, 2: non_local.NonLocal2d,
            3: non_local.NonLocal3d}[block.dimension]
    norm_cfg = {"type": {1: "BN1d", 2: "BN", 3: "BN3d"}[block.dimension]} if norm else None
    twin = kind(block.in_channels, sub_sample=block.sub_sample, mode=block.mode,
                use_scale=block.use_scale, reduction=block.reduction, norm_cfg=norm_cfg)
    ours = block.state_dict()
    state = {}
    for name in ("theta", "phi", "g"):
        if getattr(block, name) is None:
            continue
        # with sub-sampling mmcv wraps phi and g as Sequential(ConvModule, max-pool)
        prefix = f"{name}.0.conv" if block.sub_sample and name != "theta" else f"{name}.conv"
        state[f"{prefix}.weight"], state[f"{prefix}.bias"] = ours[f"{name}.weight"], ours[f"{name}.bias"]
    if norm is None:
        state["conv_out.conv.weight"], state["conv_out.conv.bias"] = ours["W.weight"], ours["W.bias"]
    else:
        state["conv_out.conv.weight"] = ours["W.0.weight"]
        for key, value in ours.items():
            if key.startswith("W.1."):
                state[f"conv_out.{twin.conv_out.norm_name}.{key[4:]}"] = value
    if block.concat_project is not None:
        state["concat_project.conv.weight"] = ours["concat_project.0.weight"]
    twin.load_state_dict(state, strict=True)   # every key of each side used
    parameter = next(block.parameters())
    return twin.to(parameter.device, parameter.dtype).train(block.training)


def textbook_forward(block: NonLocalBlock, x: torch.Tensor) -> torch.Tensor:
    """The non-local block as a textbook writes it, with ``block``'s own weights: the peer
    benchmark's literal formula, written here with plain PyTorch operations and none of the
    course's code (neither :mod:`nlcourse.reference` nor the block's forward).

    theta, phi and g are three 1x1 convolutions of the image x (B, C, H, W), phi and g
    max-pooled 2x2 when the block sub-samples (the Gaussian compares x itself). Then the (B, N, M)
    matrix of weights, in one expression per f: ``softmax(theta^T phi * scale)`` over the keys for
    the two Gaussians; ``theta^T phi * scale / M`` for the dot product; for the concatenation
    ``ReLU([theta_i; phi_j] . w) / M`` over the (B, N, M, 2C') tensor of every concatenated pair.
    y = weights g^T, back to (B, C', H, W), and z = BatchNorm(conv(y)) + x, the batch norm
    through ``F.batch_norm`` with the block's statistics and affine parameters (updated in
    training mode, as the block's own). Images only, with the paper's BatchNorm or no norm."""
    if block.dimension != 2 or (isinstance(block.W, nn.Sequential) and not block.bn_layer) or (
            block.sub_sample and block.pool_type != "max"):
        raise ValueError("textbook_forward writes the paper's image block: dimension 2, "
                         "max-pooled keys, BatchNorm or no norm after W")
    f, scale = block.f, block.scale
    B, _, H, W = x.shape

    def conv(module, t):
        return F.conv2d(t, module.weight, module.bias)

    def keys(t):
        return F.max_pool2d(t, 2) if block.sub_sample else t

    theta, phi = (conv(block.theta, x), keys(conv(block.phi, x))) if f.embedded else (x, keys(x))
    g = keys(conv(block.g, x))
    theta, phi, g = theta.flatten(2), phi.flatten(2), g.flatten(2)     # (B, channels, positions)
    M = phi.shape[2]
    if f.form == "concat":
        N, Cp = theta.shape[2], theta.shape[1]
        pairs = torch.cat([theta.transpose(1, 2).unsqueeze(2).expand(B, N, M, Cp),
                           phi.transpose(1, 2).unsqueeze(1).expand(B, N, M, Cp)], dim=-1)
        weights = torch.relu(pairs @ block.concat_project[0].weight.reshape(-1)) / M
    else:
        scores = theta.transpose(1, 2) @ phi * scale
        weights = torch.softmax(scores, dim=-1) if f.softmax else scores / M
    y = (weights @ g.transpose(1, 2)).transpose(1, 2).reshape(B, -1, H, W)
    if not isinstance(block.W, nn.Sequential):
        return conv(block.W, y) + x
    bn = block.W[1]
    momentum = 0.0 if bn.momentum is None else bn.momentum
    return F.batch_norm(conv(block.W[0], y), bn.running_mean, bn.running_var, bn.weight, bn.bias,
                        bn.training, momentum, bn.eps) + x


def compare_peers(mode: str, shape: tuple, sub_sample: bool = True,
                  rounds: int = PEER_TARGETS["rounds"], warmup: int = 2, device=None,
                  max_gib: float = 16.0, seed: int = 0) -> dict:
    """One block (forward + backward) against mmcv's twin of it (:func:`mmcv_twin`) and against
    :func:`textbook_forward`, on one input: time and peak memory.

    The block is the paper's (BatchNorm after W), with every parameter random and W's bias zero
    (mmcv has none), scaled in the embedded Gaussian mode (mmcv's default), in training mode. The
    three compute one function; each row says how far the peers' z land from the block's
    (``max_difference``, relative to the largest ``|z - x|``). The backward pass takes a fixed
    random gradient, as a later layer would send (not ``z.sum()``'s, whose expanded ones no
    network sends). The three run in rounds, the order rotated, each as many times per round as
    lasts :data:`PEER_MIN_SECONDS` (``runs_per_round``); each peer's ``ratio`` is the median over
    the rounds of its time over the block's in the same round, with quartiles. A peer that
    raises is not timed and the row keeps its error and where it was raised; one whose literal
    N x M tensors would need more than ``max_gib`` is skipped."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    f = pairwise_function(mode)
    block = _random_block(mode, shape, device, torch.float32, seed, sub_sample=sub_sample,
                          use_scale=f.softmax and f.embedded)
    with torch.no_grad():
        block.W[0].bias.zero_()
    twin = mmcv_twin(block)
    x = torch.randn(shape, device=device, requires_grad=True)
    upstream = torch.randn(shape, device=device)
    forwards = {"mmcv": twin, "formula": lambda t: textbook_forward(block, t)}
    need = reference_bytes(mode, shape, block.inter_channels, sub_sample) / 2 ** 30
    row = {"mode": mode, "shape": list(shape), "sub_sample": sub_sample,
           "inter_channels": block.inter_channels, "use_scale": block.use_scale,
           "keys": block.project_channels(x)[1].shape[2], "rounds": rounds}
    z_block = block(x)
    z_block.backward(upstream)
    z_block, added = z_block.detach(), (z_block - x).abs().max().item()
    steps = {"block": _peer_step(block, x, upstream, (block, twin))}
    row["block"] = {}
    for name in PEERS:
        if need > max_gib:
            row[name] = {"skipped": f"its N x M tensors need about {need:.0f} GiB, more than "
                                    f"{max_gib:g} GiB"}
            continue
        cell = row[name] = {}
        stage = "forward"
        try:
            z = forwards[name](x)
            cell["max_difference"] = (z.detach() - z_block).abs().max().item() / added
            stage = "backward"
            z.backward(upstream)
        except RuntimeError as error:
            cell.update(error=f"{type(error).__name__}: {' '.join(str(error).split())}",
                        raised_in=stage)
            continue
        steps[name] = _peer_step(forwards[name], x, upstream, (block, twin))
    # Each measurement lasts at least PEER_MIN_SECONDS, as long as the block's runs take (several
    # at the smallest maps, where one run takes a millisecond and one interruption by another
    # process would be its size).
    once = min(time_call(steps["block"], repeats=3, warmup=0, device=device))
    row["runs_per_round"] = max(1, math.ceil(PEER_MIN_SECONDS / once))
    times = _alternate(steps, rounds, warmup, device, row["runs_per_round"])
    for name, step in steps.items():
        cell = row[name]
        cell["seconds"] = statistics.median(times[name])
        cell["peak_bytes"] = peak_memory(step, device)
        if name != "block":
            cell["ratio"], cell["ratio_quartiles"] = _ratio(times[name], times["block"])
            cell["memory_ratio"] = cell["peak_bytes"] / max(row["block"]["peak_bytes"], 1)
    return row


def _peer_step(forward, x, upstream, modules):
    """One forward and backward pass, the gradients of ``x`` and of every parameter of ``modules``
    cleared first (directly: ``zero_grad`` walks the modules in Python on every call, a cost that
    would be added to all three paths alike and dilute their ratios)."""
    parameters = [p for module in modules for p in module.parameters()]

    def step():
        for p in parameters:
            p.grad = None
        x.grad = None
        forward(x).backward(upstream)
    return step


def peer_verdicts(rows, targets=PEER_TARGETS) -> list[dict]:
    """Every cell in which the block and a peer were both timed, against ``targets``
    (:data:`PEER_TARGETS`)."""
    verdicts = []
    for row in rows:
        for peer in PEERS:
            cell = row.get(peer, {})
            if "ratio" not in cell:
                continue
            low = cell["ratio_quartiles"][0] if cell["ratio_quartiles"] else None
            verdicts.append({
                "mode": row["mode"], "shape": row["shape"], "sub_sample": row["sub_sample"],
                "peer": peer, "median": cell["ratio"], "lower_quartile": low,
                "rounds": row["rounds"],
                "met": (cell["ratio"] >= targets["median"] and low is not None
                        and low >= targets["lower_quartile"] and row["rounds"] >= targets["rounds"])})
    return verdicts


def run_peer_benchmark(shapes=PEER_SHAPES, modes=None, rounds: int = PEER_TARGETS["rounds"],
                       warmup: int = 2, device=None, max_gib: float = 16.0, log=print) -> dict:
    """:func:`compare_peers` for every mode and image shape, with keys sub-sampled and, up to
    :data:`PEER_ALL_KEYS_MAX` positions, without; the settings the three share, the machine, and
    each cell's verdict against :data:`PEER_TARGETS`."""
    mmcv = importlib.import_module("mmcv")   # as in mmcv_missing

    modes = tuple(modes or MODES)
    device = pick_device(device)
    result = {"machine": _machine(device, torch.float32), "settings": {
        "mmcv_version": mmcv.__version__,
        "peers": {"mmcv": "mmcv's NonLocal2d holding the block's weights (nlcourse.bench."
                          "mmcv_twin)",
                  "formula": "the textbook formula with the block's weights, plain torch "
                             "operations (nlcourse.bench.textbook_forward)"},
        "block": "NonLocalBlock(C, mode=..., sub_sample=..., use_scale=...), C' = C // 2, "
                 "BatchNorm after W; every parameter drawn from N(0, 0.05), W's convolution "
                 "bias zero (mmcv's has none); training mode",
        "use_scale": "in the embedded Gaussian (mmcv's default), nowhere else",
        "pass": "forward, then backward from a fixed random gradient of z",
        "rounds": rounds, "warmup": warmup, "min_seconds_per_measurement": PEER_MIN_SECONDS,
        "max_gib": max_gib, "targets": PEER_TARGETS}}
    rows = []
    for shape in shapes:
        positions = math.prod(shape[2:])
        for sub_sample in (True, False) if positions <= PEER_ALL_KEYS_MAX else (True,):
            for mode in modes:
                row = compare_peers(mode, tuple(shape), sub_sample, rounds, warmup, device,
                                    max_gib)
                rows.append(row)
                if log:
                    log(_describe_peers(row))
    result["rows"] = rows
    result["targets"] = peer_verdicts(rows)
    if log:
        missed = [v for v in result["targets"] if not v["met"]]
        log(f"{len(result['targets']) - len(missed)} of {len(result['targets'])} cells meet the "
            f"targets (median >= {PEER_TARGETS['median']:g}, lower quartile >= "
            f"{PEER_TARGETS['lower_quartile']:g})" + "".join(
                f"\n  NOT MET: {v['peer']} {v['mode']} {'x'.join(map(str, v['shape']))} "
                f"sub_sample={v['sub_sample']}: {v['median']:.3f} [{v['lower_quartile']:.3f}]"
                for v in missed))
    return result


def _describe_peers(row) -> str:
    where = f"{row['mode']:>18} {'x'.join(map(str, row['shape'])):>13} " \
            f"{'pooled' if row['sub_sample'] else 'all':>6} keys"
    text = f"{where}: block {1e3 * row['block']['seconds']:8.2f} ms"
    for peer in PEERS:
        cell = row[peer]
        if "ratio" in cell:
            text += (f" | {peer} {cell['ratio']:6.2f}x [{cell['ratio_quartiles'][0]:.2f}], "
                     f"memory {cell['memory_ratio']:.2f}x")
        else:
            text += f" | {peer}: {cell.get('skipped') or 'raised in ' + cell['raised_in']}"
    return text


# The step benchmark: whole training steps of the MNIST network, not one block. At batch 128
# (the budgets' batch) and at batch 2, where the arithmetic is negligible and a step costs what
# its operations cost to dispatch: the regime a GPU step of this small network is in.
STEP_MODELS = (NO_BLOCK, *MODES)
STEP_BATCHES = (128, 2)


def training_step(model: str, batch_size: int, device, budget: Budget, seed: int = 0,
                  compiled: bool = False):
    """One training step of MNISTNet for ``model`` (``"none"`` or a pairwise function), as
    :func:`~nlcourse.train.fit` takes it under ``budget`` (its fused optimizer and schedule), on a
    fixed random batch. Returns ``(step, optimizer)``; each ``step()`` call runs one step."""
    torch.manual_seed(seed)
    net = MNISTNet(model).to(device).train()
    opt, sched = make_optimizer(net, budget, 10 ** 9, budget.lr)
    forward = torch.compile(net) if compiled else net
    x = torch.rand(batch_size, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(forward(x), y).backward()
        opt.step()
        if sched is not None:
            sched.step()

    return step, opt


def _wall(step, device) -> float:
    """Seconds of one step, host and device: on a GPU a launch-bound step is host time."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def compiler_missing(device) -> str | None:
    """Why ``torch.compile`` cannot run here, or None: on the CPU its code generator needs a C++
    compiler; on CUDA, Triton."""
    device = torch.device(device)
    if device.type == "cuda":
        return None if importlib.util.find_spec("triton") else "Triton is not installed"
    cxx = os.environ.get("CXX", "g++")
    return None if shutil.which(cxx) else f"no C++ compiler ({cxx!r} is not on PATH)"


def run_step_benchmark(budget: Budget, batch_sizes=STEP_BATCHES, models=STEP_MODELS,
                       repeats: int = 30, warmup: int = 5, device=None, compile: bool = False,
                       log=print) -> dict:
    """Time per training step and operations dispatched per step, for MNISTNet without blocks and
    with each f, at each batch size, each trained as ``budget`` says (the MNIST lab's quick
    budget, from the command line); with ``compile``, the same steps through ``torch.compile`` as
    well (and its compilation time).

    The models are timed in rounds, each round one step of every model in turn (the order rotated
    from round to round); ``ratio`` is the median over the rounds of a step's time over the
    baseline's in the same round, so a burst of load on a shared machine moves no ratio."""
    device = pick_device(device)
    machine = _machine(device, torch.float32)
    missing = compiler_missing(device) if compile else None
    variants = [(m, False) for m in models]
    if compile and missing is None:
        variants += [(m, True) for m in models]
    room = (_recompile_room(4 * len(variants) * len(batch_sizes)) if len(variants) > len(models)
            else contextlib.nullcontext())
    with room:
        rows = _step_rows(budget, batch_sizes, variants, repeats, warmup, device, log)
    result = {"machine": machine, "rows": rows}
    if compile:
        result["compile"] = "measured" if missing is None else f"skipped: {missing}"
    return result


@contextlib.contextmanager
def _recompile_room(needed: int):
    """Each network compiles its forward anew; past dynamo's recompile limit (8 by default) it
    would silently run the rest eagerly, and the benchmark would time eager steps as compiled.
    And compile cold: with inductor's on-disk caches a second run would time a cache read."""
    import torch._dynamo as dynamo             # torch.compile's stack: 1-1.5 s, only when asked
    import torch._inductor.config as inductor  # (as above)

    limit = "recompile_limit" if hasattr(dynamo.config, "recompile_limit") else "cache_size_limit"
    patches = {(dynamo.config, limit): max(getattr(dynamo.config, limit), needed)}
    if hasattr(inductor, "force_disable_caches"):
        patches[inductor, "force_disable_caches"] = True
    saved = {key: getattr(*key) for key in patches}
    for (where, name), value in patches.items():
        setattr(where, name, value)
    try:
        yield
    finally:
        for (where, name), value in saved.items():
            setattr(where, name, value)


def _graphs_compiled() -> int:
    from torch._dynamo.utils import counters   # torch.compile's stack, only when compiling

    return counters["stats"]["unique_graphs"]


def _step_rows(budget, batch_sizes, variants, repeats, warmup, device, log) -> list[dict]:
    rows = []
    for batch in batch_sizes:
        steps, compile_seconds = {}, {}
        for model, compiled in variants:
            step, opt = training_step(model, batch, device, budget, compiled=compiled)
            graphs = _graphs_compiled() if compiled else None
            start = time.perf_counter()
            for _ in range(warmup):   # the first call of a compiled step compiles it
                step()
            if compiled:
                compile_seconds[model] = time.perf_counter() - start
                if _graphs_compiled() == graphs:
                    raise RuntimeError(f"torch.compile compiled no graph for {model} at batch "
                                       f"{batch}: the step would be timed eagerly")
            steps[model, compiled] = (step, opt)
        times = {key: [] for key in steps}
        keys = list(steps)
        for r in range(repeats):
            for key in keys[r % len(keys):] + keys[:r % len(keys)]:
                times[key].append(_wall(steps[key][0], device))
        for (model, compiled), (step, opt) in steps.items():
            base = times[NO_BLOCK, compiled] if (NO_BLOCK, compiled) in times else None
            row = {"model": model, "batch_size": batch, "compiled": compiled,
                   "seconds": statistics.median(times[model, compiled]), "repeats": repeats,
                   "optimizer": type(opt).__name__ + (" (fused)" if opt.defaults.get("fused")
                                                      else "")}
            if base is not None:
                row["ratio"] = statistics.median(t / b for t, b in
                                                 zip(times[model, compiled], base))
            if not compiled:  # a compiled step's kernels are not ATen calls: not comparable
                row["operations"] = count_operations(step)
                row["flops"] = count_flops(step)
                row["us_per_operation"] = 1e6 * row["seconds"] / row["operations"]
                row["gflops_per_s"] = row["flops"] / row["seconds"] / 1e9
            else:
                row["compile_seconds"] = compile_seconds[model]
            rows.append(row)
            if log:
                log(_describe_step(row))
    return rows


def _describe_step(row) -> str:
    what = f"{row['model']:>17}{' compiled' if row['compiled'] else '         '} batch {row['batch_size']:>3}"
    text = f"{what}: {1e3 * row['seconds']:8.2f} ms/step"
    if "ratio" in row:
        text += f" ({row['ratio']:.2f}x the baseline)"
    if "operations" in row:
        text += (f", {row['operations']} operations ({row['us_per_operation']:.0f} us each), "
                 f"{row['gflops_per_s']:.1f} GFLOP/s")
    if "compile_seconds" in row:
        text += f", compiled in {row['compile_seconds']:.0f} s"
    return text


def run_precision_benchmark(models=STEP_MODELS, precisions=("fp32", "bf16", "fp16"), device=None,
                            batch_size: int = 500, data=None, log=print) -> dict:
    """The shipped MNIST networks evaluated under autocast to each precision, on the same weights
    and images: test accuracy, the predictions that change, and how far each block's attention
    maps move from float32's (largest and mean absolute difference of f / C(x), whose entries
    lie in [0, 1] for the softmax modes)."""
    device = pick_device(device)
    data = data if data is not None else load_mnist()  # its description goes in the record
    contexts = {p: nullcontext() if p == "fp32" else
                torch.autocast(device.type, dtype={"bf16": torch.bfloat16,
                                                   "fp16": torch.float16}[p])
                for p in precisions}
    rows = []
    for model in models:
        net = pretrained(model).to(device).eval()
        stats = {p: {"correct": 0, "changed": 0, "map_max": [0.0, 0.0], "map_sum": [0.0, 0.0],
                     "map_count": [0, 0]} for p in precisions}
        largest = [0.0, 0.0]   # the largest |f / C| of float32's maps: the scale of a difference
        with torch.no_grad():
            for start in range(0, len(data.test_labels), batch_size):
                x = data.test_images[start:start + batch_size].to(device)
                y = data.test_labels[start:start + batch_size].to(device)
                out = {}
                for p, ctx in contexts.items():
                    with ctx:
                        logits, maps = net(x, return_nl_maps=True)
                    out[p] = (logits.float().argmax(1), [m.float() for m in maps])
                for k, m in enumerate(out["fp32"][1]):
                    largest[k] = max(largest[k], float(m.abs().max()))
                for p in precisions:
                    pred, maps = out[p]
                    s = stats[p]
                    s["correct"] += int((pred == y).sum())
                    s["changed"] += int((pred != out["fp32"][0]).sum())
                    for k, (m, m32) in enumerate(zip(maps, out["fp32"][1])):
                        diff = (m - m32).abs()
                        s["map_max"][k] = max(s["map_max"][k], float(diff.max()))
                        s["map_sum"][k] += float(diff.sum())
                        s["map_count"][k] += diff.numel()
        n = len(data.test_labels)
        for p in precisions:
            s = stats[p]
            row = {"model": model, "precision": p, "test_accuracy": s["correct"] / n,
                   "predictions_changed": s["changed"]}
            if model != NO_BLOCK:
                row["map_max_abs_diff"] = s["map_max"]
                row["map_mean_abs_diff"] = [t / c for t, c in zip(s["map_sum"], s["map_count"])]
                row["map_max_abs"] = largest
            rows.append(row)
            if log:
                maps_text = ("" if model == NO_BLOCK else
                             ", maps: largest difference from fp32 " + " / ".join(
                                 f"{v:.1e}" for v in row["map_max_abs_diff"]))
                log(f"{model:>17} {p}: accuracy {row['test_accuracy']:.4f}, "
                    f"{row['predictions_changed']} predictions changed{maps_text}")
    return {"machine": _machine(device, torch.float32), "rows": rows,
            "weights_sha256": {m: pretrained_sha256(m) for m in models}}
