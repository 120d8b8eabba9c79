import math
import os
import signal

import pytest
import torch

from fastdiff.data import mnist_digits
from fastdiff.diffusion import make_schedule
from fastdiff.train import TrainConfig, load_checkpoint, load_model, lr_at, train
from fastdiff.unet import build_unet

SCHEDULE = make_schedule("linear", 100)


def digits8():
    return torch.nn.functional.interpolate(mnist_digits(32)[0][:64], size=8, mode="area")


def fresh_model():
    torch.manual_seed(0)
    return build_unet("tiny", dropout=0.1)  # dropout exercises the global RNG state


def cfg(**kw):
    base = dict(steps=8, batch_size=4, lr=1e-3, warmup_steps=3, cosine_decay=True, ema_decay=0.9, log_every=1)
    return TrainConfig(**{**base, **kw})


def assert_same_weights(a, b):
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("how", ["exception", "sigint"])
def test_interrupt_saves_and_resume_is_exact(tmp_path, how):
    """Interrupted in step 4, then resumed: equal to 8 straight steps, weight for weight. "sigint" sends a real
    SIGINT (what Ctrl-C and a Jupyter kernel interrupt send) in the middle of step 4's forward pass: the loop
    must finish that step before saving, so the checkpoint holds step 4, not a half-updated model."""
    data = digits8()
    handler_before = signal.getsignal(signal.SIGINT)   # SIG_IGN when the test run itself is a background job
    straight = train(fresh_model(), data, SCHEDULE, cfg(), progress=False)
    ckpt = tmp_path / "run.pt"
    model, forwards = fresh_model(), []

    def sigint_in_forward_4(module, args):
        forwards.append(1)
        if len(forwards) == 4:
            os.kill(os.getpid(), signal.SIGINT)

    def raise_after_step_4(step, loss):
        if step == 4:
            raise KeyboardInterrupt
    if how == "sigint":
        handle = model.register_forward_pre_hook(sigint_in_forward_4)
    with pytest.raises(KeyboardInterrupt):
        train(model, data, SCHEDULE, cfg(), checkpoint=ckpt, progress=False,
              callback=raise_after_step_4 if how == "exception" else None)
    if how == "sigint":
        handle.remove()
    assert load_checkpoint(ckpt)["step"] == 4
    assert signal.getsignal(signal.SIGINT) is handler_before  # our handler is removed again
    resumed = train(fresh_model(), data, SCHEDULE, cfg(), checkpoint=ckpt, progress=False)

    assert resumed["step"] == 8
    assert_same_weights(straight["model"], resumed["model"])
    assert_same_weights(straight["ema"], resumed["ema"])
    assert [h["loss"] for h in straight["history"]] == [h["loss"] for h in resumed["history"]]


def test_periodic_checkpoints_resume_exactly(tmp_path):
    data = digits8()
    ckpt = tmp_path / "run.pt"
    first = train(fresh_model(), data, SCHEDULE, cfg(steps=4, checkpoint_every=2), checkpoint=ckpt, progress=False)
    assert first["step"] == 4 and load_checkpoint(ckpt)["step"] == 4
    # N + resume + N == 2N (no cosine decay here, so the LR schedule does not depend on the total)
    both = train(fresh_model(), data, SCHEDULE, cfg(steps=8, cosine_decay=False), progress=False)
    resumed = train(fresh_model(), data, SCHEDULE, cfg(steps=8, cosine_decay=False, checkpoint_every=2),
                    checkpoint=tmp_path / "b.pt", progress=False)
    assert_same_weights(both["model"], resumed["model"])
    half = train(fresh_model(), data, SCHEDULE, cfg(steps=4, cosine_decay=False), checkpoint=tmp_path / "c.pt",
                 progress=False)
    again = train(fresh_model(), data, SCHEDULE, cfg(steps=8, cosine_decay=False), checkpoint=tmp_path / "c.pt",
                  progress=False)
    assert half["step"] == 4
    assert_same_weights(both["model"], again["model"])
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries


def test_checkpoint_rebuilds_model(tmp_path):
    out = train(fresh_model(), digits8(), SCHEDULE, cfg(steps=2), checkpoint=tmp_path / "m.pt", progress=False)
    model = load_model(tmp_path / "m.pt")
    assert_same_weights(model, out["ema"])
    assert model.config == out["model"].config
    with pytest.raises(ValueError, match="different model"):
        train(build_unet("tiny", base_channels=16), digits8(), SCHEDULE, cfg(), checkpoint=tmp_path / "m.pt",
              progress=False)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    ckpt = tmp_path / "run.pt"
    data = digits8()
    train(fresh_model(), data, SCHEDULE, cfg(steps=2), checkpoint=ckpt, progress=False)
    before = load_checkpoint(ckpt)["model"]
    bad = data.clone()
    bad[:] = float("nan")
    with pytest.raises(FloatingPointError, match=r"at step 3.*step 2\) is kept"):
        train(fresh_model(), bad, SCHEDULE, cfg(steps=4), checkpoint=ckpt, progress=False)
    after = load_checkpoint(ckpt)
    assert after["step"] == 2
    assert all(torch.equal(before[k], after["model"][k]) for k in before)


def test_conditional_batches_and_bf16(tmp_path):
    from fastdiff.data import SRPairs
    hr = torch.rand(8, 1, 8, 8) * 2 - 1
    torch.manual_seed(0)
    model = build_unet("tiny", cond_channels=1)
    out = train(model, SRPairs(hr, 2), SCHEDULE, cfg(steps=2, amp="bf16", loss="l1"), progress=False)
    assert out["step"] == 2 and math.isfinite(out["history"][-1]["loss"])


def test_lr_schedule_and_config_errors():
    c = TrainConfig(steps=100, lr=1.0, warmup_steps=10, cosine_decay=True, min_lr_ratio=0.1)
    assert lr_at(c, 0) == pytest.approx(0.1)
    assert lr_at(c, 9) == pytest.approx(1.0)
    assert lr_at(c, 100) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="amp"):
        TrainConfig(amp="int8")
