"""Language task suite for the tabletop: families of block tasks, their instructions and success predicates.

A family (e.g. `stack`) is registered once with `@register_family`: its argument names, its phrasings,
its success predicate over a `SceneState`, and optionally an `arrange` that edits the sampled layout
(unstack starts with X on Y). A `Task` is one instance: family + colours. The env calls
`task.arrange(layout, rng)` at reset and `task.success(state)` after every step.

Frames. Everything is in the world frame, which is the robot base frame: x forward (away from the
robot), y left, z up. "push left" means +y, "push right" -y, "push forward" +x, "push backward" -x.

Tolerances are human-plausible: "on" = centres within half a block in xy and one block height apart
(+-1.2 cm), resting and released; "on a pad" = block centre inside the pad's square, resting on the table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sim.scene import (BIN_NAME, HOME_TCP_POS, TOP_DOWN_QUAT, LayoutClearance, bin_half_size, default_z,
                       footprint_half_size, object_kind, rectangles_overlap, yaw_to_quat)
from sim.state import (BIN_INNER_HALF_SIZE, BIN_WALL_HEIGHT, BLOCK_HALF_SIZE, COLORS, PAD_HALF_SIZE,
                       SPAWN_HIGH, SPAWN_LOW, ObjectState, SceneState, colour_renaming)

# --- tolerances (metres) ------------------------------------------------------------------------------------
LIFT_HEIGHT = 0.10
"""pick_up: the block's bottom must be this far above the table, held in the hand."""
REST_TOLERANCE = 0.012
"""A block rests when its centre is within this of its resting height (on the table or on a block)."""
PUSH_DISTANCE = 0.10
"""push_*: displacement along the named direction since the task began."""
PUSH_LATERAL_RATIO = 1.0
"""push_*: the sideways drift may be at most this times the displacement along the direction."""
NEAR_DISTANCE = 0.08
"""put_near: centre-to-centre distance in xy."""
BETWEEN_LATERAL = 0.04
"""put_between: largest distance of X from the line through Y and Z."""
BESIDE_RANGE = (0.06, 0.16)
"""put_left_of / put_right_of: sideways (y) gap between centres; the forward (x) offset stays within
BESIDE_ALIGN."""
BESIDE_ALIGN = 0.05
HOLD_RADIUS = 0.03
"""A block with the TCP this close to its centre and the hand less than half open still counts as held."""

PUSH_DIRECTIONS: dict[str, np.ndarray] = {
    "left": np.array([0.0, 1.0]), "right": np.array([0.0, -1.0]),
    "forward": np.array([1.0, 0.0]), "backward": np.array([-1.0, 0.0]),
}
"""Unit xy directions in the robot base frame (x forward away from the robot, y left)."""

_COLOR_PARAMS = ("color", "target", "second")
"""Task argument names, in order; every argument is a block or pad colour from COLORS."""


