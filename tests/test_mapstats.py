"""nlcourse.mapstats: map statistics on hand-made maps, saliency and rank correlation."""

from __future__ import annotations

import math

import pytest
import torch

from nlcourse.mapstats import map_statistics


def test_uniform_and_one_hot_maps():
    M = 16
    uniform = torch.full((1, 4, M), 1 / M)
    stats = map_statistics(uniform, (2, 2), (4, 4), image_size=8)
    torch.testing.assert_close(stats["entropy"], torch.full((1, 4), math.log(M), dtype=torch.float64))
    torch.testing.assert_close(stats["max_weight"], torch.full((1, 4), 1 / M, dtype=torch.float64))
    # one-hot on the key at the query's own place: no spread, no distance
    own = torch.eye(16).unsqueeze(0)
    stats = map_statistics(own, (4, 4), (4, 4), image_size=16, radius=1.0)
    assert torch.all(stats["entropy"] == 0) and torch.all(stats["max_weight"] == 1)
    assert torch.all(stats["mean_distance"] == 0) and torch.all(stats["beyond_radius"] == 0)
    assert not stats["normalised"]


def test_distances_are_in_pixels_between_cell_centres():
    # a 4x4 query grid and a 2x2 key grid over a 16-pixel image: key cells are 8 px, centres at
    # 4 and 12; query cell (0, 0) is centred at (2, 2).
    nl_map = torch.zeros(1, 16, 4)
    nl_map[0, 0, 3] = 1.0                         # query (0,0) -> key (1,1) at (12, 12)
    nl_map[0, 1, 0] = nl_map[0, 1, 3] = 0.5       # query (0,1) at (2, 6): keys (4,4) and (12,12)
    nl_map[0, 2:, 0] = 1.0
    stats = map_statistics(nl_map, (4, 4), (2, 2), image_size=16, radius=5.0)
    assert stats["mean_distance"][0, 0].item() == pytest.approx(math.hypot(10, 10))
    assert stats["mean_distance"][0, 1].item() == pytest.approx(
        0.5 * math.hypot(2, 2) + 0.5 * math.hypot(10, 6))
    assert stats["beyond_radius"][0, 1].item() == pytest.approx(0.5)
    assert stats["entropy"][0, 1].item() == pytest.approx(math.log(2))


def test_signed_maps_are_normalised_and_flagged():
    nl_map = torch.tensor([[[0.5, -0.5]]])
    stats = map_statistics(nl_map, (1, 1), (1, 2))
    assert stats["normalised"] and stats["max_weight"].item() == pytest.approx(0.5)


def test_map_shape_errors_name_the_grids():
    with pytest.raises(ValueError, match=r"nl_map must be shaped \(B, N queries, M keys\)"):
        map_statistics(torch.ones(4, 4), (2, 2), (2, 2))
    with pytest.raises(ValueError, match=r"the grids say \(3, 3\) = 9 queries"):
        map_statistics(torch.ones(1, 4, 4), (3, 3), (2, 2))




class _Linear(torch.nn.Module):
    """logit_k = sum(w_k * x): occlusion and gradient have closed forms."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(10, 1, 8, 8, dtype=torch.float64))

    def forward(self, x):
        return (x[:, None] * self.w[None]).flatten(2).sum(-1)


def test_occlusion_saliency_is_the_logit_lost_per_patch():
    from nlcourse.mapstats import occlusion_saliency
    torch.manual_seed(0)
    net, x = _Linear(), torch.rand(3, 1, 8, 8, dtype=torch.float64)
    target = torch.tensor([1, 4, 7])
    s = occlusion_saliency(net, x, patch=2, target=target)
    contribution = (x[:, 0] * net.w[target, 0]).detach()          # (3, 8, 8)
    expected = contribution.reshape(3, 4, 2, 4, 2).sum((2, 4))
    assert s.shape == (3, 4, 4) and torch.allclose(s, expected)
    with pytest.raises(ValueError, match="patch must divide"):
        occlusion_saliency(net, x, patch=3)
    with pytest.raises(ValueError, match="target must hold one class per image"):
        occlusion_saliency(net, x, patch=2, target=[1, 2])


def test_gradient_saliency_of_a_linear_model_is_its_weight():
    from nlcourse.mapstats import gradient_saliency
    torch.manual_seed(0)
    net, x = _Linear(), torch.rand(2, 1, 8, 8, dtype=torch.float64)
    s = gradient_saliency(net, x, target=[3, 5])
    assert torch.allclose(s, net.w[[3, 5], 0].abs().detach())
    with pytest.raises(ValueError, match=r"images must be a tensor shaped \(B, channels, H, W\)"):
        gradient_saliency(net, x[0])


def test_rank_correlation_matches_scipy_with_ties():
    scipy_stats = pytest.importorskip("scipy.stats")
    from nlcourse.mapstats import rank_correlation
    torch.manual_seed(0)
    a = torch.randint(0, 4, (5, 3, 3)).double()      # many ties
    b = torch.randn(5, 9)
    got = rank_correlation(a, b)
    for i in range(5):
        want = scipy_stats.spearmanr(a[i].flatten().numpy(), b[i].numpy()).statistic
        assert abs(got[i].item() - want) < 1e-12
    assert torch.allclose(rank_correlation(b, b), torch.ones(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="same number of items of the same size"):
        rank_correlation(a, b[:, :4])


def test_row_similarity_is_one_for_a_shared_map_and_zero_for_disjoint_rows():
    from nlcourse.mapstats import row_similarity

    shared = torch.softmax(torch.randn(1, 1, 9, dtype=torch.float64), -1).expand(2, 5, 9)
    assert torch.allclose(row_similarity(shared), torch.ones(2, dtype=torch.float64))
    disjoint = torch.eye(4, dtype=torch.float64)[None]               # each query, its own key
    assert row_similarity(disjoint).item() == 0
    half = torch.tensor([[[1.0, 0], [1, 0], [0, 1]]])                 # 1 of 3 pairs alike
    assert abs(row_similarity(half).item() - 1 / 3) < 1e-7
    with pytest.raises(ValueError, match=r"nl_map must be \(B, N, M\) with N >= 2"):
        row_similarity(torch.ones(5, 9))
