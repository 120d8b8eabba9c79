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

# Under pytest-xdist (two workers on two cores) each worker, and every kernel or process it starts, uses one thread.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

# Executed notebooks (nbval, papermill in the tests) print one line per progress bar, not every refresh.
os.environ.setdefault("FASTDIFF_PROGRESS", "final")
