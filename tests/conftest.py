import matplotlib
import pytest
import torch

from fastdiff.unet import build_unet

matplotlib.use("Agg")


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return build_unet("tiny").eval()
