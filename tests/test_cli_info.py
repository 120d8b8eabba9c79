"""`fastdiff info` and `fastdiff weights` offline: a clear report, exit 1 when a download was asked for and
failed, exit 0 for a check."""
import urllib.error

import pytest
import torch

from fastdiff import weights
from fastdiff.cli import main
from fastdiff.devices import cpu_features, resolve_dtype


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def refuse(url, dst, *a, **k):
        raise urllib.error.URLError("Name or service not known")
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_info_reports_versions_devices_weights_and_datasets(offline, capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for text in ("torch-fidelity", "cpu", "auto_dtype", "alexnet", "MISSING", "lenet-mnist", "present",
                 "mnist-builtin", "cifar10"):
        assert text in out, text
    assert str(offline) in out


def test_weights_download_failure_exits_nonzero_and_says_where_files_go(offline, capsys):
    assert main(["weights", "--only", "alexnet,lenet-mnist"]) == 1
    out = capsys.readouterr().out
    assert "download failed" in out and "alexnet-owt-7be5be79.pth" in out and str(offline) in out
    assert [p.name for p in offline.glob("*")] == []                      # no partial file left behind
    assert main(["weights", "--check"]) == 0
    assert "MISSING" in capsys.readouterr().out
    assert main(["weights", "--only", "lenet-mnist"]) == 0               # bundled: nothing to fetch
    assert main(["weights", "--only", "resnet"]) == 2
    assert "unknown pretrained file" in capsys.readouterr().err


def test_weights_download_writes_the_file_where_torch_looks(offline, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, dst, **k: open(dst, "wb").write(b"w"))
    assert main(["weights", "--only", "vgg11"]) == 0
    assert weights.is_available("vgg11") and weights.weight_path("vgg11").parent == offline


def test_auto_dtype_on_cpu_follows_amx():
    expected = torch.bfloat16 if cpu_features()["amx"] else torch.float32
    assert resolve_dtype("auto", torch.device("cpu")) is expected
