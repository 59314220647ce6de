"""nlcourse: the reference implementations behind the Non-local Neural Networks course.

The public names are the block, the MNIST network, its shipped trained weights and the test
digits the course reads them on. Everything heavy (torchvision, matplotlib,
mlxtend) is imported only inside the functions that use it, so ``import nlcourse`` stays light.
"""

from ._modes import MODES
from .blocks import (GlobalContextBlock, NonLocalBlock, NonLocalBlock1d, NonLocalBlock2d,
                     NonLocalBlock3d)
from .models import MNISTNet
from .shipped import pretrained, pretrained_record, shipped_digits

__version__ = "0.1.0"

__all__ = [
    "MODES",
    "NonLocalBlock",
    "NonLocalBlock1d",
    "NonLocalBlock2d",
    "NonLocalBlock3d",
    "GlobalContextBlock",
    "MNISTNet",
    "pretrained",
    "pretrained_record",
    "shipped_digits",
]