# --- tasks and families -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Task:
    """One task: a family and its colour arguments (X = color, Y = target, Z = second)."""

    family: str
    color: str
    target: str | None = None
    second: str | None = None
    _memory: dict = field(default_factory=dict, compare=False, hash=False, repr=False)
    """Per-episode reference values (the push start), set by `arrange` or the first `success` call."""

    def __post_init__(self) -> None:
        spec = FAMILIES.get(self.family)
        if spec is None:
            raise ValueError(f"unknown task family {self.family!r}; known: {sorted(FAMILIES)}")
        spec.check_args(self.args)

    @property
    def args(self) -> dict[str, str]:
        """The colour arguments this family takes, by name."""
        return {name: getattr(self, name) for name in _COLOR_PARAMS if getattr(self, name) is not None}

    @property
    def spec(self) -> TaskFamily:
        return FAMILIES[self.family]

    @property
    def instruction(self) -> str:
        """The canonical (first) phrasing."""
        return self.spec.phrasings[0].format(**self.args)

    def phrasings(self) -> list[str]:
        return [p.format(**self.args) for p in self.spec.phrasings]

    def arrange(self, layout: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The sampled layout edited for this task; never already solved; records per-episode references."""
        layout = {name: np.asarray(pose, float).copy() for name, pose in layout.items()}
        if self.spec.arrange is not None:
            layout = self.spec.arrange(self, layout, rng)
        self._memory.clear()
        for _ in range(50):
            if not self.success(layout_state(layout)):
                break
            relocate(layout, f"{self.color}_block", rng)  # e.g. X happened to spawn on its pad
        self._memory.clear()
        self.success(layout_state(layout))  # records references (push start) from the final layout
        return layout

    def success(self, state: SceneState) -> bool:
        missing = [f"{c}_block" for c in self.args.values() if f"{c}_block" not in state.objects]
        if missing:
            raise ValueError(f"scene state lacks {missing} needed by {self.instruction!r}")
        return bool(self.spec.predicate(self, state))

    def to_dict(self) -> dict:
        return {"family": self.family, **self.args}

    @classmethod
    def from_dict(cls, data: dict) -> Task:
        unknown = set(data) - {"family", *_COLOR_PARAMS}
        if "family" not in data or unknown:
            raise ValueError(f"task dict needs 'family' and colour arguments {_COLOR_PARAMS}, got {data!r}")
        return make_task(data["family"], **{k: v for k, v in data.items() if k != "family"})


@dataclass(frozen=True)
class TaskFamily:
    """A registered family: argument names, phrasings (str.format templates), predicate and arrangement."""

    name: str
    params: tuple[str, ...]
    phrasings: tuple[str, ...]
    predicate: Callable[[Task, SceneState], bool]
    arrange: Callable[[Task, dict, np.random.Generator], dict] | None = None
    target_kind: str = "block"
    """What `target` / `second` name: "block" or "pad"."""

    def check_args(self, args: dict[str, str]) -> None:
        if tuple(args) != self.params:
            raise ValueError(f"family {self.name!r} takes arguments {self.params}, got {tuple(args)}")
        bad = [c for c in args.values() if c not in COLORS]
        if bad:
            raise ValueError(f"unknown colour(s) {bad} for {self.name!r}; colours: {sorted(COLORS)}")
        blocks = [args["color"]] + ([args[p] for p in self.params[1:]] if self.target_kind == "block" else [])
        if len(set(blocks)) != len(blocks):
            raise ValueError(f"family {self.name!r} needs distinct blocks, got {args}")


FAMILIES: dict[str, TaskFamily] = {}
"""Family name -> spec, filled by `register_family`."""


def register_family(name: str, params: tuple[str, ...], phrasings: tuple[str, ...],
                    arrange=None, target_kind: str = "block"):
    """Decorator registering `predicate(task, state) -> bool` as the family `name`."""
    if len(phrasings) < 3:
        raise ValueError(f"family {name!r} needs at least 3 phrasings")

    def decorate(predicate):
        if name in FAMILIES:
            raise ValueError(f"task family {name!r} is registered twice")
        FAMILIES[name] = TaskFamily(name, params, tuple(phrasings), predicate, arrange, target_kind)
        return predicate
    return decorate


def make_task(family: str, **args: str) -> Task:
    """Task of `family` with colour arguments, e.g. make_task("stack", color="red", target="blue")."""
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r}; known: {sorted(FAMILIES)}")
    unknown = set(args) - set(_COLOR_PARAMS)
    if unknown:
        raise ValueError(f"unknown task arguments {sorted(unknown)}; expected {FAMILIES[family].params}")
    return Task(family, **args)


def sample_task(family: str | None, rng: np.random.Generator) -> Task:
    """A uniformly drawn task (of `family`, or of any family when None) with distinct colours."""
    family = family if family is not None else str(rng.choice(sorted(FAMILIES)))
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r}; known: {sorted(FAMILIES)}")
    params = FAMILIES[family].params
    colors = rng.permutation(sorted(COLORS))[: len(params)]
    return make_task(family, **{p: str(c) for p, c in zip(params, colors)})


def list_tasks(family: str | None = None) -> list[Task]:
    """Every task (every valid colour assignment) of one family or of all families."""
    names = [family] if family is not None else sorted(FAMILIES)
    tasks = []
    for name in names:
        if name not in FAMILIES:
            raise ValueError(f"unknown task family {name!r}; known: {sorted(FAMILIES)}")
        for combo in _color_combos(len(FAMILIES[name].params)):
            try:
                tasks.append(make_task(name, **dict(zip(FAMILIES[name].params, combo))))
            except ValueError:
                continue  # repeated block colours
    return tasks


def _color_combos(n: int) -> list[tuple[str, ...]]:
    combos: list[tuple[str, ...]] = [()]
    for _ in range(n):
        combos = [c + (color,) for c in combos for color in COLORS]
    return combos


# --- parsing ------------------------------------------------------------------------------------------------

_SYNONYMS = {"cube": "block", "cubes": "block", "blocks": "block", "box": "block", "onto": "on",
             "towards": "toward"}
_FILLER = {"please", "the", "a", "an", "can", "you", "could", "now"}


def normalize_instruction(text: str) -> str:
    """Lower case, punctuation dropped, synonyms mapped (cube -> block), filler words removed."""
    words = re.sub(r"[^a-z ]+", " ", str(text).lower()).split()
    words = [_SYNONYMS.get(w, w) for w in words]
    return " ".join(w for w in words if w not in _FILLER)


def _pattern(template: str) -> re.Pattern:
    colors = "|".join(COLORS)
    text = normalize_instruction(template.replace("{", " LB").replace("}", "RB "))
    for param in _COLOR_PARAMS:
        text = text.replace(f"lb{param}rb", f"(?P<{param}>{colors})")
    return re.compile(f"^{text}$")


def task_from_instruction(text: str) -> Task:
    """Parse any registered phrasing (case, punctuation, 'the', cube/block insensitive) into a Task.

    Unknown or ambiguous text raises ValueError listing example phrasings.
    """
    normalized = normalize_instruction(text)
    matches = {}
    for name, spec in FAMILIES.items():
        for template in spec.phrasings:
            found = _pattern(template).match(normalized)
            if found:
                matches[(name, tuple(sorted(found.groupdict().items())))] = found.groupdict()
    if len(matches) == 1:
        (family, _), args = next(iter(matches.items()))
        return make_task(family, **args)
    problem = "is ambiguous" if matches else "matches no task"
    examples = "; ".join(f"{spec.phrasings[0].format(**_example_args(spec))!r}" for spec in FAMILIES.values())
    raise ValueError(f"instruction {text!r} {problem}. Examples: {examples}")


def _example_args(spec: TaskFamily) -> dict[str, str]:
    return dict(zip(spec.params, ("red", "green", "blue")))


def recolour_instruction(text: str, renaming: dict[str, str]) -> str:
    """Every colour word of `text` replaced at once by its new name under `renaming` (one-to-one, see
    `sim.state.colour_renaming`): "put the red block on the blue pad" with red and blue swapped reads
    "put the blue block on the red pad"."""
    renaming = colour_renaming(renaming)
    return re.sub(r"\b(" + "|".join(renaming) + r")\b", lambda match: renaming[match.group(1)], text)


# --- geometry helpers shared by predicates, arrangements and experts ----------------------------------------

def yaw_of(quat: np.ndarray) -> float:
    """Heading of the frame's x axis in the table plane, for a w x y z quaternion: an upright object's
    yaw, or the closing axis of a top-down hand."""
    w, x, y, z = quat
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def local_xy(obj: ObjectState, point: np.ndarray) -> np.ndarray:
    """xy of a world point in the object's yaw frame, relative to its centre."""
    c, s = np.cos(yaw_of(obj.quat)), np.sin(yaw_of(obj.quat))
    d = np.asarray(point[:2], float) - obj.pos[:2]
    return np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1]])


