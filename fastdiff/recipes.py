"""How the zoo's models come to be: a `Recipe` per zoo entry (what `fastdiff train NAME` runs, resumably, and
exports), the seeds of the retraining replicas that measure the spread of training (`REPLICA_SEEDS`,
`replica_name`), a seeded builder, and `zoo_or_train_each`, which gives a notebook its models from the zoo or trains
them under its profile. Infrastructure beside `fastdiff.zoo`: it imports no study (the studies' recipes are
gathered by `fastdiff.studies.zoo_recipes`)."""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from . import zoo
from .checks import check_bool


def slug(name: str) -> str:
    """A label as a file-name part (checkpoints, zoo names): lower case, runs of other characters as one
    underscore."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@dataclass
class Recipe:
    """How one zoo entry is trained: ``fastdiff train NAME`` runs it (resumably) and exports the result."""
    name: str                                   # "<study>/<model>", the zoo entry it produces
    description: str
    build: object                               # () -> untrained model (seeded inside)
    data: object                                # () -> training data (tensor or dataset)
    data_label: str
    schedule: str = "linear"                    # fastdiff.diffusion.make_schedule name
    train: object = None                        # TrainConfig
    timesteps: object = None                    # (model, schedule) -> timestep sampler, or None
    evaluate: object = None                     # (device) -> evaluate(ema) -> dict, logged into the curves
    evaluate_every: int = 0
    loss: object = None                         # (model, schedule) -> loss_fn (`fastdiff.train.train`), or None:
                                                # the noise loss; its ``timesteps`` hook, if any, draws the timesteps


# The spread of retraining: a calibration set of zoo models is trained again with these seeds (initial weights,
# data order and noise all change with the seed), as `<entry>-seed<k>`; seed 0 is the entry itself.
REPLICA_SEEDS = (1, 2)


def replica_name(entry: str, seed: int) -> str:
    """The zoo name of ``entry`` retrained with ``seed`` (seed 0: ``entry`` itself)."""
    return entry if seed == 0 else f"{entry}-seed{seed}"


def seeded(build, seed: int = 0):
    """``build`` wrapped so that every call starts from the same initial weights."""
    def make():
        torch.manual_seed(seed)
        return build()
    return make


def zoo_or_train_each(entries: dict[str, str], *, weights: str, run, prefix: str, train_one,
                      resume: bool = False):
    """The models a notebook evaluates, one at a time: ``weights="zoo"`` loads each zoo entry (label -> entry);
    ``weights="train"`` calls ``train_one(label, checkpoint_path, resume)`` (a `fastdiff.train.train` result) with
    the checkpoint ``<run.out>/<prefix>_<label>.pt``, deleted first unless ``resume``. Returns ({label: EMA
    model}, {label: provenance}, {label: {"steps", "minutes", "final loss"}})."""
    resume = check_bool("resume", resume)
    models, provenance, info = {}, {}, {}
    for label, entry in entries.items():
        if weights == "zoo":
            models[label], e = zoo.load(entry, device=run.device)
            provenance[label] = e.provenance
            info[label] = {"steps": e.steps, "minutes": e.wall_seconds / 60, "final loss": e.final_loss}
            continue
        if weights != "train":
            raise ValueError(f"weights must be 'zoo' or 'train', got {weights!r}")
        path = run.out / f"{prefix}_{slug(label)}.pt"
        if not resume:
            path.unlink(missing_ok=True)
        r = train_one(label, path, resume)
        models[label] = r["ema"].eval()
        provenance[label] = ("resumed" if r["resumed_from"] is not None else "trained") + \
            f" in this run ({r['step']} steps, profile {run.profile})"
        info[label] = {"steps": r["step"], "minutes": r["history"][-1]["seconds"] / 60,
                       "final loss": r["history"][-1]["loss"]}
    return models, provenance, info
