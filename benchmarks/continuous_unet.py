"""Continuous U-Net (study 3): the U-Net against the cU-Net and its ablations, side by side on one device.

    python benchmarks/continuous_unet.py [--device auto] [--batch 16] [--rounds 5] [--steps 20] [--size cpu]
                                         [--out results]

For every model: parameters, FLOPs of one U-Net call with the solver's real number of evaluations of f (NFE), the
time of one call and of a whole DDPM sampling run (``--steps``), and peak memory; all timings in interleaved
rounds, so a slow spell lands on every model. Then the fixed-step solve itself on three backends (the hand-rolled
loop, torchdiffeq's odeint, torchode), and one training step through the solver directly against
torchdiffeq's odeint_adjoint (time and peak memory). Random weights: time does not depend on them for fixed-step
solvers. Writes <out>/<cpu|cuda>/continuous_unet.json. The paper timed on a CPU only ("ODE solvers do not use GPUs
effectively"); run this on a GPU to test that.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

from fastdiff.devices import cpu_features, environment, resolve_device
from fastdiff.diffusion import make_schedule, noise_loss
from fastdiff.measure.bench import count_flops, interleaved, peak_memory
from fastdiff.methods.ode_unet import ODEBlock, fixed_step, nfe, reset_nfe, set_solver
from fastdiff.portable_json import save_results
from fastdiff.sampling import DDPM, sampler_call
from fastdiff.studies import continuous_unet as study


def torchode_solve(block: ODEBlock, x0: torch.Tensor, emb: torch.Tensor, steps: int) -> torch.Tensor:
    """The same Euler solve of (x, v) through torchode (a flat state per sample, fixed steps)."""
    import torchode as to
    block.f.condition(emb)
    v0 = block.g(x0)
    shape, n = x0.shape, x0[0].numel()

    def vector(t, y):
        x, v = y[:, :n].reshape(shape), y[:, n:].reshape(shape)
        return torch.cat([v.flatten(1), block.f(t[0], x, v).flatten(1)], dim=1)
    y0 = torch.cat([x0.flatten(1), v0.flatten(1)], dim=1)
    term = to.ODETerm(vector)
    solver = to.AutoDiffAdjoint(to.Euler(term), to.FixedStepController())
    t_eval = torch.linspace(0, 1, 2, device=x0.device).expand(len(x0), 2)
    sol = solver.solve(to.InitialValueProblem(y0=y0, t_eval=t_eval),
                       dt0=torch.full((len(x0),), 1.0 / steps, device=x0.device))
    return sol.ys[:, -1, :n].reshape(shape)


def backends(device, batch: int, rounds: int) -> list[dict]:
    """One dynamic block of the cU-Net's widest level, Euler with 4 steps, on the three backends."""
    torch.manual_seed(0)
    block = ODEBlock(64, emb_dim=64, norm_groups=8, options={"solver": "euler", "step_size": 0.25}).to(device)
    torch.nn.init.normal_(block.g[-1].weight, std=0.1)
    ref = copy.deepcopy(block)
    ref.options = {**ref.options, "backend": "torchdiffeq"}
    x = torch.randn(batch, 64, 8, 8, device=device)
    emb = torch.randn(batch, 64, device=device)
    calls = {"hand-rolled loop": lambda: block(x, emb), "torchdiffeq odeint": lambda: ref(x, emb)}
    try:
        import torchode  # noqa: F401
        calls["torchode (AutoDiffAdjoint, fixed steps)"] = lambda: torchode_solve(block, x, emb, 4)
    except ImportError:
        print("torchode is not installed: skipped", file=sys.stderr)
    with torch.no_grad():
        out = {name: fn() for name, fn in calls.items()}
        times = interleaved(calls, device=device, rounds=rounds, warmup=1)
    base = out["hand-rolled loop"]
    return [{"backend": name, "ms per solve": 1e3 * t["median_s"], "IQR (ms)": 1e3 * t["iqr_s"],
             "max |difference| from the loop": (out[name] - base).abs().max().item()} for name, t in times.items()]


