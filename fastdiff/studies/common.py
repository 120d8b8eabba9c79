"""What every study notebook does first: resolve the device and dtype, seed, make the output folder, and say
in one banner what this run is (device, dtype and why, torch, data, weights); and what every study shares to build
its models' labels and floors (the recipes and the zoo-or-train loader are `fastdiff.recipes`). A leaf: it imports no study module
(every study imports it; `fastdiff.studies.zoo_recipes` gathers the studies' recipes)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..devices import cpu_features, dtype_name, environment, instruction_class, resolve_device, resolve_dtype
from ..measure.dtype_choice import resolve_dtype_for


@dataclass
class NotebookRun:
    notebook: str
    profile: str
    seed: int
    device: torch.device
    dtype: torch.dtype
    out: Path
    env: dict = field(default_factory=dict)
    dtype_asked: str = "auto"          # the name given to `setup`; `inference_dtype` resolves it per model
    train_dtype: torch.dtype | None = None   # what `setup` resolved (training's precision); `dtype` may change later

    @property
    def dtype_name(self) -> str:
        """fp32 | bf16 | fp16: the vocabulary of `TrainConfig.amp` and of every results row."""
        return dtype_name(self.dtype)

    def inference_dtype(self, model: torch.nn.Module, example=None, *, batch_size: int | None = None,
                        quiet: bool = False, adopt: bool = True, **options) -> torch.dtype:
        """The precision to sample ``model`` in (issue 30): the dtype asked for when it was fixed; with ``auto``,
        the faster of fp32 and bf16 for this model on this machine, measured once per model and batch shape
        (`fastdiff.measure.dtype_choice.resolve_dtype_for`; on one AMX CPU bf16 for the CIFAR-10 U-Net, fp32 for
        the digits U-Net), not read from the instruction set. ``example`` is (x, t) or (x, t, cond), else the
        model's own inputs of ``batch_size`` (give the sampling batch: the answer depends on it). ``adopt``: from
        here on the run's `dtype` and its labels (``env["dtype"]``, ``env["dtype_choice"]``) are the chosen one, so
        every row sampled after it is labelled with the precision it ran in; training, which a notebook does before
        it samples, used the dtype `setup` resolved (kept as ``train_dtype``). Prints the reason unless ``quiet``."""
        dtype, record = resolve_dtype_for(self.dtype_asked, model, example, device=self.device,
                                          batch_size=batch_size, **options)
        reason = f"{record['reason']}{' (cached)' if record.get('cached') else ''}"
        if adopt:
            self.dtype = dtype
            self.env["dtype"], self.env["dtype_choice"] = dtype_name(dtype), reason
        if not quiet:
            print(f"sampling dtype {record['dtype']}: {reason}")
        return dtype

    def banner(self, *, data: str = "", weights: str = "") -> str:
        lines = [f"{self.notebook} · profile {self.profile} · seed {self.seed}",
                 f"device  {self.env['device']}",
                 f"dtype   {dtype_name(self.train_dtype or self.dtype)}"
                 f"{_dtype_reason(self.device, self.train_dtype or self.dtype, self.dtype_asked)}",
                 f"torch   {self.env['torch']} · python {self.env['python']}"]
        if data:
            lines.append(f"data    {data}")
        if weights:
            lines.append(f"weights {weights}")
        lines.append(f"output  {self.out}")
        return "\n".join(lines)


def _dtype_reason(device: torch.device, dtype: torch.dtype, asked: str = "auto") -> str:
    if asked != "auto":
        return " (as asked)"
    why = ("bf16 on a GPU with bf16 or a CPU with AMX, else fp32" if dtype == torch.bfloat16 or device.type == "cuda"
           or cpu_features()["amx"] else f"bf16 only on AMX CPUs and bf16 GPUs; this is an {instruction_class()} CPU")
    return (f" for training (auto: {why}); for sampling, notebooks 00-03 time fp32 against bf16 on their model "
            f"where they load it and keep the faster (printed there)")


def setup(notebook: str, *, profile: str, device: str = "auto", dtype: str = "auto", seed: int = 0,
          output_dir: str | Path = "../runs/interactive", data: str = "", weights: str = "",
          quiet: bool = False) -> NotebookRun:
    """Resolve ``device`` (auto | cpu | cuda) and ``dtype`` (auto | fp32 | bf16 | fp16), seed torch, create
    ``output_dir``, and print the banner (unless ``quiet``)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(device, str):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'")
    if not isinstance(output_dir, (str, Path)) or not str(output_dir).strip():
        raise ValueError(f"output_dir must be a folder path (e.g. '../runs/interactive'), got {output_dir!r}")
    torch.manual_seed(seed)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"output_dir {str(out)!r} cannot be created ({e.strerror}); choose a writable folder") from e
    run = NotebookRun(notebook, profile, seed, dev, dt, out, environment(dev, dt), dtype_asked=dtype, train_dtype=dt)
    if not quiet:
        print(run.banner(data=data, weights=weights))
    return run


# ----------------------------------------------------------------------------------------------- the zoo's recipes

def resolve_weights(weights: str, profile: str) -> str:
    """``auto`` is ``zoo`` on the quick profile (the shipped models were trained with its recipe) and ``train``
    on the others (the full profile's larger models, the smoke profile's seconds of training)."""
    if weights == "auto":
        return "zoo" if profile == "quick" else "train"
    if weights not in ("zoo", "train"):
        raise ValueError(f"weights must be 'auto', 'zoo' (load the shipped trained models) or 'train' (train them "
                         f"here under the profile), got {weights!r}")
    if weights == "zoo" and profile != "quick":
        print(f"note: the zoo models were trained with the quick profile's recipe; profile {profile!r} evaluates "
              f"them with its own settings")
    return weights


# ----------------------------------------------------------------------------------------- the notebooks' tables

def weights_label(provenance: dict[str, str]) -> str:
    """Where every model's weights came from, in one line ("name: provenance; ..."): a results file's weights."""
    return "; ".join(f"{name}: {p}" for name, p in provenance.items())


def real_floor(score, images: torch.Tensor, n: int, *, seed: int = 0) -> dict:
    """``score`` (a `fastdiff.measure.metrics.sample_scorer`) of ``n`` real held-out images drawn by a seeded
    permutation: the floor that samples' scores are read against."""
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return score(images[pick])


# Verdicts that judge this project's own targets, not a claim of a paper: (study, claim key). Shown with the claims,
# never counted among them (`fastdiff.studies.report.verdict_counts`).
PROJECT_TARGETS = {("05_performance", "peer")}
