"""Non-local means (Buades, Coll and Morel, CVPR 2005), the denoiser the non-local operation comes
from, written as that operation.

NL-means replaces each pixel by an average of all pixels, weighted by how alike the patches around
the two pixels are: with x_i the ``patch`` x ``patch`` patch around pixel i (divided by ``patch``,
so that a squared distance is a mean over the patch) and v_j the noisy pixel j,

    y_i = sum_j w_ij v_j,   w_ij = exp(-‖x_i - x_j‖^2 / h^2) / sum_k exp(-‖x_i - x_k‖^2 / h^2).

Since ‖x_i - x_j‖^2 = ‖x_i‖^2 - 2 x_i . x_j + ‖x_j‖^2 and the factor exp(-‖x_i‖^2 / h^2) cancels
in the row's sum, w_ij = softmax_j((x_i . x_j - ‖x_j‖^2 / 2) / T) with the temperature
T = h^2 / 2: the course's Gaussian f, the exponential of a dot product divided by the row's sum,
on the patches, with one term per key (its squared length) that the dot product carries when the
query is given a constant 1 and the key -‖x_j‖^2 / 2 (:func:`query_key_features`); g is the
identity on the centre pixel. :func:`nl_means` computes it with the package's softmax kernel,
:func:`nl_means_reference` with :mod:`nlcourse.reference`, :func:`nl_means_block` builds the
:class:`~nlcourse.NonLocalBlock` that computes it, and :func:`nl_means_literal` is the double loop
the tests hold the three to. :class:`NLMeansNet` makes theta and phi learned: the embedded
Gaussian. The chapter "The non-local operation" and labs 1 and 3 use them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import pairwise, reference
from .blocks import NonLocalBlock

__all__ = ["patches", "query_key_features", "block_features", "nl_means", "nl_means_weights",
           "nl_means_reference", "nl_means_literal", "nl_means_block", "gaussian_blur", "psnr",
           "best_h", "grey_sample_image", "NLMeansNet", "INITS"]


def _check_image(image, argument: str = "image") -> Tensor:
    if not isinstance(image, Tensor) or image.dim() != 4 or image.shape[1] != 1:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"{argument} must be grey images shaped (B, 1, H, W), got {shape}")
    return image


def _check_patch(patch) -> int:
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1 or patch % 2 == 0:
        raise ValueError(f"patch must be an odd whole number of pixels (1, 3, 5, ...), got "
                         f"{patch!r}")
    return patch


def _check_h(h) -> float:
    if isinstance(h, bool) or not isinstance(h, (int, float)) or not h > 0 or math.isinf(h):
        raise ValueError(f"h must be a positive number (the bandwidth, in grey levels), got {h!r}")
    return float(h)


def patches(image: Tensor, patch: int = 5) -> Tensor:
    """x_i for every pixel: the ``patch`` x ``patch`` patch around it (the image mirrored at its
    borders), divided by ``patch``, so that ‖x_i - x_j‖^2 is the mean squared difference of the
    two patches. (B, N, patch^2) in token layout, pixels in row-major order."""
    image, patch = _check_image(image), _check_patch(patch)
    r = patch // 2
    padded = F.pad(image, (r, r, r, r), mode="reflect") if r else image
    return F.unfold(padded, patch).transpose(1, 2) / patch


def query_key_features(image: Tensor, patch: int = 5) -> tuple[Tensor, Tensor]:
    """The queries [x_i, 1] and the keys [x_j, -‖x_j‖^2 / 2], (B, N, patch^2 + 1) each: their
    dot product is x_i . x_j - ‖x_j‖^2 / 2, which a softmax with temperature h^2 / 2 turns into
    the NL-means weights."""
    x = patches(image, patch)
    ones = torch.ones_like(x[..., :1])
    return torch.cat([x, ones], -1), torch.cat([x, -0.5 * (x * x).sum(-1, keepdim=True)], -1)


def block_features(image: Tensor, patch: int = 5) -> Tensor:
    """The input of :func:`nl_means_block` and :class:`NLMeansNet`: the patches and their squared
    length as channels, (B, patch^2 + 1, H, W); theta and phi are then 1x1 convolutions of it."""
    x = patches(image, patch)
    B, _, H, W = image.shape
    return torch.cat([x, (x * x).sum(-1, keepdim=True)], -1).transpose(1, 2).reshape(B, -1, H, W)


def _values(image: Tensor) -> Tensor:
    return image.flatten(2).transpose(1, 2)          # g: the pixel itself, (B, N, 1)


def nl_means(image: Tensor, h: float, patch: int = 5) -> Tensor:
    """The image denoised by non-local means over all its pixels, (B, 1, H, W): the softmax
    kernel of :mod:`nlcourse.pairwise` with the queries and keys of :func:`query_key_features`
    and the scale 2 / h^2."""
    h = _check_h(h)
    q, k = query_key_features(image, patch)
    y, _ = pairwise.softmax_attention(q, k, _values(image), scale=2 / h ** 2)
    return y.transpose(1, 2).reshape(image.shape)


def nl_means_weights(image: Tensor, h: float, patch: int = 5) -> Tensor:
    """The weights w_ij, (B, N, N): row i is pixel i's weight on every pixel j (each row sums
    to 1). Reshape a row to (H, W) to see one pixel's weights over the image."""
    h = _check_h(h)
    q, k = query_key_features(image, patch)
    return torch.softmax(2 / h ** 2 * q @ k.transpose(1, 2), dim=-1)


