"""What every typed dataclass config shares: building it from a JSON dict with a one-line error naming
any field it does not have, and saving / loading it as the JSON file beside the weights."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TypeVar

Config = TypeVar("Config")


def config_from_dict(cls: type[Config], data: dict) -> Config:
    """`cls(**data)`, refusing keys that are not init fields of the dataclass `cls`."""
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; known: {sorted(known)}")
    return cls(**data)


class JSONConfig:
    """Mixin of the dataclass configs saved beside weights (`VLAConfig`, `DiffusionConfig`, ...)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        return config_from_dict(cls, data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path):
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read {cls.__name__} from {path}: {error}") from error
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__} file {path} is not a JSON object")  # noqa: TRY004
        return cls.from_dict(data)