def released(state: SceneState, color: str) -> bool:
    """Not grasped, and not pinched by a closed hand either (a block held against the table is not lifted)."""
    block = state.block(color)
    pinched = np.linalg.norm(state.ee_pos - block.pos) < HOLD_RADIUS and state.gripper_opening < 0.5
    return block.name not in state.grasped and not pinched


def on_table(state: SceneState, color: str) -> bool:
    """Resting on the table top and released."""
    block = state.block(color)
    resting = abs(block.pos[2] - (state.table_height + BLOCK_HALF_SIZE)) < REST_TOLERANCE
    return resting and released(state, color)


def is_on(state: SceneState, color: str, under: str) -> bool:
    """X resting on block Y: xy within half a block, one block height above, released."""
    x, y = state.block(color), state.block(under)
    aligned = np.linalg.norm(x.pos[:2] - y.pos[:2]) <= BLOCK_HALF_SIZE
    stacked = abs(x.pos[2] - y.pos[2] - 2 * BLOCK_HALF_SIZE) < REST_TOLERANCE
    return aligned and stacked and released(state, color)


def inside_pad(state: SceneState, color: str, pad: str) -> bool:
    offset = local_xy(state.pad(pad), state.block(color).pos)
    return bool(np.all(np.abs(offset) <= np.array(PAD_HALF_SIZE[:2])))


