"""The SwinDiffuser on several processes at once: every rank denoises its share of the patch batch and an
all-gather hands every rank the whole prediction after each step (`fastdiff.distributed`). Launch with torchrun:

    torchrun --standalone --nproc-per-node 2 -m fastdiff.swin_torchrun sample --model swin/fixed-s8 --photo astronaut --out sr.png
    torchrun --standalone --nproc-per-node 2 -m fastdiff.swin_torchrun bench --size 128 --steps 20 --json bench.json

``gloo`` on the CPU, ``nccl`` on CUDA (one GPU per rank, by LOCAL_RANK); ``--timeout`` bounds the rendezvous and
every collective, so a rank that dies ends the others with an error. Every rank draws the same x_T and the same
ancestral noise, so all ranks hold the same image, bit for bit (tested). Against the one-process image it is equal
within 1/255 in at most a few pixel values: each rank runs the network on a smaller batch of patches, whose
convolutions round differently in the last bits, and the 8-bit output rounds a few of those values the other way
(measured: 1 value of 12,288 after 10 steps, none after 100; the tiny model of the tests matches exactly).
Arguments are checked before any process group starts: a bad one is one line on rank 0 and exit code 2.
`launch` runs a subcommand under torchrun from Python (the benchmark and notebook 04 use it).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from . import distributed
from .checks import check_int
from .files import atomic_write, atomic_write_text
from .runner import DEVICES

_T = 1000           # the steps of make_schedule("linear"), which sample and bench respace


def _load_model(name: str, device):
    from . import zoo
    from .checkpoint import load_model
    if Path(name).suffix == ".pt":
        return load_model(name, map_location=device)
    return zoo.load(name, device=device)[0]


def _lr_image(photo: str, lr_path: str, model) -> torch.Tensor:
    """(1, 3, h, w) in [-1, 1]: a file's pixels, or the centre crop of a built-in photo at the model's HR size,
    downsampled."""
    from .data import downsample, load_photo, to_model_range
    c = model.config
    if lr_path:
        from PIL import Image
        from .data import pil_to_array
        with Image.open(lr_path) as im:
            lr = to_model_range(pil_to_array(im)).permute(2, 0, 1)[None]
        want = c.image_size // c.scale
        if lr.shape[-1] != want or lr.shape[-2] != want:
            raise ValueError(f"{lr_path} is {lr.shape[-1]}x{lr.shape[-2]}; this model takes {want}x{want} LR images")
        return lr
    img = to_model_range(load_photo(photo)[..., :3]).permute(2, 0, 1)
    h, w = img.shape[-2:]
    s = c.image_size
    crop = img[:, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return downsample(crop[None], c.scale)


def sample(args) -> int:
    from .diffusion import make_schedule
    from .studies.patch_parallel_sr import super_resolve
    from .data import to_uint8
    proc = distributed.init(args.device, timeout_s=args.timeout)
    try:
        model = _load_model(args.model, proc.device)
        lr = _lr_image(args.photo, args.lr, model)
        timings: dict = {}
        began = time.perf_counter()
        sr = super_resolve(model, lr, make_schedule("linear"), args.steps, device=proc.device, seed=args.seed,
                           parallel=distributed.PatchShards.from_process(proc), timings=timings)
        seconds = time.perf_counter() - began
        if proc.is_main:
            from PIL import Image
            picture = Image.fromarray(to_uint8(sr)[0].permute(1, 2, 0).numpy())
            atomic_write(args.out, lambda f: picture.save(f, format=Image.registered_extensions()[
                Path(args.out).suffix.lower()]))
            print(f"wrote {args.out}: {args.steps} steps on {proc.world_size} process(es) ({proc.backend}), "
                  f"{seconds:.2f} s; " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    finally:
        distributed.shutdown()
    return 0


def bench(args) -> int:
    """Seconds per image of one sampling call (random weights: time does not depend on them) at ``--size``, with
    32x32 patches, split into the share of the denoiser, pre/post-processing and communication (rank 0's)."""
    from .diffusion import make_schedule
    from .methods.swin_diffuser import build_swin
    from .studies.patch_parallel_sr import CPU_SWIN, CPU_UNET, super_resolve
    from .devices import device_name
    import dataclasses
    proc = distributed.init(args.device, timeout_s=args.timeout)
    try:
        torch.manual_seed(0)
        cfg = dataclasses.replace(CPU_SWIN, image_size=args.size, patches=args.size // 32)
        if args.full_image:     # the baseline: the same U-Net family on the whole image
            cfg = dataclasses.replace(cfg, patches=1, shift_mode="none", step_size=0, position_mask=False)
        model = build_swin(cfg, CPU_UNET)
        lr = torch.rand(1, 3, args.size // 2, args.size // 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
        schedule = make_schedule("linear")
        shards = distributed.PatchShards.from_process(proc)
        super_resolve(model, lr, schedule, args.steps, device=proc.device, parallel=shards)      # warm-up
        runs = []
        for _ in range(args.repeats):
            timings: dict = {}
            if proc.world_size > 1:
                torch.distributed.barrier()
            began = time.perf_counter()
            super_resolve(model, lr, schedule, args.steps, device=proc.device, parallel=shards, timings=timings)
            runs.append({"seconds": time.perf_counter() - began, **timings})
        runs.sort(key=lambda r: r["seconds"])
        median = runs[len(runs) // 2]
        result = {"size": args.size, "model": "full-image baseline" if args.full_image else "SwinDiffuser",
                  "processes": proc.world_size, "backend": proc.backend, "steps": args.steps,
                  "patches": cfg.patches ** 2, "threads per process": torch.get_num_threads(),
                  "device": device_name(proc.device), "seconds per image": median["seconds"],
                  "repeats": args.repeats,
                  "shares": {k: v / median["seconds"] for k, v in median.items() if k != "seconds"}}
        if proc.is_main:
            text = json.dumps(result, indent=1)
            if args.json:
                atomic_write_text(args.json, text)
            print(text)
    finally:
        distributed.shutdown()
    return 0


def launch(nproc: int, subcommand: list[str], *, timeout_s: float = 600, env: dict | None = None) -> str:
    """Run ``python -m fastdiff.swin_torchrun <subcommand>`` under torchrun (``--standalone``: a free port) on ``nproc``
    processes and return its output; a failed rank raises with torchrun's report. The arguments are checked here
    first (a ValueError), before torchrun starts."""
    check_int("nproc", nproc, 1)
    args = _parser().parse_args(subcommand)
    check_args(args)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "fastdiff.swin_torchrun", *subcommand]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"torchrun with {nproc} processes did not finish within {timeout_s:g} s") from e
    if done.returncode != 0:
        raise RuntimeError(f"torchrun with {nproc} processes failed (exit {done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    return done.stdout


def benchmark(*, sizes=(64, 128), processes=(1, 2), steps: int = 20, repeats: int = 3, device: str = "auto",
              timeout_s: float = 600, baseline: bool = True) -> dict:
    """{"sizes": {size: {processes: bench result, "full-image baseline, 1": ...}}, ...}: one torchrun launch per
    (size, process count), and one of the full-image baseline on 1 process (``baseline``). On a CPU
    the cores are divided among the processes (OMP_NUM_THREADS = cores / processes), so 1 and 2 processes use the
    same machine."""
    import tempfile
    from .devices import resolve_device
    check_int("steps", steps, 1, _T)
    check_int("repeats", repeats, 1)
    if not sizes or not processes:
        raise ValueError(f"sizes and processes must not be empty, got {sizes!r} and {processes!r}")
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 32 or size % 32:
            raise ValueError(f"sizes must be multiples of 32 (32x32 patches), got {size!r}")
    for n in processes:
        check_int("processes", n, 1)
    dev = resolve_device(device)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    out = {"steps": steps, "sizes": {}}
    for size in sizes:
        out["sizes"][str(size)] = {}
        for n in processes:
            if dev.type == "cuda" and n > torch.cuda.device_count():
                continue            # NCCL needs one GPU per rank
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "bench.json"
                launch(n, ["bench", "--size", str(size), "--steps", str(steps), "--repeats", str(repeats),
                           "--device", device, "--json", str(path)], timeout_s=timeout_s,
                       env={"OMP_NUM_THREADS": str(max(1, cores // n))} if dev.type == "cpu" else None)
                out["sizes"][str(size)][str(n)] = json.loads(path.read_text())
        if baseline:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "bench.json"
                launch(1, ["bench", "--size", str(size), "--steps", str(steps), "--repeats", str(repeats),
                           "--device", device, "--json", str(path), "--full-image"], timeout_s=timeout_s,
                       env={"OMP_NUM_THREADS": str(cores)} if dev.type == "cpu" else None)
                out["sizes"][str(size)]["full-image baseline, 1"] = json.loads(path.read_text())
    shared = dev.type == "cpu" or (dev.type == "cuda" and torch.cuda.device_count() < max(processes))
    out["shared cores"] = shared
    if dev.type == "cpu":
        out["note"] = f"the processes share one CPU ({cores} cores, divided among them): they compete for it"
    elif shared:
        out["note"] = f"{torch.cuda.device_count()} GPU(s): runs with more processes than GPUs were left out"
    else:
        out["note"] = "one GPU per process"
    return out


class _Parser(argparse.ArgumentParser):
    """Errors are one line, exit code 2; under torchrun every rank parses the same arguments and rank 0 alone
    prints the error."""

    def error(self, message):
        self.exit(2, None if os.environ.get("RANK", "0") != "0" else
                  f"{self.prog}: {message} (see python -m fastdiff.swin_torchrun --help)\n")


def _parser() -> argparse.ArgumentParser:
    from .data import BUILTIN_PHOTOS
    p = _Parser(prog="python -m fastdiff.swin_torchrun", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    s = sub.add_parser("sample", help="super-resolve one image")
    s.add_argument("--model", default="swin/fixed-s8", help="a zoo entry or a checkpoint (.pt)")
    s.add_argument("--photo", default="astronaut", choices=BUILTIN_PHOTOS, help="a built-in photo (its centre crop)")
    s.add_argument("--lr", default="", help="an LR image file instead of --photo")
    s.add_argument("--out", default="sr.png", help="the image file to write (.png, .jpg, ...) in an existing folder")
    b = sub.add_parser("bench", help="time one sampling call")
    b.add_argument("--size", type=int, default=64, help="HR size (a multiple of 32; 32x32 patches)")
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--json", default="")
    b.add_argument("--full-image", action="store_true", help="time the full-image baseline instead (1 patch)")
    for q in (s, b):
        q.add_argument("--steps", type=int, default=100, help=f"sampling steps, 1..{_T}")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--device", default="auto", choices=DEVICES)
        q.add_argument("--timeout", type=float, default=distributed.DEFAULT_TIMEOUT_S,
                       help="seconds for the rendezvous and each collective")
    return p


def check_args(args) -> None:
    """Every argument, before any process group starts (a ValueError that says what is wrong): a bad one would
    otherwise fail on every rank, or only after sampling."""
    from .checks import check_number
    from .devices import resolve_device
    check_int("--steps", args.steps, 1, _T)
    check_int("--seed", args.seed, 0)
    check_number("--timeout", args.timeout, positive=True)
    resolve_device(args.device)                                 # cuda without a GPU: say so now
    if args.command == "bench":
        check_int("--repeats", args.repeats, 1)
        if args.size % 32 or args.size < 32:
            raise ValueError(f"--size must be a multiple of 32, got {args.size}")
        _check_output("--json", args.json)
        return
    from PIL import Image
    _check_output("--out", args.out)
    if Image.registered_extensions().get(Path(args.out).suffix.lower()) not in Image.SAVE:
        raise ValueError(f"--out {args.out}: PIL cannot write {Path(args.out).suffix or 'a file without a suffix'}; "
                         f"end it in .png or .jpg")
    if args.lr and not Path(args.lr).is_file():
        raise ValueError(f"--lr {args.lr} is not a file")
    if Path(args.model).suffix == ".pt":
        if not Path(args.model).is_file():
            raise ValueError(f"--model {args.model} is not a file")
    else:
        from . import zoo
        zoo.entry(args.model)                                   # ZooError (a ValueError) listing the entries


def _check_output(flag: str, path: str) -> None:
    if not path:
        return
    if Path(path).is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name")
    if not Path(path).resolve().parent.is_dir():
        raise ValueError(f"{flag} {path}: the folder {Path(path).parent} does not exist; create it first")


def main(argv=None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    try:
        check_args(args)
    except (ValueError, RuntimeError) as e:
        p.error(str(e))
    return sample(args) if args.command == "sample" else bench(args)


if __name__ == "__main__":
    sys.exit(main())
