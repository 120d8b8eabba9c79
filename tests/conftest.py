import os
from pathlib import Path

import matplotlib
import pytest
import torch

from fastdiff.unet import build_unet

matplotlib.use("Agg")

# Test files queued right after the notebooks: the longest units of work after them (measured in CI's --durations),
# so that no long file is left for the end of a run on two workers.
HEAVY_FILES = ("test_notebooks_smoke.py", "test_train_distributed.py", "test_swindiffuser.py", "test_browser_game.py")


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return build_unet("tiny").eval()


def _queue_position(item) -> tuple[int, int]:
    name = Path(str(item.fspath)).name
    if name.endswith(".ipynb"):
        return (0, 0)
    return (1, HEAVY_FILES.index(name)) if name in HEAVY_FILES else (2, 0)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, ``--dist loadfile`` (pyproject.toml) sends every test file, each notebook included, to one
    worker as one unit: a notebook's cells run in order in one kernel. This only orders the queue: the notebooks
    first (the longest units), then the heavy test files, then the rest (``--no-loadscope-reorder`` keeps it)."""
    items.sort(key=_queue_position)   # stable: the order of cells and of tests within a file is kept


# ------------------------------------------------------------------------- one notebook, one kernel (checked)
# Every executed cell reports the kernel it ran in (worker process and kernel object); the controller fails the run
# if the cells of one notebook ran in two kernels (which turns each later cell into a NameError, far from the cause).

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    kernel = getattr(item.parent, "kernel", None)
    if call.when == "call" and str(item.fspath).endswith(".ipynb") and kernel is not None:
        outcome.get_result().user_properties.append(("nbkernel", f"{os.getpid()}:{id(kernel)}"))


_kernels: dict[str, set[str]] = {}


def pytest_runtest_logreport(report):
    for key, value in report.user_properties:
        if key == "nbkernel":
            _kernels.setdefault(report.nodeid.split("::", 1)[0], set()).add(value)


def split_notebooks() -> dict[str, int]:
    """Notebooks whose cells ran in more than one kernel in this run: {notebook: number of kernels}."""
    return {nb: len(k) for nb, k in _kernels.items() if len(k) > 1}


def pytest_sessionfinish(session, exitstatus):
    split = split_notebooks()
    if split and not os.environ.get("PYTEST_XDIST_WORKER"):
        for nb, n in split.items():
            print(f"\nERROR: the cells of {nb} ran in {n} kernels; each notebook must run in one (see tests/conftest.py)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# Under pytest-xdist (two workers on two cores) each worker, and every kernel or process it starts, uses one thread.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

# Executed notebooks (nbval, papermill in the tests) print one line per progress bar, not every refresh.
os.environ.setdefault("FASTDIFF_PROGRESS", "final")
