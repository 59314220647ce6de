"""Exercise 6, a block in a CNN: check_insert_block(make_model, base=SmallCNN)."""

import torch
from torch import nn

from nlcourse import NonLocalBlock, pitfalls
from nlcourse.exercises import _feedback as fbk
from nlcourse.exercises.ex06_insert_block import (BLOCK_UNUSED, CONV_ZERO_GAMMA_ONE,
                                                  DOUBLE_RESIDUAL, NO_BLOCK, NOT_IDENTITY)


class SmallCNN(nn.Module):
    """The exercise's network, as given in the notebook."""

    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16),
                                    nn.ReLU(), nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32),
                                    nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 10))

    def forward(self, x):
        return self.head(self.stage2(self.stage1(x)))


BASE = SmallCNN


class Right(SmallCNN):
    def __init__(self):
        super().__init__()
        self.block = NonLocalBlock(16)

    def forward(self, x):
        return self.head(self.stage2(self.block(self.stage1(x))))


class DoubleResidual(Right):
    def forward(self, x):
        h = self.stage1(x)
        return self.head(self.stage2(h + self.block(h)))


class ConvZeroGammaOne(Right):
    def __init__(self):
        super().__init__()
        pitfalls.init_conv_zero_bn_one(self.block)


class GammaOne(Right):
    def __init__(self):
        super().__init__()
        nn.init.ones_(self.block.W[1].weight)


class NoBlock(SmallCNN):
    pass


class DefinedNotUsed(SmallCNN):
    def __init__(self):
        super().__init__()
        self.block = NonLocalBlock(16)


class Detached(Right):
    def forward(self, x):
        h = self.stage1(x)
        with torch.no_grad():
            h = self.block(h)
        return self.head(self.stage2(h))


class DetachCall(Right):
    def forward(self, x):
        return self.head(self.stage2(self.block(self.stage1(x)).detach()))


class WrongChannels(SmallCNN):
    def __init__(self):
        super().__init__()
        self.block = NonLocalBlock(32)

    def forward(self, x):
        return self.head(self.stage2(self.block(self.stage1(x))))


class ForgotReturn(Right):
    def forward(self, x):
        self.head(self.stage2(self.block(self.stage1(x))))


class Softmaxed(Right):
    def forward(self, x):
        return torch.softmax(super().forward(x), dim=-1)


class BlockAndResidualInHead(SmallCNN):
    def __init__(self):
        super().__init__()
        self.block2 = NonLocalBlock(32)

    def forward(self, x):
        h = self.stage2(self.stage1(x))
        return self.head(h + self.block2(h))


class NoBN(SmallCNN):
    def __init__(self):
        super().__init__()
        self.block = NonLocalBlock(16, bn_layer=False)
        nn.init.normal_(self.block.W.weight)

    def forward(self, x):
        return self.head(self.stage2(self.block(self.stage1(x))))


class ReturnsMap(Right):
    def forward(self, x):
        h, nl_map = self.block(self.stage1(x), return_nl_map=True)
        return self.head(self.stage2(h)), nl_map


class ExtraReLU(Right):
    def forward(self, x):
        return self.head(self.stage2(torch.relu(self.block(self.stage1(x)) - 0.1)))


class RenamedStages(nn.Module):
    """Rebuilt from scratch, with a double residual."""

    def __init__(self):
        super().__init__()
        self.stage1 = SmallCNN().stage1
        self.stage2 = SmallCNN().stage2
        self.head = SmallCNN().head
        self.nl = NonLocalBlock(16, mode="dot_product")

    def forward(self, x):
        h = self.stage1(x)
        h = h + self.nl(h)
        return self.head(self.stage2(h))


WRONG = [
    ("double residual", DoubleResidual, {DOUBLE_RESIDUAL}),
    ("conv zero, gamma one", ConvZeroGammaOne, {CONV_ZERO_GAMMA_ONE}),
    ("gamma one", GammaOne, {NOT_IDENTITY}),
    ("no block", NoBlock, {NO_BLOCK}),
    ("block never called", DefinedNotUsed, {BLOCK_UNUSED}),
    ("block under no_grad", Detached, {fbk.DETACHED}),
    ("block output detached", DetachCall, {fbk.DETACHED}),
    ("wrong channel count", WrongChannels, {fbk.EXCEPTION, "wrong channels"}),
    ("forward forgot return", ForgotReturn, {fbk.NO_RETURN}),
    ("softmax on the logits", Softmaxed, {"an output that differs from the network without "
                                          "the block"}),
    ("residual added after stage 2", BlockAndResidualInHead, {DOUBLE_RESIDUAL}),
    ("W without BN, random", NoBN, {NOT_IDENTITY}),
    ("returns the map too", ReturnsMap, {fbk.WRONG_TYPE}),
    ("an extra shifted ReLU", ExtraReLU, {"an output that differs from the network without "
                                          "the block"}),
    ("rebuilt, double residual", RenamedStages, {DOUBLE_RESIDUAL}),
    ("returns the class, not a model", lambda: Right, {fbk.WRONG_TYPE}),
]


class RightAfterStage2(SmallCNN):
    def __init__(self):
        super().__init__()
        self.block = NonLocalBlock(32, mode="dot_product")

    def forward(self, x):
        return self.head(self.block(self.stage2(self.stage1(x))))


class RightTwoBlocks(SmallCNN):
    def __init__(self):
        super().__init__()
        self.nl1 = NonLocalBlock(16, mode="concatenation")
        self.nl2 = NonLocalBlock(32, mode="gaussian")

    def forward(self, x):
        return self.head(self.nl2(self.stage2(self.nl1(self.stage1(x)))))


class RightInSequential(SmallCNN):
    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(*self.stage1, NonLocalBlock(16, inter_channels=4))


RIGHT = [("the solution", Right), ("after stage 2, dot product", RightAfterStage2),
         ("two blocks", RightTwoBlocks), ("inside stage1's Sequential", RightInSequential)]
