"""What every typed dataclass config shares: building it from a JSON dict with a one-line error naming
any field it does not have."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

Config = TypeVar("Config")


def config_from_dict(cls: type[Config], data: dict) -> Config:
    """`cls(**data)`, refusing keys that are not init fields of the dataclass `cls`."""
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; known: {sorted(known)}")
    return cls(**data)
