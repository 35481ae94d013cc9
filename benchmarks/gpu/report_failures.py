"""pytest plugin of the device test runs (``-p report_failures``): each failure's report is appended to
``$OUT/cuda-failures.txt`` as it happens, so that a run its time limit cuts short (before pytest's
summary) still leaves every traceback so far. With pytest-xdist the controller writes them, once."""
import os

_controller = True


def pytest_configure(config):
    """Note whether this process is an xdist worker (whose reports the controller also receives)."""
    global _controller
    _controller = not hasattr(config, "workerinput")


def pytest_runtest_logreport(report):
    """Append a failed test's report (setup, call or teardown) to the failures file."""
    if report.failed and _controller:
        path = os.path.join(os.environ.get("OUT", "."), "cuda-failures.txt")
        with open(path, "a") as f:
            f.write(f"==== {report.nodeid} ({report.when})\n{report.longreprtext}\n\n")
