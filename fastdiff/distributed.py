"""Multi-process work on an existing engine: `torch.distributed`, launched by ``torchrun`` (``gloo`` on the CPU,
``nccl`` on CUDA, chosen by the device), with a timeout on every collective so that a dead or stuck rank ends the
run with an error instead of a hang.

    torchrun --standalone --nproc-per-node 2 -m fastdiff.swin_torchrun sample ...    # --standalone picks a free port

Tests start the same code with ``torch.multiprocessing`` (`spawn`, world size 2, a free port, a deadline).
"""
from __future__ import annotations

import datetime as _dt
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .devices import resolve_device

DEFAULT_TIMEOUT_S = 120


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def free_port() -> int:
    """A TCP port nothing listens on now (for a rendezvous started outside torchrun)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Process:
    rank: int
    world_size: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(device: str = "auto", *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Process:
    """Join the process group that ``torchrun`` (or `spawn`) described in the environment (RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT; LOCAL_RANK picks the GPU). Without those variables this is a world of one, and no
    group is created."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Process(0, 1, resolve_device(device), "none")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    backend = backend_for(dev)
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend, rank=rank, world_size=world,
                                    timeout=_dt.timedelta(seconds=timeout_s),
                                    **({"device_id": dev} if dev.type == "cuda" else {}))
        except Exception as e:  # noqa: BLE001 - the rendezvous failed: say which rank and where
            raise RuntimeError(f"rank {rank} of {world} could not join the process group at "
                               f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} within "
                               f"{timeout_s:g} s ({type(e).__name__}: {e}); start every rank with the same torchrun "
                               f"command") from e
    return Process(rank, world, dev, backend)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous share [lo, hi) of n items, as even as possible (the first n % world get one
    more)."""
    base, extra = divmod(n, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


class PatchShards:
    """The patch batch split over the ranks of a process group: `bounds` is this rank's share, `gather`
    reassembles the whole batch on every rank (an all-gather; shares of unequal size are padded)."""

    def __init__(self, rank: int, world_size: int):
        self.rank, self.world_size = rank, world_size

    @classmethod
    def from_process(cls, process: Process) -> "PatchShards":
        return cls(process.rank, process.world_size)

    def bounds(self, n: int) -> tuple[int, int]:
        return shard_bounds(n, self.rank, self.world_size)

    def gather(self, part: torch.Tensor, n: int) -> torch.Tensor:
        if self.world_size == 1:
            return part
        sizes = [shard_bounds(n, r, self.world_size) for r in range(self.world_size)]
        longest = max(hi - lo for lo, hi in sizes)
        padded = part
        if part.shape[0] < longest:
            padded = torch.cat([part, part.new_zeros(longest - part.shape[0], *part.shape[1:])])
        out = [torch.empty_like(padded) for _ in range(self.world_size)]
        try:
            dist.all_gather(out, padded.contiguous())
        except Exception as e:  # noqa: BLE001 - a peer died or timed out
            raise RuntimeError(f"rank {self.rank} of {self.world_size}: the all-gather of the patch predictions "
                               f"failed ({type(e).__name__}: {e}); another rank has probably stopped, see its "
                               f"error above") from e
        return torch.cat([o[: hi - lo] for o, (lo, hi) in zip(out, sizes)])


def _spawned(rank: int, fn, world_size: int, port: int, threads: int, args: tuple):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS=str(threads))
    torch.set_num_threads(threads)
    fn(rank, *args)


def spawn(fn, *args, world_size: int = 2, timeout_s: float = 120, threads: int = 1) -> None:
    """Run ``fn(rank, *args)`` in ``world_size`` fresh processes (torch.multiprocessing, spawn) whose environment
    describes one process group on a free local port, as torchrun's does (so `init` joins it); ``fn`` must be
    importable (a module-level function). Waits at most ``timeout_s``, then kills them; a rank that raised
    re-raises here with its traceback. For tests and notebooks; scripts use torchrun."""
    import time
    import torch.multiprocessing as mp
    ctx = mp.start_processes(_spawned, args=(fn, world_size, free_port(), threads, args), nprocs=world_size,
                             join=False, start_method="spawn")
    began = time.monotonic()
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() - began > timeout_s:
                raise TimeoutError(f"{world_size} processes did not finish within {timeout_s:g} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
