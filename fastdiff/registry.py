"""Architectures by registered name, so that a checkpoint rebuilds its model without naming a module path.

A model class registers itself with `register_architecture("name")`; its ``config`` is a dataclass, and
``cls.from_config(dataclasses.asdict(config))`` rebuilds it. A checkpoint stores `model_spec(model)`,
``{"arch": name, "config": {...}}``; wrappers store the spec of the model they wrap inside their own config,
so a stack of methods is one nested spec. `build_model(spec)` looks the name up in `MODEL_CLASSES` and
nothing else: no name read from a file is ever imported.

The methods' architectures register when ``fastdiff.methods`` is imported, which ``import fastdiff`` does.
Checkpoints written before this registry existed named a class (``arch``) and a module; `LEGACY_NAMES` maps
those class names to registered names, and a class may define ``from_legacy(config, state_dict) -> (spec,
state_dict)`` to convert its old config and state-dict keys.
"""
from __future__ import annotations

import dataclasses

from torch import nn

MODEL_CLASSES: dict[str, type[nn.Module]] = {}   # registered name -> model class
LEGACY_NAMES: dict[str, str] = {}     # class name in a pre-registry checkpoint -> registered name


class UnknownArchitectureError(ValueError):
    """A checkpoint or spec names an architecture that is not registered."""


def register_architecture(name: str, *, legacy_class: str | None = None):
    """Class decorator: make ``cls`` buildable as ``name``. ``legacy_class`` is the class name that
    checkpoints from before the registry stored for it (defaults to the class's own name)."""
    def add(cls):
        if name in MODEL_CLASSES and MODEL_CLASSES[name].__qualname__ != cls.__qualname__:
            raise ValueError(f"architecture {name!r} is already registered by {MODEL_CLASSES[name].__qualname__}")
        MODEL_CLASSES[name] = cls
        LEGACY_NAMES[legacy_class or cls.__name__] = name
        cls.arch_name = name
        return cls
    return add


def arch_name(model: nn.Module) -> str:
    name = getattr(type(model), "arch_name", None)
    if name is None or MODEL_CLASSES.get(name) is not type(model):
        raise UnknownArchitectureError(f"{type(model).__name__} is not a registered architecture; decorate it with "
                                       f"@register_architecture(name) so checkpoints can rebuild it")
    return name


def model_spec(model: nn.Module) -> dict:
    """``{"arch": registered name, "config": dataclasses.asdict(model.config)}``."""
    return {"arch": arch_name(model), "config": dataclasses.asdict(model.config)}


def _lookup(name) -> type[nn.Module]:
    if not isinstance(name, str) or name not in MODEL_CLASSES:
        raise UnknownArchitectureError(f"unknown architecture {name!r}; registered: {sorted(MODEL_CLASSES)}")
    return MODEL_CLASSES[name]


def build_model(spec: dict) -> nn.Module:
    """The model a spec describes (untrained weights; load a state dict into it)."""
    if not isinstance(spec, dict) or set(spec) != {"arch", "config"}:
        raise UnknownArchitectureError(f"a model spec is {{'arch': name, 'config': {{...}}}}, got {spec!r:.200}")
    try:
        return _lookup(spec["arch"]).from_config(spec["config"])
    except (TypeError, KeyError) as e:
        raise UnknownArchitectureError(f"the config stored for architecture {spec['arch']!r} does not fit it "
                                       f"({type(e).__name__}: {e})") from e


def from_legacy(arch_class: str, config: dict, state_dict: dict) -> tuple[dict, dict]:
    """(spec, state_dict) for a checkpoint written before the registry: ``arch`` was a class name."""
    if arch_class not in LEGACY_NAMES:
        raise UnknownArchitectureError(
            f"this checkpoint predates the architecture registry and names class {arch_class!r}, which has no "
            f"registered successor (known: {sorted(LEGACY_NAMES)}); retrain it with the current fastdiff")
    cls = _lookup(LEGACY_NAMES[arch_class])
    convert = getattr(cls, "from_legacy", None)
    if convert is None:
        return {"arch": cls.arch_name, "config": config}, state_dict
    return convert(config, state_dict)


def renamed(state_dict: dict, old: str, new: str) -> dict:
    """The state dict with the key prefix ``old`` replaced by ``new`` (for legacy conversions)."""
    return {(new + k[len(old):] if k.startswith(old) else k): v for k, v in state_dict.items()}