def adjoint_vs_direct(device, batch: int, rounds: int) -> list[dict]:
    """One training step of the CPU-size cU-Net (RK4, 2 steps), backpropagating through the solver (loop or
    torchdiffeq) or with odeint_adjoint: time and peak memory."""
    schedule = make_schedule("linear").to(device)
    x0 = torch.randn(batch, 1, 16, 16, generator=torch.Generator().manual_seed(0)).to(device)
    settings = {"direct, hand-rolled loop": {"backend": "loop"}, "direct, torchdiffeq": {"backend": "torchdiffeq"},
                "odeint_adjoint": {"backend": "torchdiffeq", "adjoint": True}}
    calls, models = {}, {}
    for name, s in settings.items():
        model = set_solver(study.build("cU-Net").to(device), step_size=0.5, **s)
        models[name] = model

        def step(model=model):
            model.zero_grad(set_to_none=True)
            loss = noise_loss(model, x0, schedule, generator=torch.Generator(device).manual_seed(1))
            loss.backward()
            return loss
        calls[name] = step
    times = interleaved(calls, device=device, rounds=rounds, warmup=1)
    return [{"training step": name, "ms": 1e3 * t["median_s"], "IQR (ms)": 1e3 * t["iqr_s"],
             **peak_memory(calls[name], device=device)} for name, t in times.items()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=None, help="default: cpu 16, cuda 256")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20, help="DDPM sampling steps for the time per sample")
    p.add_argument("--size", default="cpu", choices=("cpu", "paper"))
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    batch = args.batch or (256 if device.type == "cuda" else 16)
    schedule = make_schedule("linear")
    models = {name: study.build(name, size=args.size).to(device).eval() for name in ["U-Net", *study.ABLATIONS]}
    info, call, sample = {}, {}, {}
    for name, model in models.items():
        x, t, _ = model.example_inputs(batch, generator=torch.Generator().manual_seed(0))
        reset_nfe(model)
        with torch.no_grad():
            flops = count_flops(lambda: model(x[:1], t[:1]))
        info[name] = {"parameters": sum(q.numel() for q in model.parameters()), "GFLOPs per call (1 image)": flops / 1e9,
                      "NFE per call": nfe(model)}
        call[name] = lambda model=model, x=x, t=t: model(x, t)
        sample[name] = sampler_call(model, schedule, DDPM, args.steps, x, seed=0)
    with torch.no_grad():
        call_t = interleaved(call, device=device, rounds=args.rounds, warmup=1)
        sample_t = interleaved(sample, device=device, rounds=max(1, args.rounds // 2), warmup=1)
        memory = {name: peak_memory(fn, device=device) for name, fn in call.items()}
    rows = []
    for name in models:
        rows.append({"model": name, **info[name], "ms per call": 1e3 * call_t[name]["median_s"],
                     "ms per call IQR": 1e3 * call_t[name]["iqr_s"],
                     "ms per sample": 1e3 * sample_t[name]["median_s"] / batch,
                     **{k: v for k, v in memory[name].items()}})
        print(f"{name:>14}: {rows[-1]['ms per call']:.1f} ms per call of {batch}, {rows[-1]['ms per sample']:.1f} ms "
              f"per sample ({args.steps} DDPM steps), NFE {info[name]['NFE per call']}", flush=True)
    base = rows[0]
    for r in rows:
        r["time vs U-Net"] = r["ms per sample"] / base["ms per sample"]
    result = {"benchmark": "continuous_unet", "environment": environment(device), "cpu": cpu_features(),
              "size": args.size, "batch": batch, "sampling": f"DDPM, {args.steps} steps", "solver": study.SOLVER,
              "weights": "random (timing only; fixed-step solvers do the same work whatever the weights)",
              "rounds": args.rounds, "rows": rows, "backends": backends(device, batch, args.rounds),
              "training_step": adjoint_vs_direct(device, min(batch, 32), max(1, args.rounds // 2))}
    for r in result["backends"]:
        print(f"{r['backend']:>40}: {r['ms per solve']:.2f} ms per solve")
    for r in result["training_step"]:
        print(f"{r['training step']:>26}: {r['ms']:.1f} ms, peak {r['peak_memory_mb']:.0f} MB")
    path = save_results(args.out / device.type, "continuous_unet", result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
