"""The experiments, one module each, all with the interface of :class:`~nlcourse.labs._lab.Lab`:
``MODELS``, ``BUDGETS``, ``setup``, ``budget``, ``run``, ``sweep``, ``results``, ``committed``,
``trained`` and ``load``. The command line is built
from :data:`LABS`; the benchmarks (:mod:`nlcourse.labs.bench`), which train nothing, have their
own command, ``python -m nlcourse bench``.

Data flows one way: these modules use the core package (``nlcourse.*``), and no core module
imports them (``tests/test_layout.py`` checks it).
"""

from . import bench, long_range, mnist, r3d, resnet, spacetime, variants
from ._lab import Lab, flops_per_example, load_results, read_back, summarise

__all__ = ["LABS", "Lab", "load_results", "read_back", "summarise", "flops_per_example", "bench",
           "mnist", "long_range", "spacetime", "r3d", "resnet", "variants"]

LABS: dict[str, Lab] = {module.LAB.name: module.LAB
                        for module in (mnist, long_range, spacetime, r3d, resnet, variants)}
