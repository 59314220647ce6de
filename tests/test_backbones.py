"""Non-local blocks in torchvision ResNets: placement, and outputs unchanged at insertion."""

from __future__ import annotations

import pytest
import torch

torchvision = pytest.importorskip("torchvision")

from nlcourse import NonLocalBlock2d  # noqa: E402
from nlcourse.backbones import nonlocal_blocks, paper_placement  # noqa: E402
from nlcourse.models import add_nonlocal  # noqa: E402


def trained_like(model):
    """Random BatchNorm statistics, so the check is not made on an all-default network."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)
    return model.eval()


def test_paper_placement_for_resnet50_is_res3_2_4_and_res4_2_4_6():
    model = torchvision.models.resnet50()
    assert paper_placement(model) == {3: [2, 4], 4: [2, 4, 6]}
    add_nonlocal(model)
    names = [name for name, _ in nonlocal_blocks(model)]
    assert names == ["layer2.1.1", "layer2.3.1", "layer3.1.1", "layer3.3.1", "layer3.5.1"]
    assert [b.in_channels for _, b in nonlocal_blocks(model)] == [512, 512, 1024, 1024, 1024]


def test_the_same_rule_for_resnet18():
    model = torchvision.models.resnet18()
    assert paper_placement(model) == {3: [2], 4: [2]}
    add_nonlocal(model)
    assert [b.in_channels for _, b in nonlocal_blocks(model)] == [128, 256]


@pytest.mark.parametrize("depth", ["resnet18", "resnet50"])
def test_outputs_are_unchanged_at_insertion(depth):
    model = trained_like(getattr(torchvision.models, depth)(num_classes=10))
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        before = model(x)
        add_nonlocal(model, stages=(2, 3, 4, 5), blocks=-1)
        after = model.eval()(x)
    assert len(nonlocal_blocks(model)) == 4
    assert torch.equal(before, after)
    # ...and the blocks are really in the path: opening one changes the output.
    with torch.no_grad():
        nonlocal_blocks(model)[1][1].W[1].weight.fill_(1.0)
        assert not torch.allclose(model(x), before)


def test_one_block_per_stage_and_explicit_placements():
    model = add_nonlocal(torchvision.models.resnet18(), stages=(2, 3, 4, 5), blocks=-1,
                         mode="dot_product")
    assert [name for name, _ in nonlocal_blocks(model)] == ["layer1.1.1", "layer2.1.1",
                                                            "layer3.1.1", "layer4.1.1"]
    assert all(b.mode == "dot_product" for _, b in nonlocal_blocks(model))
    model = add_nonlocal(torchvision.models.resnet18(), blocks={4: [1]}, sub_sample=False)
    (name, block), = nonlocal_blocks(model)
    assert name == "layer3.0.1" and not block.sub_sample and isinstance(block, NonLocalBlock2d)


def test_bad_placements_name_what_was_expected():
    with pytest.raises(ValueError, match="res3 \\(layer2\\) has residual blocks 1 to 2"):
        add_nonlocal(torchvision.models.resnet18(), blocks={3: [3]})
    with pytest.raises(ValueError, match="stages are numbered as in the paper, 2 to 5"):
        add_nonlocal(torchvision.models.resnet18(), stages=(1,))
    with pytest.raises(TypeError, match="must be a torchvision ResNet"):
        add_nonlocal(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="already has a non-local block"):
        add_nonlocal(add_nonlocal(torchvision.models.resnet18()))
    with pytest.raises(ValueError, match="mode"):
        add_nonlocal(torchvision.models.resnet18(), mode="cosine")