# --- families -----------------------------------------------------------------------------------------------

@register_family("pick_up", ("color",), (
    "pick up the {color} block", "lift the {color} block", "grab the {color} block and lift it",
    "raise the {color} block off the table"))
def _picked_up(task: Task, state: SceneState) -> bool:
    block = state.block(task.color)
    lifted = block.pos[2] - BLOCK_HALF_SIZE - state.table_height >= LIFT_HEIGHT
    return lifted and block.name in state.grasped


@register_family("place_on_pad", ("color", "target"), (
    "put the {color} block on the {target} pad", "place the {color} block on the {target} pad",
    "move the {color} block onto the {target} pad", "set the {color} block down on the {target} pad"),
    target_kind="pad")
def _on_pad(task: Task, state: SceneState) -> bool:
    return inside_pad(state, task.color, task.target) and on_table(state, task.color)


@register_family("stack", ("color", "target"), (
    "stack the {color} block on the {target} block", "put the {color} block on the {target} block",
    "place the {color} block on top of the {target} block",
    "put the {color} block on top of the {target} block"))
def _stacked(task: Task, state: SceneState) -> bool:
    return is_on(state, task.color, task.target)


def _arrange_unstack(task: Task, layout: dict, rng: np.random.Generator) -> dict:
    """X starts resting on Y, slightly turned, as if someone had stacked it by hand."""
    x, y = f"{task.color}_block", f"{task.target}_block"
    under = layout[y]
    layout[x] = np.array([under[0], under[1], under[2] + 2 * BLOCK_HALF_SIZE + 0.001,
                          under[3] + rng.uniform(-0.15, 0.15)])
    return layout


@register_family("unstack", ("color", "target"), (
    "take the {color} block off the {target} block", "unstack the {color} block from the {target} block",
    "remove the {color} block from the {target} block",
    "put the {color} block from the {target} block on the table"),
    arrange=_arrange_unstack)
def _unstacked(task: Task, state: SceneState) -> bool:
    x, y = state.block(task.color), state.block(task.target)
    off = np.linalg.norm(x.pos[:2] - y.pos[:2]) > 2 * BLOCK_HALF_SIZE
    return off and on_table(state, task.color)


def _push_predicate(direction: str):
    unit = PUSH_DIRECTIONS[direction]

    def predicate(task: Task, state: SceneState) -> bool:
        block = state.block(task.color)
        start = task._memory.setdefault("start_xy", block.pos[:2].copy())
        moved = block.pos[:2] - start
        along = float(moved @ unit)
        sideways = abs(float(moved @ np.array([-unit[1], unit[0]])))
        straight = sideways <= PUSH_LATERAL_RATIO * along
        return along >= PUSH_DISTANCE and straight and on_table(state, task.color)
    return predicate


