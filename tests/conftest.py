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

# Executed notebooks (nbval, papermill in the tests) print one line per progress bar, not every refresh.
os.environ.setdefault("FASTDIFF_PROGRESS", "final")
