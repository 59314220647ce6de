"""Cheaper non-local blocks: four ways to spend less, each tested against the full block.

- :func:`chunked`: the queries in chunks; exact, and the memory of the N x M matrix becomes
  that of a chunk x M slice.
- :func:`top_k`: each query keeps its k largest scores (the others masked to minus infinity before
  the softmax, so they get exactly zero weight); an approximation.
- :func:`low_rank`: the products theta . phi taken in r < C' dimensions, chosen by an SVD of
  theta's projection (an approximation with a known error bound; exact at r = C').
- :func:`progressive`: blocks frozen as the identity for the first epochs of training, then
  trained (a training schedule, not a different function).

The first two are *ops*: functions ``op(theta, phi, g) -> y`` on the block's projections in
token layout, run through the block with :func:`forward_with`, or trained inside a network as a
:class:`WithOp` module. :func:`make_variant` builds any of them by name, and :func:`swap_blocks`
puts it in place of every block of a network.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as recompute

from . import reference
from ._modes import MODES, PairwiseFunction, pairwise_function
from .blocks import NonLocalBlock
from .pairwise import run_kernel

__all__ = ["forward_with", "chunked", "top_k", "WithOp", "LowRankNonLocal", "low_rank",
           "low_rank_error_bound", "progressive", "VARIANT_OPTIONS", "make_variant", "swap_blocks"]


def forward_with(block: NonLocalBlock, x: Tensor, op, project=None) -> Tensor:
    """z = W y + x with y computed by ``op`` from the block's own theta, phi and g (or from those
    ``project(x)`` returns)."""
    block.check_input(x)
    B, _, *spatial = x.shape
    theta, phi, g = (project or block.project)(x)
    y = op(theta, phi, g)
    y = y.transpose(1, 2).reshape(B, g.shape[-1], *spatial).contiguous()
    return block.W(y) + x


def _modes_where(test) -> str:
    return " and ".join(repr(m) for m in MODES if test(pairwise_function(m)))


def _factorisable(f: PairwiseFunction) -> bool:
    """f depends on theta_i . phi_j through a learned theta (what a low-rank theta can approximate)."""
    return f.embedded and f.form in ("exp", "dot")


def _w_concat(block: NonLocalBlock):
    return None if block.concat_project is None else block.concat_project[0].weight.reshape(-1)


def chunked(block: NonLocalBlock, chunk: int = 1024, checkpoint: bool = True):
    """The formula of ``block``'s mode, ``chunk`` queries at a time: exact, with at most a
    (B, chunk, M) slice of the matrix (and, for the concatenation, of the pairs) alive at once.
    The Gaussian modes normalise with a softmax, which equals the literal exp(.) / sum exp(.)
    but cannot overflow.

    In training, autograd would keep every chunk's slice for the backward pass, which adds up to
    the whole matrix again; with ``checkpoint`` (the default) each chunk is recomputed in the
    backward pass instead (``torch.utils.checkpoint``), so training keeps one slice at a time too,
    for the price of computing the pairwise step twice."""
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive number of queries, got {chunk!r}")
    mode, scale, w = block.mode, block.scale, _w_concat(block)
    softmax = block.f.softmax

    def one(theta, phi, g, *weights):
        if softmax:
            # f / C(x) is a softmax over the keys: take it as one (max-shifted), since the literal
            # exp overflows float32 once a score passes 88, which training soon reaches.
            return torch.softmax(scale * theta @ phi.transpose(1, 2), dim=-1) @ g
        f = reference.pairwise_f(mode, theta, phi, weights[0] if weights else None, scale=scale)
        return (f / reference.normaliser(mode, f)) @ g

    def op(theta, phi, g):
        weights = () if w is None else (w,)
        parts = []
        for start in range(0, theta.shape[1], chunk):
            part = theta[:, start:start + chunk]
            if checkpoint and torch.is_grad_enabled():
                parts.append(recompute(one, part, phi, g, *weights, use_reentrant=False))
            else:
                parts.append(one(part, phi, g, *weights))
        return torch.cat(parts, dim=1)
    return op


def top_k(block: NonLocalBlock, k: int, zero_fill: bool = False):
    """Softmax over each query's k largest scores only (Gaussian and embedded Gaussian).

    The other scores are set to minus infinity, so exp gives them exactly zero weight. With
    ``zero_fill=True`` they are set to 0 instead: the common mistake, kept to show it is wrong
    (exp(0) = 1, so every dropped key still gets weight, more than a typical kept one when the
    scores are negative)."""
    if not block.f.softmax:
        raise ValueError(f"top_k keeps the largest scores of a softmax: it applies to the modes "
                         f"{_modes_where(lambda f: f.softmax)}, not to mode={block.mode!r}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive number of keys, got {k!r}")
    scale = block.scale

    def op(theta, phi, g):
        scores = scale * theta @ phi.transpose(1, 2)                     # (B, N, M)
        kept = torch.topk(scores, min(k, scores.shape[-1]), dim=-1).indices
        mask = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, kept, True)
        dropped = 0.0 if zero_fill else float("-inf")
        return torch.softmax(scores.masked_fill(~mask, dropped), dim=-1) @ g
    return op


class WithOp(nn.Module):
    """``block`` with its pairwise step replaced by ``make_op(block, **options)``, as a module that
    trains: the op is rebuilt at every call, so it always sees the block's current parameters."""

    def __init__(self, block: NonLocalBlock, make_op, **options):
        super().__init__()
        self.block, self.make_op, self.options = block, make_op, options
        make_op(block, **options)  # check the options now, not at the first forward

    def extra_repr(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{self.make_op.__name__}, {options}"

    def forward(self, x: Tensor, return_nl_map: bool = False) -> Tensor:
        """z = W y + x with y from the op; it computes no map (``return_nl_map`` is refused)."""
        if return_nl_map:
            raise ValueError(f"a block with its {self.make_op.__name__} op returns no map: "
                             f"read the maps of the full block instead")
        return forward_with(self.block, x, self.make_op(self.block, **self.options))


def _augmented(conv: nn.Module) -> Tensor:
    """[W b]: the 1x1 convolution as a (C', C + 1) matrix acting on [x; 1]."""
    weight = conv.weight.reshape(conv.out_channels, -1)
    return torch.cat([weight, conv.bias.reshape(-1, 1)], dim=1)


class LowRankNonLocal(nn.Module):
    """``block`` with the products theta_i . phi_j taken in ``rank`` dimensions instead of C'.

    With theta = A [x; 1] (A = [W_theta b_theta], C' x (C + 1)) and its SVD A = U S V^T, let P be
    the first ``rank`` columns of U: theta' = P^T theta = S_r V_r^T [x; 1] is a narrower 1x1
    convolution, and phi' = P^T phi is applied after the keys are pooled (max-pooling does not
    commute with a projection, so it cannot be folded into phi's convolution). Then
    ``|theta'_i . phi'_j - theta_i . phi_j| <= sigma_{r+1}(A) |[x_i; 1]| |phi_j|``: exact at rank C',
    and the N x M products cost N M r instead of N M C'.
    """

    def __init__(self, block: NonLocalBlock, rank: int):
        super().__init__()
        if not _factorisable(block.f):
            raise ValueError(f"low_rank factorises theta . phi: it applies to the modes "
                             f"{_modes_where(_factorisable)}, not to mode={block.mode!r}")
        if not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank!r}")
        self.block = copy.deepcopy(block)
        with torch.no_grad():
            A = _augmented(block.theta)
            U, S, Vh = torch.linalg.svd(A, full_matrices=False)
            r = min(rank, S.numel())
            folded = U[:, :r].T @ A                                         # (r, C + 1)
            self.theta = type(block.theta)(block.in_channels, r, kernel_size=1).to(A)
            self.theta.weight.copy_(folded[:, :-1].reshape(self.theta.weight.shape))
            self.theta.bias.copy_(folded[:, -1])
        del self.block.theta  # replaced by the narrower self.theta: no dead weights to train
        self.register_buffer("P", U[:, :r].detach().clone())
        self.register_buffer("singular_values", S.detach().clone())
        self.rank = r

    def keys(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The full block's phi and g (B, M, C'), keys pooled."""
        block = self.block
        pool = block.pool if block.sub_sample else (lambda t: t)
        return tuple(pool(conv(x)).flatten(2).transpose(1, 2) for conv in (block.phi, block.g))

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        phi, g = self.keys(x)
        return self.theta(x).flatten(2).transpose(1, 2), phi @ self.P, g

    def forward(self, x: Tensor, return_nl_map: bool = False) -> Tensor:
        """z = W y + x with the rank-r products; it computes no map (``return_nl_map`` is
        refused)."""
        if return_nl_map:
            raise ValueError("a low-rank block returns no map: read the maps of the full block")
        f, scale = self.block.f, self.block.scale
        return forward_with(self.block, x, lambda t, p, g: run_kernel(f, t, p, g, scale=scale)[0],
                            project=self.project)


def low_rank(block: NonLocalBlock, rank: int) -> LowRankNonLocal:
    """``block`` with rank-``rank`` pairwise products (:class:`LowRankNonLocal`)."""
    return LowRankNonLocal(block, rank)


def low_rank_error_bound(small: LowRankNonLocal, x: Tensor) -> Tensor:
    """``sigma_{r+1}(A) |[x_i; 1]| |phi_j|`` for every query i and key j of ``x``: (B, N, M). No
    product theta'_i . phi'_j of ``small`` is farther than this from the full block's."""
    with torch.no_grad():
        S = small.singular_values
        sigma = S[small.rank] if small.rank < S.numel() else S.new_zeros(())
        tokens = x.flatten(2)
        norms = torch.cat([tokens, torch.ones_like(tokens[:, :1])], dim=1).norm(dim=1)  # (B, N)
        phi, _ = small.keys(x)
        return sigma * norms.unsqueeze(2) * phi.norm(dim=-1).unsqueeze(1)


