"""A study's profiles (``quick``, ``paper`` ...) are frozen dataclasses; a notebook picks one by name and overrides
some fields from its parameters cell, each override checked against the field it replaces."""
from __future__ import annotations

import dataclasses

from .checks import check_int, check_number


def _check_field(name: str, value, current):
    """An override of a profile field, checked against the type of the value it replaces."""
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    elif isinstance(current, int):
        check_int(name, value, low=0 if name.endswith("seed") else 1)
    elif isinstance(current, float):
        check_number(name, value)
    elif isinstance(current, str) and not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


def with_overrides(profile, **overrides):
    """A copy of a profile dataclass with some fields replaced; ``train_<field>`` reaches into its ``train``
    (TrainConfig). None keeps the profile's value, so notebook parameters can default to None. Every override is
    checked against the field it replaces (a step count must be a positive integer ...), and an error names the
    parameter as the notebook spells it."""
    fields = {f.name for f in dataclasses.fields(profile)}
    train_fields = {f.name for f in dataclasses.fields(profile.train)} if "train" in fields else set()
    unknown = [k for k in overrides if k not in fields and not (k.startswith("train_") and k[6:] in train_fields)]
    if unknown:
        raise ValueError(f"unknown profile settings {unknown}; this profile has {sorted(fields)}")
    train_kw = {k[len("train_"):]: _check_field(k, v, getattr(profile.train, k[len("train_"):]))
                for k, v in overrides.items() if k.startswith("train_") and v is not None and k[6:] in train_fields}
    other = {k: _check_field(k, v, getattr(profile, k)) for k, v in overrides.items()
             if not (k.startswith("train_") and k[6:] in train_fields) and v is not None}
    if not train_kw:
        return dataclasses.replace(profile, **other)
    try:
        train = dataclasses.replace(profile.train, **train_kw)
    except ValueError as e:   # TrainConfig's own checks, named as the notebook parameter
        raise ValueError(str(e).replace("TrainConfig.", "train_")) from None
    return dataclasses.replace(profile, train=train, **other)


def profile_by_name(profiles: dict, name: str, **overrides):
    """``profiles[name]`` with `with_overrides` applied, or a ValueError listing the profiles."""
    if name not in profiles:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(profiles)}")
    return with_overrides(profiles[name], **overrides)
