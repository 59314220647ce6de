"""Non-local means as the non-local operation: the literal loop, the reference, the fast kernel
and the block agree in float64; the learned version is the embedded Gaussian; the errors."""

from __future__ import annotations

import pytest
import torch

from nlcourse import NonLocalBlock, nlmeans

SMALL = torch.rand(2, 1, 5, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("patch", (1, 3, 5))
@pytest.mark.parametrize("h", (0.1, 0.4))
def test_reference_block_and_kernel_equal_the_literal_loop(patch, h):
    literal = nlmeans.nl_means_literal(SMALL, h, patch)
    block = nlmeans.nl_means_block(h, patch, dtype=torch.float64)
    x = nlmeans.block_features(SMALL, patch)
    z, nl_map = block(x, return_nl_map=True)
    for name, found in (("reference", nlmeans.nl_means_reference(SMALL, h, patch)),
                        ("block", (block(x) - x)[:, :1]), ("block, map path", (z - x)[:, :1]),
                        ("kernel", nlmeans.nl_means(SMALL, h, patch))):
        assert (found - literal).abs().max() < 1e-12, name
    weights = nlmeans.nl_means_weights(SMALL, h, patch)
    assert (nl_map - weights).abs().max() < 1e-12
    assert torch.allclose(weights.sum(-1), torch.ones(2, 30, dtype=torch.float64))


def test_the_block_is_an_embedded_gaussian_block_with_frozen_parts():
    block = nlmeans.nl_means_block(0.3, 3)
    assert isinstance(block, NonLocalBlock) and block.mode == "embedded_gaussian"
    assert not block.sub_sample and block.norm is None
    assert not any(p.requires_grad for p in block.parameters())


def test_the_weights_are_the_patches_distance():
    """w_ij = exp(-|x_i - x_j|^2 / h^2) / row sum, as Buades, Coll and Morel write it."""
    x = nlmeans.patches(SMALL, 3)
    d2 = torch.cdist(x, x) ** 2
    expected = torch.softmax(-d2 / 0.2 ** 2, dim=-1)
    assert (nlmeans.nl_means_weights(SMALL, 0.2, 3) - expected).abs().max() < 1e-12


def test_small_h_keeps_the_noise_and_large_h_blurs_to_the_mean():
    assert (nlmeans.nl_means(SMALL, 1e-4, 3) - SMALL).abs().max() < 1e-12
    flat = nlmeans.nl_means(SMALL, 1e4, 3)
    assert (flat - SMALL.mean((2, 3), keepdim=True)).abs().max() < 1e-6


def test_nl_means_denoises_the_grey_image_better_than_a_blur():
    clean = nlmeans.grey_sample_image()
    assert clean.shape == (1, 1, 64, 64) and 0 <= clean.min() < clean.max() <= 1
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0),
                                      dtype=clean.dtype)
    blur = max(nlmeans.psnr(nlmeans.gaussian_blur(noisy, s), clean).item() for s in (0.5, 1, 1.5))
    assert nlmeans.psnr(nlmeans.nl_means(noisy, 0.08, 3), clean).item() > blur
    assert nlmeans.best_h(noisy, clean, (0.01, 0.08, 1.0), 3)[0] == 0.08


def test_the_learned_network_starts_as_nl_means_and_learns_theta_and_phi_only():
    noisy = SMALL.float()
    net = nlmeans.NLMeansNet(patch=3, h=0.3)
    assert (net(noisy) - nlmeans.nl_means(noisy, 0.3, 3)).abs().max() < 1e-5
    learned = {n for n, p in net.named_parameters() if p.requires_grad}
    assert learned == {"block.theta.weight", "block.theta.bias", "block.phi.weight",
                       "block.phi.bias"}
    other = nlmeans.NLMeansNet(patch=3, init="random")
    assert (other(noisy) - net(noisy)).abs().max() > 1e-3
    assert torch.equal(other.block.g.weight, net.block.g.weight)   # g stays the centre pixel


def test_a_blur_keeps_a_flat_image_and_psnr_reads_the_error():
    flat = torch.full((1, 1, 9, 9), 0.5)
    assert torch.allclose(nlmeans.gaussian_blur(flat, 1.2), flat)
    assert torch.allclose(nlmeans.psnr(flat + 0.1, flat), torch.tensor([20.0]))


@pytest.mark.parametrize("call,message", [
    (lambda: nlmeans.nl_means(SMALL, 0.3, 4), "patch must be an odd whole number"),
    (lambda: nlmeans.nl_means(SMALL, 0, 3), "h must be a positive number"),
    (lambda: nlmeans.nl_means(SMALL[:, 0], 0.3, 3), r"image must be grey images shaped"),
    (lambda: nlmeans.gaussian_blur(SMALL, -1), "sigma must be a positive number"),
    (lambda: nlmeans.psnr(SMALL, SMALL[0]), "denoised and clean must have one shape"),
    (lambda: nlmeans.NLMeansNet(init="zeros"), "init must be one of 'nl_means', 'random'"),
    (lambda: nlmeans.grey_sample_image(size=200), "does not fit"),
])
def test_errors_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
