"""Physics-derived scene state shared by the task suite, the experts and the planner's verifier.

`TabletopEnv.scene_state()` fills it from MuJoCo each call; task predicates and experts read only this,
so they never touch MuJoCo directly and can be tested on hand-made states.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.15, 0.12, 1.0),
    "green": (0.15, 0.70, 0.25, 1.0),
    "blue": (0.15, 0.35, 0.85, 1.0),
    "yellow": (0.92, 0.80, 0.15, 1.0),
}
"""Block colours; every colour has one block and one flat target pad of the same colour."""

# Scene geometry, world frame: origin at the robot base on the table top, x forward, y left, z up.
TABLE_HEIGHT = 0.0
BLOCK_HALF_SIZE = 0.025
"""Blocks are 5 cm cubes."""
PAD_HALF_SIZE = (0.06, 0.06, 0.003)
BIN_INNER_HALF_SIZE = (0.08, 0.08)
BIN_WALL_HEIGHT = 0.05
SPAWN_LOW = (0.25, -0.3)
"""Lower (x, y) corner of the region where objects are placed at reset."""
SPAWN_HIGH = (0.62, 0.3)
WORKSPACE_LOW = (0.25, -0.35, 0.0)
WORKSPACE_HIGH = (0.75, 0.35, 0.45)


def colour_renaming(renaming: dict[str, str]) -> dict[str, str]:
    """`renaming` checked to be a one-to-one renaming of COLORS onto themselves, completed with the colours
    it leaves out (they keep their names): {"red": "blue", "blue": "red"} swaps red and blue."""
    unknown = sorted({*renaming, *renaming.values()} - set(COLORS))
    if unknown:
        raise ValueError(f"unknown colour(s) {unknown} in the renaming {renaming}; colours: {sorted(COLORS)}")
    if set(renaming) != set(renaming.values()):
        raise ValueError(f"colour renaming {renaming} is not one-to-one: it must rename the colours "
                         f"{sorted(renaming)} among themselves")
    return {colour: renaming.get(colour, colour) for colour in COLORS}


@dataclass(frozen=True)
class ObjectState:
    """One object on the table, in the world frame (metres, quaternion w x y z)."""

    name: str
    """Unique name, e.g. `red_block`, `green_pad`, `bin`."""
    kind: str
    """`block`, `pad` or `bin`."""
    color: str | None
    """Colour name from COLORS, or None (the bin)."""
    pos: np.ndarray
    """Centre of the object, shape (3,)."""
    quat: np.ndarray
    """Orientation, shape (4,), w x y z."""
    half_size: np.ndarray
    """Half extents of the object's bounding box in its own frame, shape (3,)."""


@dataclass(frozen=True)
class SceneState:
    """Everything a task predicate or expert may read about the world."""

    objects: dict[str, ObjectState]
    ee_pos: np.ndarray
    """Tool centre point (between the fingertips) in the world frame, shape (3,)."""
    ee_quat: np.ndarray
    """Tool orientation, w x y z, shape (4,)."""
    gripper_opening: float
    """Measured opening, 0 closed … 1 open."""
    grasped: frozenset[str]
    """Blocks touched by at least two fingers (or a finger and the palm) and lifted off the table."""
    table_height: float
    """z of the table top."""
    workspace_low: np.ndarray = field(default_factory=lambda: np.array(WORKSPACE_LOW))
    """Lower corner of the reachable box on the table, world frame (x forward, y left)."""
    workspace_high: np.ndarray = field(default_factory=lambda: np.array(WORKSPACE_HIGH))
    """Upper corner of that box."""

    def block(self, color: str) -> ObjectState:
        return self.objects[f"{color}_block"]

    def pad(self, color: str) -> ObjectState:
        return self.objects[f"{color}_pad"]

    @property
    def blocks(self) -> list[ObjectState]:
        return [o for o in self.objects.values() if o.kind == "block"]


def scene_state_to_dict(state: SceneState) -> dict:
    """JSON-ready form, published by the sim node on `scene_state` for experts, planners and observers."""
    return {
        "objects": {
            name: {"kind": o.kind, "color": o.color, "pos": o.pos.tolist(), "quat": o.quat.tolist(),
                   "half_size": o.half_size.tolist()}
            for name, o in state.objects.items()
        },
        "ee_pos": state.ee_pos.tolist(),
        "ee_quat": state.ee_quat.tolist(),
        "gripper_opening": float(state.gripper_opening),
        "grasped": sorted(state.grasped),
        "table_height": float(state.table_height),
        "workspace_low": state.workspace_low.tolist(),
        "workspace_high": state.workspace_high.tolist(),
    }


def scene_state_from_dict(data: dict) -> SceneState:
    """Inverse of `scene_state_to_dict`; a missing key or a wrongly shaped vector raises ValueError."""
    try:
        objects = {
            name: ObjectState(name=name, kind=str(o["kind"]), color=o["color"],
                              pos=_vector(o["pos"], 3, f"{name}.pos"), quat=_vector(o["quat"], 4, f"{name}.quat"),
                              half_size=_vector(o["half_size"], 3, f"{name}.half_size"))
            for name, o in data["objects"].items()
        }
        return SceneState(
            objects=objects,
            ee_pos=_vector(data["ee_pos"], 3, "ee_pos"),
            ee_quat=_vector(data["ee_quat"], 4, "ee_quat"),
            gripper_opening=float(data["gripper_opening"]),
            grasped=frozenset(data["grasped"]),
            table_height=float(data["table_height"]),
            workspace_low=_vector(data.get("workspace_low", WORKSPACE_LOW), 3, "workspace_low"),
            workspace_high=_vector(data.get("workspace_high", WORKSPACE_HIGH), 3, "workspace_high"),
        )
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"scene state is missing or has a malformed field: {error!r}") from error


def _vector(values, length: int, field_name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.shape != (length,) or not np.all(np.isfinite(array)):
        raise ValueError(f"scene state field {field_name} must be {length} finite numbers, got {values!r}")
    return array
