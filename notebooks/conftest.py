"""pytest settings for the notebooks (run by nbval): print how long each notebook took, so the
time limits of the smoke budget (90 s per notebook) stay visible in every test run."""

from collections import defaultdict


def pytest_terminal_summary(terminalreporter):
    seconds = defaultdict(float)
    for outcome in ("passed", "failed"):
        for report in terminalreporter.getreports(outcome):
            path = report.nodeid.split("::")[0]
            if path.endswith(".ipynb"):
                seconds[path] += report.duration
    if seconds:
        terminalreporter.section("notebook run times")
        for path, total in sorted(seconds.items()):
            terminalreporter.write_line(f"{total:7.1f} s  {path}")
        terminalreporter.write_line(f"{sum(seconds.values()):7.1f} s  all notebooks")
