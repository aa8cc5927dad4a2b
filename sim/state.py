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
SPAWN_LOW = (0.35, -0.25)
"""Lower (x, y) corner of the region where objects are placed at reset."""
SPAWN_HIGH = (0.65, 0.25)
WORKSPACE_LOW = (0.25, -0.35, 0.0)
WORKSPACE_HIGH = (0.75, 0.35, 0.45)


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
