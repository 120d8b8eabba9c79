"""The int8 dynamic quantization rung (`inference_ladder.INT8_DYNAMIC`, torchao): a prepared copy has int8 weights
in every Linear and fp32 convolutions, stays close to fp32, leaves the given model as it was, and quantizes the
U-Net inside a method wrapper as well."""
import copy
import sys

import pytest
import torch
from torch import nn

from fastdiff.diffusion import make_schedule
from fastdiff.methods.deep_cache import DeepCache
from fastdiff.sampling import DDIM, sampler_call
from fastdiff.studies.inference_ladder import INT8_DYNAMIC, LADDER, Rung, prepare
from fastdiff.unet import build_unet

Int8Tensor = pytest.importorskip("torchao.quantization").Int8Tensor
# max |eps(int8) - eps(fp32)| of one call of the tiny random U-Net (|eps| ~ 1): 1.1e-3 to 2.0e-3 over seeds 0-4
# (torch 2.15, torchao 0.18, CPU); after 4 DDIM steps, 9e-4 (8e-4 under DeepCache)
ATOL = 1e-2


def _tiny(seed=0):
    torch.manual_seed(seed)
    return build_unet("tiny").eval()


def test_the_rung_makes_every_linear_int8_and_leaves_the_convolutions_fp32():
    model, _ = prepare(_tiny(), INT8_DYNAMIC, device="cpu")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(linears) == 10 and len(convs) > 0           # the time embedding (2), each ResBlock's emb_proj (8)
    assert all(isinstance(m.weight, Int8Tensor) for m in linears)
    assert all(type(m.weight) is nn.Parameter and m.weight.dtype == torch.float32 for m in convs)
    assert INT8_DYNAMIC.name not in {r.name for r in LADDER}   # outside study 5's ladder (no FD measured there)


@pytest.mark.parametrize("seed", [0, 1])
def test_one_call_stays_close_to_fp32_and_the_model_is_untouched(seed):
    model = _tiny(seed)
    before = copy.deepcopy(model.state_dict())
    quantized, compile_s = prepare(model, INT8_DYNAMIC, device="cpu")
    assert compile_s == 0
    x, t, _ = model.example_inputs(4, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        fp32, int8 = model(x, t), quantized(x, t)
    assert 0 < (int8 - fp32).abs().max() < ATOL            # quantized (not bit-identical), and close
    assert all(type(p) is nn.Parameter for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_the_rung_quantizes_the_u_net_inside_a_method_wrapper():
    model = _tiny()
    wrapped = DeepCache(model, interval=2)
    quantized, _ = prepare(wrapped, INT8_DYNAMIC, device="cpu", warm=False)
    assert isinstance(quantized, DeepCache) and quantized is not wrapped
    assert all(isinstance(m.weight, Int8Tensor) for m in quantized.modules() if isinstance(m, nn.Linear))
    assert all(type(m.weight) is nn.Parameter for m in wrapped.modules() if isinstance(m, nn.Linear))
    schedule = make_schedule("linear", 50)
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    fp32 = sampler_call(wrapped, schedule, DDIM, 4, x_T, seed=0)()
    int8 = sampler_call(quantized, schedule, DDIM, 4, x_T, seed=0)()
    torch.testing.assert_close(int8, fp32, atol=ATOL, rtol=0)
    assert quantized.calls == {"full": 2, "partial": 2}         # still caching: full, partial, full, partial


def test_without_torchao_the_rung_names_the_install_and_an_unknown_quantization_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)          # as if torchao were not installed
    with pytest.raises(ImportError, match=r"pip install 'torchao"):
        prepare(_tiny(), INT8_DYNAMIC, device="cpu")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="unknown quantization 'int4'"):
        prepare(_tiny(), Rung("int4", quantize="int4"), device="cpu")
