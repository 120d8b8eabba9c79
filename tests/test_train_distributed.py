"""Multi-process training through the shared `train()` (DistributedDataParallel, gloo, world size 2, under a
deadline): two processes with batch B make the update of one process with batch 2B, rank 0 alone writes a
checkpoint of the model itself (not of the wrapper), and resuming it stays exact."""
import dataclasses

import torch

from fastdiff.diffusion import make_schedule
from fastdiff.distributed import spawn
from fastdiff.train import TrainConfig, load_checkpoint, train
from fastdiff.unet import build_unet

CFG = TrainConfig(steps=4, batch_size=4, lr=1e-3, log_every=1, checkpoint_every=0, ema_decay=0.9)


def data():
    return torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1


def model():
    torch.manual_seed(0)
    return build_unet("tiny")


def _rank(rank: int, out: str, steps: int):
    from fastdiff import distributed
    distributed.init("cpu", timeout_s=30)
    try:
        r = train(model(), data(), make_schedule("linear"), dataclasses.replace(CFG, steps=steps),
                  checkpoint=f"{out}/ddp.pt", device="cpu", progress=False)
        torch.save({"state": r["model"].state_dict(), "history": r["history"]}, f"{out}/rank{rank}.pt")
    finally:
        distributed.shutdown()


def test_two_processes_with_batch_b_make_the_update_of_one_with_batch_2b(tmp_path):
    spawn(_rank, str(tmp_path), CFG.steps, world_size=2, timeout_s=180)
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    alone = train(model(), data(), make_schedule("linear"), dataclasses.replace(CFG, batch_size=8), device="cpu",
                  progress=False)
    for k, v in alone["model"].state_dict().items():
        assert torch.equal(r0["state"][k], r1["state"][k])                       # the ranks agree exactly
        # gradients averaged by all-reduce: equal up to summation order, which Adam's division by the root of
        # the second moment magnifies for near-zero gradients (to ~1e-5 here; one step moves a weight ~1e-3)
        torch.testing.assert_close(r0["state"][k], v, atol=1e-4, rtol=0)
    for a, b in zip(r0["history"], alone["history"]):
        assert abs(a["loss"] - b["loss"]) < 1e-5                                 # the global batch's loss
    ckpt = load_checkpoint(tmp_path / "ddp.pt")
    assert ckpt["model_spec"]["arch"] == "unet" and ckpt["step"] == CFG.steps
    assert not any(k.startswith("module.") for k in ckpt["model"])


def test_a_distributed_run_resumes_exactly(tmp_path):
    straight, pieces = tmp_path / "straight", tmp_path / "pieces"
    straight.mkdir(), pieces.mkdir()
    spawn(_rank, str(straight), CFG.steps, world_size=2, timeout_s=180)
    spawn(_resume_rank, str(pieces), world_size=2, timeout_s=180)
    a, b = torch.load(straight / "rank0.pt"), torch.load(pieces / "rank0.pt")
    for k in a["state"]:
        assert torch.equal(a["state"][k], b["state"][k])
    assert b["resumed_from"] == 2


def _resume_rank(rank: int, out: str):
    """Two steps, stop (rank 0 writes the checkpoint), then the same run again: it resumes at step 2."""
    from fastdiff import distributed
    distributed.init("cpu", timeout_s=30)
    try:
        path = f"{out}/ddp.pt"
        train(model(), data(), make_schedule("linear"), CFG, checkpoint=path, device="cpu", progress=False, until=2)
        r = train(model(), data(), make_schedule("linear"), CFG, checkpoint=path, device="cpu", progress=False)
        torch.save({"state": r["model"].state_dict(), "resumed_from": r["resumed_from"]}, f"{out}/rank{rank}.pt")
    finally:
        distributed.shutdown()