class progressive:
    """Keep every non-local block of ``model`` frozen (the identity, as initialised) for the first
    ``warmup_epochs`` epochs, then train it: pass as ``fit(..., epoch_hook=progressive(model, 1))``.

    Frozen parameters get no gradient, so the optimizer leaves them alone (no weight decay either):
    during the warm-up the network is exactly the one without blocks.
    """

    def __init__(self, model: nn.Module, warmup_epochs: int):
        if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be a non-negative integer, got {warmup_epochs!r}")
        self.blocks = [m for m in model.modules() if isinstance(m, NonLocalBlock)]
        if not self.blocks:
            raise ValueError("model has no non-local block to enable progressively")
        self.warmup_epochs = warmup_epochs

    def __call__(self, epoch: int) -> None:
        """Called at the start of each epoch (1-based)."""
        enabled = epoch > self.warmup_epochs
        for block in self.blocks:
            block.requires_grad_(enabled)


# The variants by name, and the option each takes.
VARIANT_OPTIONS = {"chunked": "chunk", "top_k": "k", "low_rank": "rank"}  # name: its option


def make_variant(block: NonLocalBlock, variant: str, **options) -> nn.Module:
    """``block`` as the named variant: ``make_variant(b, "top_k", k=4)``, ``"chunked"``
    (``chunk``) or ``"low_rank"`` (``rank``). Progressive enabling changes training, not the
    block: see :class:`progressive`."""
    if variant not in VARIANT_OPTIONS:
        raise ValueError(f"variant must be one of {', '.join(map(repr, VARIANT_OPTIONS))} "
                         f"(progressive enabling is a training schedule: use progressive(model, epochs)); "
                         f"got {variant!r}")
    if set(options) != {VARIANT_OPTIONS[variant]}:
        raise TypeError(f"variant {variant!r} takes exactly one option, "
                        f"{VARIANT_OPTIONS[variant]}=...; got {sorted(options) or 'none'}")
    if variant == "low_rank":
        return LowRankNonLocal(block, **options)
    return WithOp(block, chunked if variant == "chunked" else top_k, **options)


def swap_blocks(model: nn.Module, make) -> nn.Module:
    """Replace every non-local block of ``model`` by ``make(block)``, in place; returns ``model``.
    For example ``swap_blocks(net, lambda b: make_variant(b, "top_k", k=4))``."""
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, NonLocalBlock)]
    if not targets:
        raise ValueError(f"{type(model).__name__} has no non-local block to replace")
    for name, block in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, make(block))
    return model