def nl_means_reference(image: Tensor, h: float, patch: int = 5) -> Tensor:
    """:func:`nl_means` by :func:`nlcourse.reference.nonlocal_op`: the Gaussian f = exp(scale
    theta . phi), divided by its row's sum, times g, written out."""
    h = _check_h(h)
    q, k = query_key_features(image, patch)
    y, _ = reference.nonlocal_op("gaussian", q, k, _values(image), scale=2 / h ** 2)
    return y.transpose(1, 2).reshape(image.shape)


def nl_means_literal(image: Tensor, h: float, patch: int = 5) -> Tensor:
    """Non-local means as Buades, Coll and Morel write it: for every pixel i, a loop over every
    pixel j, the patches' mean squared difference d^2, the weight exp(-d^2 / h^2), and the
    weighted mean of the pixels. Slow (a Python loop over N^2 pairs): for small images and tests.
    """
    h = _check_h(h)
    image, patch = _check_image(image), _check_patch(patch)
    r = patch // 2
    padded = F.pad(image, (r, r, r, r), mode="reflect") if r else image
    B, _, H, W = image.shape
    out = torch.empty_like(image)
    for b in range(B):
        for i in range(H * W):
            yi, xi = divmod(i, W)
            p_i = padded[b, 0, yi:yi + patch, xi:xi + patch]
            total = weighted = 0.0
            for j in range(H * W):
                yj, xj = divmod(j, W)
                d2 = ((p_i - padded[b, 0, yj:yj + patch, xj:xj + patch]) ** 2).mean()
                w = torch.exp(-d2 / h ** 2)
                total = total + w
                weighted = weighted + w * image[b, 0, yj, xj]
            out[b, 0, yi, xi] = weighted / total
    return out


