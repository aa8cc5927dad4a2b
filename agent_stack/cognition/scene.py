"""The planner's view of the world: which blocks, pads and bin exist and where each block is, symbolically.

Built from the JSON scene state the sim node publishes on `scene_state` (`sim.state.scene_state_to_dict`;
a perception stack on a real robot publishes the same), so the cognition layer needs neither MuJoCo nor
ROS. Geometry becomes relations once, here: a block is "on the table", "in the hand", "in the bin", "on
the <c> pad" or "on the <c> block". Skills' preconditions and effects (`skills.py`) act on this.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

BLOCK_HALF_SIZE = 0.025
"""Blocks are 5 cm cubes (as the tabletop sim)."""
STACK_TOLERANCE = 0.015
"""A block is on another when its centre is within half a block in xy and 2 half sizes (+- this) above."""

TABLE, HAND, BIN = "table", "hand", "bin"


def on_block(color: str) -> str:
    return f"{color}_block"


def on_pad(color: str) -> str:
    return f"{color}_pad"


@dataclass(frozen=True)
class SymbolicScene:
    """Blocks by colour with their location: "table", "hand", "bin", "<c>_pad" or "<c>_block"."""

    blocks: dict[str, str]
    pads: frozenset[str] = frozenset()
    has_bin: bool = True
    positions: dict[str, tuple[float, float, float]] = field(default_factory=dict, compare=False)
    """Block centres (m, base frame) where known, for safety checks (workspace bounds)."""

    def __post_init__(self) -> None:
        for color, where in self.blocks.items():
            if where in (TABLE, HAND, BIN):
                continue
            kind_ok = (where.endswith("_pad") and where[:-4] in self.pads) or \
                      (where.endswith("_block") and where[:-6] in self.blocks and where[:-6] != color)
            if not kind_ok:
                raise ValueError(f"{color} block is at unknown location {where!r}")
        if sum(where == HAND for where in self.blocks.values()) > 1:
            raise ValueError("more than one block is in the hand")

    @property
    def held(self) -> str | None:
        """Colour of the block in the hand, or None."""
        return next((c for c, where in self.blocks.items() if where == HAND), None)

    def is_clear(self, color: str) -> bool:
        """No block rests on this one."""
        return on_block(color) not in self.blocks.values()

    def block_on_pad(self, pad: str) -> str | None:
        return next((c for c, where in self.blocks.items() if where == on_pad(pad)), None)

    def below(self, color: str) -> str | None:
        """Colour of the block this one rests on, or None."""
        where = self.blocks[color]
        return where[:-6] if where.endswith("_block") else None

    def moved(self, color: str, where: str) -> SymbolicScene:
        blocks = dict(self.blocks)
        blocks[color] = where
        return replace(self, blocks=blocks)

    def describe(self) -> str:
        """One line per fact, the scene part of every planner prompt."""
        lines = []
        for color in sorted(self.blocks):
            where = self.blocks[color]
            place = {TABLE: "on the table", HAND: "in the hand", BIN: "in the bin"}.get(
                where, f"on the {where.replace('_', ' ')}")
            lines.append(f"the {color} block is {place}")
        lines.append("pads: " + (", ".join(sorted(self.pads)) if self.pads else "none"))
        lines.append("bin: " + ("yes" if self.has_bin else "no"))
        return "; ".join(lines)

    def to_dict(self) -> dict:
        return {"blocks": dict(self.blocks), "pads": sorted(self.pads), "has_bin": self.has_bin}

    @classmethod
    def from_dict(cls, data: dict) -> SymbolicScene:
        try:
            return cls(blocks={str(c): str(w) for c, w in data["blocks"].items()},
                       pads=frozenset(str(p) for p in data.get("pads", ())), has_bin=bool(data.get("has_bin", True)))
        except (KeyError, AttributeError, TypeError) as error:
            raise ValueError(f"symbolic scene needs 'blocks' (colour -> location): {error!r}") from error


def scene_from_state(state: dict) -> SymbolicScene:
    """The symbolic scene of a `scene_state` JSON dict (objects with kind, color, pos, quat, half_size;
    grasped; table_height). Raises ValueError on a malformed dict."""
    try:
        objects = state["objects"]
        grasped = set(state.get("grasped", ()))
        table = float(state.get("table_height", 0.0))
        blocks = {o["color"]: (name, np.asarray(o["pos"], float)) for name, o in objects.items()
                  if o["kind"] == "block"}
        pads = {o["color"]: (np.asarray(o["pos"], float), np.asarray(o["half_size"], float), o["quat"])
                for o in objects.values() if o["kind"] == "pad"}
        bins = [(np.asarray(o["pos"], float), np.asarray(o["half_size"], float), o["quat"])
                for o in objects.values() if o["kind"] == "bin"]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"malformed scene state: {error!r}") from error
    located = {}
    for color, (name, pos) in blocks.items():
        located[color] = _locate(name, pos, blocks, pads, bins, grasped, table)
    return SymbolicScene(blocks=located, pads=frozenset(pads), has_bin=bool(bins),
                         positions={c: tuple(float(v) for v in pos) for c, (_, pos) in blocks.items()})


def _locate(name, pos, blocks, pads, bins, grasped, table) -> str:
    if name in grasped:
        return HAND
    for centre, half, quat in bins:
        if np.all(np.abs(_local_xy(centre, quat, pos)) <= half[:2]) and pos[2] < table + 3 * BLOCK_HALF_SIZE:
            return BIN
    for color, (other, other_pos) in blocks.items():
        if other != name and np.linalg.norm(pos[:2] - other_pos[:2]) <= BLOCK_HALF_SIZE \
                and abs(pos[2] - other_pos[2] - 2 * BLOCK_HALF_SIZE) < STACK_TOLERANCE:
            return on_block(color)
    for color, (centre, half, quat) in pads.items():
        if np.all(np.abs(_local_xy(centre, quat, pos)) <= half[:2]) and pos[2] < table + 3 * BLOCK_HALF_SIZE:
            return on_pad(color)
    return TABLE


def _local_xy(centre: np.ndarray, quat, point: np.ndarray) -> np.ndarray:
    w, x, y, z = (float(v) for v in quat)
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    c, s = np.cos(yaw), np.sin(yaw)
    d = point[:2] - centre[:2]
    return np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1]])