def _arrange_push(direction: str):
    """X where it can travel 16 cm in `direction` inside the workspace, blocks and the bin off its lane."""
    unit = PUSH_DIRECTIONS[direction]
    lane_yaw = float(np.arctan2(unit[1], unit[0]))
    lane_length = 0.37  # from the back of the open hand (21 cm behind the block) to where the block stops

    def reachable(layout: dict, xy: np.ndarray) -> bool:
        # The pushing hand stands ~12 cm behind the block; the block ends ~16 cm ahead. Low and close to the
        # base (x < 0.36) the Jaco's wrist saturates holding the hand (gravity compensation counts against its
        # 6.8 N m), so the hand tilts and the push stalls: keep the hand further out, but within 66 cm of
        # the base, beyond which the low hand is out of reach.
        block_end, hand = xy + unit * 0.16, xy - unit * 0.12
        inside = np.all(block_end >= np.array([0.25, -0.3])) and np.all(block_end <= np.array([0.70, 0.3]))
        return bool(inside and hand[0] >= 0.36 and np.linalg.norm(hand) <= 0.66 and abs(hand[1]) <= 0.3)

    def off_lane(layout: dict, name: str, xy: np.ndarray, yaw: float, pusher: str) -> bool:
        start, half = layout[pusher][:2], footprint_half_size(name)
        # The block's path is a hand wide; where the hand lands (it re-aims as the block drifts) is wider.
        path = (start + unit * (lane_length / 2 - 0.21), (lane_length / 2, 0.06))
        landing = (start - unit * 0.15, (0.10, 0.10))
        return not any(rectangles_overlap(centre, size, lane_yaw, xy, half, yaw)
                       for centre, size in (path, landing))

    def arrange(task: Task, layout: dict, rng: np.random.Generator) -> dict:
        x = f"{task.color}_block"
        clear = all(off_lane(layout, n, p[:2], p[3], x) for n, p in layout.items()
                    if n != x and object_kind(n) != "pad")
        if reachable(layout, layout[x][:2]) and clear:
            return layout
        return rearrange(layout, rng, fixed=(), first=((x, reachable),),
                         keep_clear=lambda lay, name, xy, yaw: off_lane(lay, name, xy, yaw, x))
    return arrange


_PUSH_PHRASES = {"left": "to the left", "right": "to the right", "forward": "forwards", "backward": "backwards"}
for _direction in PUSH_DIRECTIONS:
    register_family(f"push_{_direction}", ("color",), (
        f"push the {{color}} block {_direction}", f"push the {{color}} block {_PUSH_PHRASES[_direction]}",
        f"slide the {{color}} block {_direction}", f"shove the {{color}} block {_direction}"),
        arrange=_arrange_push(_direction))(_push_predicate(_direction))


def _arrange_near(task: Task, layout: dict, rng: np.random.Generator) -> dict:
    """Keep a free spot next to Y, on its side facing the middle of the table, so X can go there."""
    y = f"{task.target}_block"
    toward_middle = (np.array(SPAWN_LOW) + np.array(SPAWN_HIGH)) / 2 - layout[y][:2]
    spot = layout[y][:2] + 0.065 * toward_middle / max(np.linalg.norm(toward_middle), 1e-6)

    def spot_clear(lay: dict, name: str, xy: np.ndarray, yaw: float) -> bool:
        return name == f"{task.color}_block" or _clear_of_square(name, xy, yaw, spot, 0.05)
    if all(spot_clear(layout, n, p[:2], p[3]) for n, p in layout.items()
           if n != y and object_kind(n) != "pad"):
        return layout
    return rearrange(layout, rng, fixed=(y,), keep_clear=spot_clear)


@register_family("put_near", ("color", "target"), (
    "put the {color} block near the {target} block", "place the {color} block next to the {target} block",
    "move the {color} block close to the {target} block", "put the {color} block beside the {target} block"),
    arrange=_arrange_near)
def _near(task: Task, state: SceneState) -> bool:
    x, y = state.block(task.color), state.block(task.target)
    distance = np.linalg.norm(x.pos[:2] - y.pos[:2])
    return distance <= NEAR_DISTANCE and on_table(state, task.color)


