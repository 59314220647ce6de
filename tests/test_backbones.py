"""Non-local blocks in torchvision ResNets: placement, and outputs unchanged at insertion."""

from __future__ import annotations

import pytest
import torch

torchvision = pytest.importorskip("torchvision")

from nlcourse import NonLocalBlock2d  # noqa: E402
from nlcourse.backbones import nonlocal_blocks, paper_placement  # noqa: E402
from nlcourse.backbones import add_nonlocal  # noqa: E402


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


def test_r3d_18_gets_3d_blocks_at_res3_and_res4_and_is_unchanged_at_insertion():
    """The paper's video backbone: torchvision's ResNet inflated to 3-D, blocks after every other
    residual block of res3 and res4 (r3d_18 has two per stage: after the second), keys pooled
    in space only; a clip goes through exactly as before."""
    model = torchvision.models.video.r3d_18(num_classes=10)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    model.eval()
    clip = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        before = model(clip)
        add_nonlocal(model)
        after = model(clip)
    blocks = nonlocal_blocks(model)
    assert [name for name, _ in blocks] == ["layer2.1.1", "layer3.1.1"]
    assert all(b.dimension == 3 and b.pool.kernel_size == (1, 2, 2) for _, b in blocks)
    assert [b.in_channels for _, b in blocks] == [128, 256]
    assert torch.equal(before, after)


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


def test_small_resnet_has_resnet_layout_and_blocks_go_where_asked():
    from nlcourse.backbones import SmallResNet

    model = SmallResNet(width=4, depth=2)
    x = torch.randn(2, 1, 28, 28)
    sizes = []
    hooks = [getattr(model, f"layer{k}").register_forward_hook(
        lambda m, i, o: sizes.append(tuple(o.shape[1:]))) for k in range(1, 5)]
    assert model(x).shape == (2, 10)
    for h in hooks:
        h.remove()
    assert sizes == [(4, 28, 28), (8, 14, 14), (16, 7, 7), (32, 4, 4)]
    before = trained_like(model)(x)
    add_nonlocal(model, stages=(2, 3, 4, 5), blocks=1)
    assert [n for n, _ in nonlocal_blocks(model)] == ["layer1.0.1", "layer2.0.1", "layer3.0.1",
                                                      "layer4.0.1"]
    assert torch.equal(model.eval()(x), before)  # identity at insertion here too
    with pytest.raises(ValueError, match="width must be a positive integer"):
        SmallResNet(width=0)
    with pytest.raises(ValueError, match=r"shaped \(B, 1, H, W\)"):
        model(torch.randn(2, 3, 28, 28))


def test_nonlocal_maps_are_the_blocks_own_maps():
    from nlcourse.backbones import nonlocal_maps

    model = trained_like(torchvision.models.resnet18())
    add_nonlocal(model, stages=(3, 4), blocks=-1)
    x = torch.randn(1, 3, 64, 64)
    inputs = {}
    for name, block in nonlocal_blocks(model):
        block.register_forward_pre_hook(lambda m, a, name=name: inputs.__setitem__(name, a[0]))
    maps = nonlocal_maps(model, x)
    assert {name: tuple(m.shape) for name, m in maps.items()} == {
        "layer2.1.1": (1, 8 * 8, 4 * 4), "layer3.1.1": (1, 4 * 4, 2 * 2)}
    for name, block in nonlocal_blocks(model):
        torch.testing.assert_close(maps[name], block(inputs[name], return_nl_map=True)[1])
        torch.testing.assert_close(maps[name].sum(-1), torch.ones(maps[name].shape[:2]))
        assert len(block._forward_pre_hooks) == 1  # nonlocal_maps removed its hooks


def test_build_resnet_puts_one_block_before_the_last_residual_block_of_a_stage():
    from nlcourse.labs.resnet import MODELS, build

    assert nonlocal_blocks(build("none")) == []
    for model in MODELS[1:]:
        net = build(model)
        k = int(model[3:]) - 1
        (name, block), = nonlocal_blocks(net)
        assert name == f"layer{k}.0.1"         # after residual block 1 of 2 = before the last
        assert block.in_channels == 8 * 2 ** (k - 1)
    with pytest.raises(ValueError, match="model must be one of 'none', 'res2'"):
        build("res6")


