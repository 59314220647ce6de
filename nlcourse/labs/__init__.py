"""The experiments, one declaration each (:class:`~nlcourse.labs.lab.Lab`), and one runner for
all of them (:mod:`nlcourse.labs.runner`). A lab module has one shape: ``MODELS``, ``BUDGETS``,
``build(model, **options)``, ``load_data(budget)`` and ``LAB``. The command line is built from
:data:`LABS`.

Data flows one way: these modules use the core package (``nlcourse.*``), and no core module
imports them (``tests/test_layout.py`` checks it).
"""

from . import denoise, long_range, mnist, partners, r3d, resnet, runner, spacetime, variants
from .lab import Lab

__all__ = ["LABS", "Lab", "runner", "mnist", "long_range", "spacetime", "r3d", "resnet", "variants",
           "denoise", "partners"]

#: Every lab by name, in the order of the pages that run them.
LABS: dict[str, Lab] = {module.LAB.name: module.LAB
                        for module in (mnist, denoise, long_range, spacetime, r3d, resnet,
                                       partners, variants)}