@register_family("put_in_bin", ("color",), (
    "put the {color} block in the bin", "drop the {color} block into the bin",
    "place the {color} block in the bin",
    "throw the {color} block in the bin"))
def _in_bin(task: Task, state: SceneState) -> bool:
    block, bin_ = state.block(task.color), state.objects[BIN_NAME]
    inside = np.all(np.abs(local_xy(bin_, block.pos)) <= np.array(BIN_INNER_HALF_SIZE))
    below_rim = block.pos[2] < state.table_height + BIN_WALL_HEIGHT + BLOCK_HALF_SIZE
    return bool(inside and below_rim and released(state, task.color))


def _arrange_between(task: Task, layout: dict, rng: np.random.Generator) -> dict:
    """Y and Z 18-30 cm apart with the middle free, so X fits between them with room for the fingers."""
    x, y, z = (f"{c}_block" for c in (task.color, task.target, task.second))

    def apart(lay: dict, xy: np.ndarray) -> bool:
        return 0.18 <= np.linalg.norm(xy - lay[y][:2]) <= 0.30

    def middle_clear(lay: dict, name: str, xy: np.ndarray, yaw: float) -> bool:
        middle = (lay[y][:2] + lay[z][:2]) / 2
        return _clear_of_square(name, xy, yaw, middle, 0.045)
    if apart(layout, layout[z][:2]) and all(middle_clear(layout, n, p[:2], p[3]) for n, p in layout.items()
                                            if n not in (y, z) and object_kind(n) != "pad"):
        return layout
    return rearrange(layout, rng, fixed=(y,), first=((z, apart),), keep_clear=middle_clear)


@register_family("put_between", ("color", "target", "second"), (
    "put the {color} block between the {target} block and the {second} block",
    "place the {color} block between the {target} and {second} blocks",
    "move the {color} block in between the {target} block and the {second} block",
    "put the {color} block in the middle of the {target} block and the {second} block"),
    arrange=_arrange_between)
def _between(task: Task, state: SceneState) -> bool:
    x, y, z = (state.block(c).pos[:2] for c in (task.color, task.target, task.second))
    axis = z - y
    t = float((x - y) @ axis / (axis @ axis))
    unit = axis / np.linalg.norm(axis)
    lateral = abs(float(unit[0] * (x - y)[1] - unit[1] * (x - y)[0]))
    return 0.2 <= t <= 0.8 and lateral <= BETWEEN_LATERAL and on_table(state, task.color)


def _beside(side: float):
    def predicate(task: Task, state: SceneState) -> bool:
        x, y = state.block(task.color).pos, state.block(task.target).pos
        gap = side * (x[1] - y[1])
        return (BESIDE_RANGE[0] <= gap <= BESIDE_RANGE[1] and abs(x[0] - y[0]) <= BESIDE_ALIGN
                and on_table(state, task.color))

    def arrange(task: Task, layout: dict, rng: np.random.Generator) -> dict:
        y = f"{task.target}_block"

        def in_bounds(lay: dict, xy: np.ndarray) -> bool:
            return abs(xy[1] + side * 0.095) <= 0.28

        def spot_clear(lay: dict, name: str, xy: np.ndarray, yaw: float) -> bool:
            return _clear_of_square(name, xy, yaw, lay[y][:2] + np.array([0.0, side * 0.095]), 0.045)
        others = [(n, p) for n, p in layout.items() if n != y and object_kind(n) != "pad"]
        if in_bounds(layout, layout[y][:2]) and all(spot_clear(layout, n, p[:2], p[3]) for n, p in others):
            return layout
        return rearrange(layout, rng, fixed=(), first=((y, in_bounds),), keep_clear=spot_clear)
    return predicate, arrange


for _side, _word in ((1.0, "left"), (-1.0, "right")):
    _predicate, _arrange = _beside(_side)
    register_family(f"put_{_word}_of", ("color", "target"), (
        f"put the {{color}} block to the {_word} of the {{target}} block",
        f"place the {{color}} block on the {_word} side of the {{target}} block",
        f"move the {{color}} block {_word} of the {{target}} block"), arrange=_arrange)(_predicate)