def test_resnet_sweep_writes_one_file_per_run_with_its_provenance(tmp_path):
    import dataclasses

    from nlcourse.data import FASHION
    from nlcourse.labs import resnet, runner
    from nlcourse.provenance import missing_fields

    from .test_train import tiny_data

    fashion = tiny_data(1100, 600, source=FASHION)
    lab = dataclasses.replace(resnet.LAB,
                              load_data=lambda b: fashion.subset(b.train_size, b.test_size))
    results = runner.sweep(lab, ("none", "res3"), (1,), resnet.BUDGETS["smoke"], tmp_path,
                           progress=False, log=None)
    assert all(missing_fields(r) == [] for r in results)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["none_seed1.json", "res3_seed1.json"]
    assert [r["model"] for r in results] == ["none", "res3"]
    assert results[1]["params"] > results[0]["params"]
    assert results[1]["flops_per_image"] > results[0]["flops_per_image"]
    assert results[0]["data_source"] == "fashion-mnist-subset"  # the smoke budget's 1,024 images
    assert results[0]["command"] == (f"python -m nlcourse sweep resnet --models none --seeds 1 "
                                     f"--budget smoke --out {tmp_path}")


def test_nonlocal_blocks_finds_every_kind_the_package_defines():
    from torch import nn

    from nlcourse import NonLocalBlock, NonLocalBlock1d, NonLocalBlock3d
    from nlcourse.backbones import BLOCK_KINDS
    from nlcourse.efficient import make_variant
    from nlcourse.models import SpaceTimeNonLocal

    one_of_each = {
        "d1": NonLocalBlock1d(4), "d2": NonLocalBlock2d(4), "d3": NonLocalBlock3d(4),
        "any": NonLocalBlock(4, dimension=2, mode="concatenation"),
        "spacetime": SpaceTimeNonLocal(4, "time"),
        "chunked": make_variant(NonLocalBlock2d(4), "chunked", chunk=2),
        "top_k": make_variant(NonLocalBlock2d(4), "top_k", k=2),
        "low_rank": make_variant(NonLocalBlock2d(4), "low_rank", rank=1),
    }
    model = nn.ModuleDict({"inner": nn.ModuleDict(one_of_each), "conv": nn.Conv2d(4, 4, 1)})
    found = nonlocal_blocks(model)
    # each counted once: the block inside a space-time block or a variant is not listed again
    assert [name for name, _ in found] == [f"inner.{k}" for k in one_of_each]
    assert {type(m) for _, m in found} == {type(m) for m in one_of_each.values()}
    assert all(isinstance(m, BLOCK_KINDS) for _, m in found)
    assert nonlocal_blocks(one_of_each["spacetime"]) == [("", one_of_each["spacetime"])]


def test_the_r3d_lab_builds_r3d_18_for_grey_clips_with_the_papers_blocks():
    """Lab 6's backbone: torchvision's r3d_18 with a one-channel stem; "nonlocal" is the same
    network (same seed, same weights) with blocks at res3 and res4 that change nothing at first."""
    from nlcourse.labs import r3d

    torch.manual_seed(0)
    plain = r3d.build("none").eval()
    torch.manual_seed(0)
    with_blocks = r3d.build("nonlocal").eval()
    assert plain.stem[0].in_channels == 1 and plain.fc.out_features == 10
    assert nonlocal_blocks(plain) == []
    assert [name for name, _ in nonlocal_blocks(with_blocks)] == ["layer2.1.1", "layer3.1.1"]
    assert all(b.mode == r3d.MODE for _, b in nonlocal_blocks(with_blocks))
    clip = torch.rand(2, 1, 8, 24, 24)
    with torch.no_grad():
        assert torch.equal(plain(clip), with_blocks(clip))
    with pytest.raises(ValueError, match="model must be one of 'none', 'nonlocal' for the r3d lab; got 'i3d'"):
        r3d.build("i3d")


def test_flops_counted_on_the_meta_device_are_the_flops_of_a_real_clip():
    """The space-time lab counts r3d_18's FLOPs at the paper's clip size (32 x 224 x 224) on the
    meta device, which allocates nothing; on a small clip that count equals the real one."""
    from nlcourse.cost import count_flops
    from nlcourse.labs import r3d

    for model in r3d.MODELS:
        net = r3d.build(model).eval()
        with torch.no_grad():
            real = count_flops(lambda: net(torch.rand(1, 1, 8, 24, 24)))
            meta = net.to("meta")
            counted = count_flops(lambda: meta(torch.empty(1, 1, 8, 24, 24, device="meta")))
        assert counted == real > 1e9
