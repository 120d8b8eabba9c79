import os
import matplotlib
import pytest
import torch

from fastdiff.unet import build_unet

matplotlib.use("Agg")


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return build_unet("tiny").eval()

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``--dist loadgroup``): every notebook's cells form one group, so they run in order on one
    worker and one kernel; the notebooks are queued first (the longest work), everything else spreads test by
    test over the workers."""
    from pathlib import Path
    for item in items:
        if str(item.fspath).endswith(".ipynb"):
            item.add_marker(pytest.mark.xdist_group(Path(str(item.fspath)).stem))
    items.sort(key=lambda it: 0 if str(it.fspath).endswith(".ipynb") else 1)   # stable: cell order kept


# Under pytest-xdist (two workers on two cores) each worker, and every kernel or process it starts, uses one thread.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

# Executed notebooks (nbval, papermill in the tests) print one line per progress bar, not every refresh.
os.environ.setdefault("FASTDIFF_PROGRESS", "final")