# --- layouts ------------------------------------------------------------------------------------------------

def layout_state(layout: dict[str, np.ndarray]) -> SceneState:
    """A SceneState of objects at rest at their layout poses, hand open at home (no physics): for checks."""
    objects = {}
    for name, (x, y, z, yaw) in layout.items():
        kind = object_kind(name)
        color = None if kind == "bin" else name.rsplit("_", 1)[0]
        half = {"block": np.full(3, BLOCK_HALF_SIZE), "pad": np.array(PAD_HALF_SIZE),
                "bin": bin_half_size()}[kind]
        objects[name] = ObjectState(name, kind, color, np.array([x, y, z]), yaw_to_quat(yaw), half)
    return SceneState(objects=objects, ee_pos=HOME_TCP_POS.copy(), ee_quat=TOP_DOWN_QUAT.copy(),
                      gripper_opening=1.0, grasped=frozenset(), table_height=0.0)


def _clear_of_square(name: str, xy: np.ndarray, yaw: float, centre: np.ndarray, half: float) -> bool:
    """Object `name` at (xy, yaw) keeps room for releasing a block in the square at `centre`."""
    # A carried block only needs room for its own release (the open tips reach 2.5 cm past its faces),
    # less than the approach room LayoutClearance keeps around resting blocks.
    gap = 0.05 if object_kind(name) == "block" else 0.03
    return not rectangles_overlap(centre, (half, half), 0.0, xy, footprint_half_size(name), yaw, gap)


def rearrange(layout: dict, rng: np.random.Generator, fixed=(), first=(), keep_clear=None,
              attempts: int = 100) -> dict:
    """Re-place every object but `fixed`: the `first` (name, accept(layout, xy)) pairs in order, then the
    rest largest first, blocks and the bin only where `keep_clear(layout, name, xy, yaw)` holds (pads are
    flat)."""
    firsts = [name for name, _ in first]
    rest = sorted((n for n in layout if n not in fixed and n not in firsts),
                  key=lambda n: -max(footprint_half_size(n)))
    for _ in range(attempts):  # one crowded draw can leave no room: start over
        placed = {name: layout[name].copy() for name in fixed}
        try:
            for name, accept in first:
                relocate(placed, name, rng, tries=300,
                         accept=lambda xy, yaw, accept=accept: accept(placed, xy))
            for name in rest:
                check = None if keep_clear is None or object_kind(name) == "pad" else (
                    lambda xy, yaw, name=name: keep_clear(placed, name, xy, yaw))
                relocate(placed, name, rng, accept=check, tries=300)
            return placed
        except RuntimeError:
            continue
    raise RuntimeError(f"could not arrange the layout for this task in {attempts} attempts")


def relocate(layout: dict, name: str, rng: np.random.Generator, accept=None, tries: int = 2000,
             ignore=()) -> None:
    """Move `name` to a fresh spawn pose, clear of all objects but `ignore`, where `accept(xy, yaw)` holds."""
    half = footprint_half_size(name)
    gaps = LayoutClearance()
    low, high = np.array(SPAWN_LOW) + max(half), np.array(SPAWN_HIGH) - max(half)
    for _ in range(tries):
        xy, yaw = rng.uniform(low, high), rng.uniform(-np.pi / 4, np.pi / 4)
        clear = not any(rectangles_overlap(xy, half, yaw, pose[:2], footprint_half_size(other), pose[3],
                                           gaps.gap(object_kind(name), object_kind(other)))
                        for other, pose in layout.items()
                        if other != name and other not in ignore and _touches_table(other, layout))
        if clear and (accept is None or accept(xy, yaw)):
            layout[name] = np.array([xy[0], xy[1], default_z(name), yaw])
            return
    raise RuntimeError(f"could not find a free spot for {name} satisfying the task's layout constraints")


def _touches_table(name: str, layout: dict) -> bool:
    """Objects stacked on a block (unstack) do not occupy table area of their own."""
    return object_kind(name) != "block" or layout[name][2] < default_z(name) + BLOCK_HALF_SIZE