def nl_means_block(h: float, patch: int = 5, dtype=torch.float32) -> NonLocalBlock:
    """A :class:`~nlcourse.NonLocalBlock` that computes NL-means on :func:`block_features`: the
    embedded Gaussian, no sub-sampling, theta and phi the fixed 1x1 convolutions that make
    theta_i . phi_j = 2 (x_i . x_j - ‖x_j‖^2 / 2) / h^2, g the centre pixel (into channel 0) and W
    the identity from channel 0 of y to channel 0 of z, with no norm. So ``block(x) - x`` holds
    the denoised image in channel 0. Its parameters are frozen (nothing here learns)."""
    h, patch = _check_h(h), _check_patch(patch)
    C = patch * patch + 1
    block = NonLocalBlock(C, inter_channels=C, mode="embedded_gaussian", sub_sample=False,
                          norm=None).to(dtype).eval()
    with torch.no_grad():
        for conv in (block.theta, block.phi, block.g, block.W):
            conv.weight.zero_()
            conv.bias.zero_()
        eye = torch.eye(C - 1, dtype=dtype)
        block.theta.weight[:C - 1, :C - 1, 0, 0] = 2 / h ** 2 * eye    # theta_i = 2/h^2 [x_i, 1]
        block.theta.bias[C - 1] = 2 / h ** 2
        block.phi.weight[:C - 1, :C - 1, 0, 0] = eye                   # phi_j = [x_j, -‖x_j‖^2/2]
        block.phi.weight[C - 1, C - 1, 0, 0] = -0.5
        block.g.weight[0, (C - 1) // 2, 0, 0] = patch                   # the centre pixel, x_i*patch
        block.W.weight[0, 0, 0, 0] = 1.0
    return block.requires_grad_(False)


def gaussian_blur(image: Tensor, sigma: float) -> Tensor:
    """The local denoiser NL-means is compared with: a Gaussian blur of standard deviation
    ``sigma`` pixels (a kernel of 2 ceil(3 sigma) + 1 taps, the image mirrored at its borders)."""
    image = _check_image(image)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"sigma must be a positive number of pixels, got {sigma!r}")
    r = math.ceil(3 * sigma)
    t = torch.arange(-r, r + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-t ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    padded = F.pad(image, (r, r, r, r), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    return F.conv2d(rows, kernel.view(1, 1, -1, 1))


def psnr(denoised: Tensor, clean: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB for images in [0, 1], one per image, (B,):
    10 log10(1 / mean squared error). Higher is better; 6 dB is half the error's amplitude."""
    if denoised.shape != clean.shape:
        raise ValueError(f"denoised and clean must have one shape, got {tuple(denoised.shape)} "
                         f"and {tuple(clean.shape)}")
    mse = ((denoised - clean) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse)


def best_h(noisy: Tensor, clean: Tensor, hs, patch: int = 5) -> tuple[float, float]:
    """The h of ``hs`` whose NL-means has the highest mean PSNR over the images, and that PSNR."""
    scores = [(psnr(nl_means(noisy, h, patch), clean).mean().item(), h) for h in hs]
    score, h = max(scores)
    return h, score


def grey_sample_image(size: int = 64, scale: int = 4, top: int = 20, left: int = 40) -> Tensor:
    """A natural grey image, offline: matplotlib's sample photograph of Grace Hopper
    (``mpl-data/sample_data/grace_hopper.jpg``, 600 x 512), averaged over its colours and over
    ``scale`` x ``scale`` pixels, then the ``size`` x ``size`` crop at (``top``, ``left``):
    (1, 1, size, size), float64 in [0, 1]."""
    import matplotlib.pyplot as plt  # heavy: import nlcourse stays light
    from matplotlib import cbook

    photo = plt.imread(cbook.get_sample_data("grace_hopper.jpg"))
    grey = torch.tensor(photo[..., :3], dtype=torch.float64).mean(-1) / 255
    small = F.avg_pool2d(grey[None, None], scale)
    if top + size > small.shape[-2] or left + size > small.shape[-1]:
        raise ValueError(f"a {size} x {size} crop at ({top}, {left}) does not fit the "
                         f"{tuple(small.shape[-2:])} image")
    return small[..., top:top + size, left:left + size].contiguous()


#: How :class:`NLMeansNet` starts: theta and phi at NL-means's (with h = ``h``), or drawn at random.
INITS = ("nl_means", "random")


class NLMeansNet(nn.Module):
    """Non-local means with learned theta and phi: an embedded-Gaussian block on the patches.

    The input's patches and their squared length are the block's features
    (:func:`block_features`, patch^2 + 1 channels); theta and phi are learned 1x1 convolutions
    of them (so, of the image: ``patch`` x ``patch`` convolutions); g stays the identity on the
    centre pixel and W reads it out, both frozen, as in :func:`nl_means_block`. The output is
    y, ``block(x) - x`` in channel 0: a weighted mean of the noisy pixels, whose weights are
    softmax_j(theta_i . phi_j), the embedded Gaussian's. ``init="nl_means"`` starts at
    non-local means with bandwidth ``h`` (the fixed features are one point of the learned ones),
    ``"random"`` at PyTorch's default initialisation.
    """

    def __init__(self, patch: int = 3, h: float = 0.3, init: str = "nl_means"):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(map(repr, INITS))}; got {init!r}")
        self.patch, self.init = _check_patch(patch), init
        self.block = nl_means_block(h, patch)
        if init == "random":
            fresh = NonLocalBlock(self.block.in_channels, inter_channels=self.block.in_channels,
                                  sub_sample=False, norm=None)
            self.block.theta.load_state_dict(fresh.theta.state_dict())
            self.block.phi.load_state_dict(fresh.phi.state_dict())
        self.block.theta.requires_grad_(True)
        self.block.phi.requires_grad_(True)

    def forward(self, noisy: Tensor) -> Tensor:
        """The denoised images, (B, 1, H, W), for noisy ones of the same shape."""
        x = block_features(_check_image(noisy, "noisy"), self.patch)
        return (self.block(x) - x)[:, :1]
