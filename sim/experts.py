"""Scripted experts for every task family: state machines over `SceneState` that output absolute TCP targets.

`make_expert(task).act(state)` returns an `ExpertCommand` (TCP position, TCP orientation w x y z, gripper
0 closed … 1 open) in the world (= robot base) frame. Every call re-plans from the given state, so a block
that slips out of the hand is simply grasped again; the only memory is short fixed sequences (closing
the hand, releasing) and goals that must not jitter while blocks move (a free spot, a push start).

Latency. In ROS the state arrives at 10 Hz and may be 100-200 ms old. Decisions therefore wait for the
measured pose to converge (tolerances of ~1 cm), and closing / releasing run as timed sequences rather
than on a single fresh reading.

Grasps are top-down, TCP at the block centre, closing axis along one of the block's two face normals (a
cube looks the same every quarter turn): the one whose open fingertips clear other blocks and the bin
walls best, else the smaller wrist turn. Pushes use the open hand (see `PushExpert` for why).

ee_delta actions. `command_to_ee_delta` turns a command into the env's delta action; `rollout_expert`
computes it against the env's integrated target (`TabletopEnv.ee_target_pose`), not the measured pose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent_stack.control.osc import ee_delta_between, quat_multiply
from sim.scene import BIN_NAME, TOP_DOWN_QUAT, bin_half_size, yaw_to_quat
from sim.state import BLOCK_HALF_SIZE, SPAWN_HIGH, SPAWN_LOW, SceneState
from sim.tasks import PUSH_DIRECTIONS, Task, local_xy, yaw_of

APPROACH_HEIGHT = 0.10
"""Height of the TCP above a block's centre before descending onto it (m)."""
CARRY_HEIGHT = 0.16
"""TCP height while transporting: the held block's bottom clears blocks and the bin walls by ~8 cm."""
XY_TOLERANCE = 0.008
Z_TOLERANCE = 0.008
YAW_TOLERANCE = 0.08
CLOSE_TICKS = 6
"""Calls spent closing the hand before lifting (0.6 s at 10 Hz: the fingers need ~0.4 s)."""
RELEASE_TICKS = 4
"""Calls spent opening the hand at the place pose, then as many rising, before re-planning."""
OPEN_TIP_REACH = 0.085
"""Distance of the open fingertips from the TCP axis along the closing axis (measured on the mesh)."""
HOLD_RADIUS = 0.035
"""A block whose centre is this close to the TCP after we closed on it is taken to be in the hand."""
PUSH_OVERSHOOT = 0.13
"""Push goal: this far along the direction from the start (the task needs 0.10)."""
PUSH_STANDOFF = 0.095
"""TCP distance behind the block's face where a push starts: the open fingertips reach 7.6 cm from the TCP
axis, plus ~2 cm of clearance for landing beside a block that may be turned."""
PUSH_HEIGHT = 0.012
"""TCP height above the table while pushing: the open fingertips (3 mm below the TCP) clear the table by
~9 mm and touch the block well below the 2.1 cm above which it would tip (see PushExpert)."""
PUSH_CONTACT = 0.10
"""TCP to block-centre distance when the open fingertips touch the block (7.6 cm + 2.5 cm)."""
PUSH_LEAD = 0.04
"""During a push the TCP target is this far past the contact pose, so the fingers press on the block."""


@dataclass(frozen=True)
class ExpertCommand:
    """Absolute TCP target (world frame) and gripper opening (0 closed … 1 open)."""

    target_pos: np.ndarray
    target_quat: np.ndarray
    gripper: float


@dataclass(frozen=True)
class Placement:
    """Where a carried block goes: its centre at (xy, z), the closing axis at `yaw` (None = keep)."""

    xy: np.ndarray
    z: float
    yaw: float | None = None
    release: bool = True


def top_down_quat(yaw: float) -> np.ndarray:
    """Top-down TCP orientation whose closing axis (TCP x) points along `yaw` in the table plane."""
    return quat_multiply(yaw_to_quat(yaw), TOP_DOWN_QUAT)


def nearest_equivalent(yaw: float, reference: float, period: float) -> float:
    """The angle yaw + k * period closest to `reference`."""
    return reference + (yaw - reference + period / 2) % period - period / 2


def grasp_yaw(state: SceneState, color: str) -> float:
    """Closing-axis yaw for a top-down grasp: the block's yaw or a quarter turn from it, whichever puts the
    open fingertips further from other blocks and the bin walls (ties: the smaller wrist turn)."""
    block = state.block(color)
    current = yaw_of(state.ee_quat)
    options = [nearest_equivalent(yaw_of(block.quat) + k * np.pi / 2, current, np.pi) for k in (0, 1)]

    def score(yaw: float) -> float:
        axis = np.array([np.cos(yaw), np.sin(yaw)])
        tips = [block.pos[:2] + side * OPEN_TIP_REACH * axis for side in (1.0, -1.0)]
        # Clearances above ~2 cm are all equally good: then prefer the smaller turn.
        return min(min(_clearance(state, tip, color) for tip in tips), 0.02) - 0.01 * abs(yaw - current)
    return max(options, key=score)


def _clearance(state: SceneState, point: np.ndarray, color: str) -> float:
    """Free distance from a fingertip at `point` to the nearest other block or bin wall (metres)."""
    gaps = [np.linalg.norm(point - b.pos[:2]) - np.sqrt(2) * BLOCK_HALF_SIZE
            for b in state.blocks if b.color != color]
    bin_ = state.objects.get(BIN_NAME)
    if bin_ is not None:
        local = np.abs(local_xy(bin_, point))
        outer = bin_half_size()[:2]
        inner = outer - 0.01
        inside = np.all(local < inner)
        outside = float(np.linalg.norm(np.maximum(local - outer, 0)))
        gaps.append(float(np.min(inner - local)) if inside else outside)
    return min(gaps, default=1.0)


# --- the expert base: shared primitives ---------------------------------------------------------------------

class Expert:
    """Base class: holds the task, the short command queue and the done flag; subclasses plan in `_plan`."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.reset()

    def reset(self) -> None:
        self._queue: list[ExpertCommand] = []
        self._memory: dict = {}
        self.done = False

    def act(self, state: SceneState) -> ExpertCommand:
        """Next absolute TCP target + gripper for this (possibly slightly stale) state."""
        if self._queue:
            return self._queue.pop(0)
        if self.task.success(state):
            return self._finish(state)
        self.done = False
        return self._plan(state)

    def _plan(self, state: SceneState) -> ExpertCommand:
        raise NotImplementedError

    def _finish(self, state: SceneState) -> ExpertCommand:
        """Task achieved: hold a lifted block where it is; otherwise rise clear of it, then report done."""
        block = state.block(self.task.color)
        if block.name in state.grasped:  # pick_up: holding it up is the task
            self.done = True
            return ExpertCommand(state.ee_pos.copy(), self._hold_quat(state), 0.0)
        top = block.pos[2] + BLOCK_HALF_SIZE
        self.done = state.ee_pos[2] > top + 0.05
        target = np.array([*state.ee_pos[:2], max(state.ee_pos[2], top + 0.08)])
        return ExpertCommand(target, self._hold_quat(state), self._last_gripper(state))

    def _last_gripper(self, state: SceneState) -> float:
        return float(np.round(state.gripper_opening))

    def _hold_quat(self, state: SceneState) -> np.ndarray:
        return top_down_quat(yaw_of(state.ee_quat))

    # primitives ---------------------------------------------------------------------------------------------

    def move_above(self, state: SceneState, xy: np.ndarray, z: float, yaw: float, gripper: float,
                   clearance: float) -> ExpertCommand | None:
        """Go up to `clearance`, across, and turn before anything low; None once above xy at the yaw."""
        # Hysteresis: once low (descending), small drift must not send the hand back up.
        tolerance = XY_TOLERANCE if state.ee_pos[2] > clearance - 0.03 else 2.5 * XY_TOLERANCE
        aligned_xy = np.linalg.norm(state.ee_pos[:2] - xy) < tolerance
        aligned_yaw = abs(nearest_equivalent(yaw_of(state.ee_quat), yaw, 2 * np.pi) - yaw) < YAW_TOLERANCE
        if aligned_xy and aligned_yaw:
            return None
        if state.ee_pos[2] < clearance - 0.03 and np.linalg.norm(state.ee_pos[:2] - xy) > 0.02:
            # Rise straight up first: moving sideways low would sweep the hand through other blocks.
            return ExpertCommand(np.array([*state.ee_pos[:2], clearance]), self._hold_quat(state), gripper)
        # Turn at most ~60 degrees per command: a half-turn target has no unique rotation axis and the
        # shortest-rotation error could tip the hand over instead of turning it about z.
        current = yaw_of(state.ee_quat)
        step_yaw = current + np.clip(nearest_equivalent(yaw, current, 2 * np.pi) - current, -1.0, 1.0)
        return ExpertCommand(np.array([*xy, max(z, clearance)]), top_down_quat(step_yaw), gripper)

    def grasp(self, state: SceneState, color: str) -> ExpertCommand:
        """Approach the block from above with the hand open, descend to its centre, close (queued)."""
        block = state.block(color)
        yaw = grasp_yaw(state, color)
        above = block.pos[2] + APPROACH_HEIGHT
        open_enough = state.gripper_opening > 0.8
        command = self.move_above(state, block.pos[:2], above, yaw, 1.0, above)
        if command is not None:
            return command
        if not open_enough:  # never descend with a half-closed hand: it would land on the block
            return ExpertCommand(np.array([*block.pos[:2], above]), top_down_quat(yaw), 1.0)
        if state.ee_pos[2] - block.pos[2] > Z_TOLERANCE:
            return ExpertCommand(block.pos.copy(), top_down_quat(yaw), 1.0)
        closing = ExpertCommand(block.pos.copy(), top_down_quat(yaw), 0.0)
        self._queue = [closing] * (CLOSE_TICKS - 1)
        self._memory["holding"] = True
        return closing

    def holds(self, state: SceneState, color: str) -> bool:
        """In the hand: grasped by physics, or closed on by us and still at the TCP (not yet lifted)."""
        block = state.block(color)
        if block.name in state.grasped:
            self._memory["holding"] = True
            return True
        near = np.linalg.norm(block.pos - state.ee_pos) < HOLD_RADIUS and state.gripper_opening < 0.8
        self._memory["holding"] = bool(self._memory.get("holding") and near)
        return self._memory["holding"]

    def carry(self, state: SceneState, color: str, place: Placement) -> ExpertCommand:
        """Lift, transport at carry height, lower the block to `place`, and release (queued)."""
        block = state.block(color)
        offset = state.ee_pos - block.pos  # the block is rarely exactly at the TCP: place it, not the TCP
        current_yaw = yaw_of(state.ee_quat)
        yaw = current_yaw if place.yaw is None else nearest_equivalent(place.yaw, current_yaw, np.pi)
        clearance = max(CARRY_HEIGHT, place.z + offset[2])
        command = self.move_above(state, place.xy + offset[:2], clearance, yaw, 0.0, clearance)
        if command is not None:
            return command
        target = np.array([*(place.xy + offset[:2]), place.z + offset[2]])
        if abs(block.pos[2] - place.z) > Z_TOLERANCE or not place.release:
            return ExpertCommand(target, top_down_quat(yaw), 0.0)
        return self._release(target, yaw, block.pos[2])

    def _release(self, target: np.ndarray, yaw: float, block_z: float) -> ExpertCommand:
        opened = ExpertCommand(target, top_down_quat(yaw), 1.0)
        risen = ExpertCommand(np.array([*target[:2], block_z + APPROACH_HEIGHT]), top_down_quat(yaw), 1.0)
        self._queue = [opened] * (RELEASE_TICKS - 1) + [risen] * RELEASE_TICKS
        self._memory["holding"] = False
        return opened


# --- pick-and-place experts ---------------------------------------------------------------------------------

class PickPlaceExpert(Expert):
    """Grasp block X and put it where `placement(state)` says; pick_up holds it up instead of releasing."""

    def _plan(self, state: SceneState) -> ExpertCommand:
        if self.holds(state, self.task.color):
            return self.carry(state, self.task.color, self.placement(state))
        return self.grasp(state, self.task.color)

    def placement(self, state: SceneState) -> Placement:
        task, table = self.task, state.table_height + BLOCK_HALF_SIZE
        family = task.family
        if family == "pick_up":
            return Placement(state.block(task.color).pos[:2].copy(), table + 0.14, release=False)
        if family == "place_on_pad":
            return Placement(state.pad(task.target).pos[:2].copy(), table + 0.004)
        if family == "stack":
            under = state.block(task.target)
            return Placement(under.pos[:2].copy(), under.pos[2] + 2 * BLOCK_HALF_SIZE + 0.004,
                             yaw=yaw_of(under.quat))
        if family == "put_in_bin":
            return Placement(state.objects[BIN_NAME].pos[:2].copy(), table + 0.075)
        if family == "put_between":
            y, z = state.block(task.target).pos[:2], state.block(task.second).pos[:2]
            across = float(np.arctan2(*(z - y)[::-1])) + np.pi / 2  # fingers must not close toward Y or Z
            return Placement((y + z) / 2, table + 0.004, yaw=across)
        return self._relative_placement(state, table + 0.004)

    def _relative_placement(self, state: SceneState, z: float) -> Placement:
        """unstack / put_near / put_left_of / put_right_of: a spot chosen once, relative to Y or free."""
        task = self.task
        if task.family == "unstack":
            if "spot" not in self._memory:
                self._memory["spot"] = free_spot(state, task.color, task.target)
            return Placement(self._memory["spot"], z)
        if task.family == "put_near":
            if "offset" not in self._memory:
                self._memory["offset"] = near_offset(state, task.color, task.target)
            offset = self._memory["offset"]
        elif task.family in ("put_left_of", "put_right_of"):
            offset = np.array([0.0, 0.095 if task.family == "put_left_of" else -0.095])
        else:
            raise ValueError(f"no placement rule for family {task.family!r}")
        across = float(np.arctan2(offset[1], offset[0])) + np.pi / 2  # closing axis across the gap to Y
        return Placement(state.block(task.target).pos[:2] + offset, z, yaw=across)


def _others(state: SceneState, *exclude: str) -> list[np.ndarray]:
    return [b.pos[:2] for b in state.blocks if b.color not in exclude]


def _spot_is_free(state: SceneState, xy: np.ndarray, others: list[np.ndarray], gap: float) -> bool:
    """Inside the spawn area, `gap` from other blocks, and clear of the bin walls for the open fingers."""
    if np.any(xy < np.array(SPAWN_LOW) + 0.03) or np.any(xy > np.array(SPAWN_HIGH) - 0.03):
        return False
    if any(np.linalg.norm(xy - o) < gap for o in others):
        return False
    bin_ = state.objects.get(BIN_NAME)
    if bin_ is None:
        return True
    return bool(np.any(np.abs(local_xy(bin_, xy)) > bin_half_size()[:2] + 0.08))


def free_spot(state: SceneState, color: str, off: str) -> np.ndarray:
    """The free table spot nearest to block `off` but at least 10 cm from it (where unstack puts X)."""
    under = state.block(off).pos[:2]
    others = _others(state, color)
    grid = np.stack(np.meshgrid(np.arange(SPAWN_LOW[0], SPAWN_HIGH[0], 0.01),
                                np.arange(SPAWN_LOW[1], SPAWN_HIGH[1], 0.01)), -1).reshape(-1, 2)
    grid = grid[np.linalg.norm(grid - under, axis=1) >= 0.11]
    for xy in grid[np.argsort(np.linalg.norm(grid - under, axis=1))]:
        if _spot_is_free(state, xy, others, 0.11):
            return xy
    raise RuntimeError("no free table spot to put the unstacked block on")


def near_offset(state: SceneState, color: str, target: str) -> np.ndarray:
    """Offset from Y (6.5 cm, one of 8 directions) to a free spot, the one nearest to X's current position."""
    y, x = state.block(target).pos[:2], state.block(color).pos[:2]
    others = _others(state, color, target)
    offsets = [0.065 * np.array([np.cos(a), np.sin(a)]) for a in np.arange(8) * np.pi / 4]
    free = [o for o in offsets if _spot_is_free(state, y + o, others, 0.10)]
    if not free:
        raise RuntimeError(f"no free spot near the {target} block")
    return min(free, key=lambda o: np.linalg.norm(y + o - x))


# --- push expert --------------------------------------------------------------------------------------------

class PushExpert(Expert):
    """Push block X along a base-frame direction from behind, re-aiming at the goal as it drifts.

    The hand pushes OPEN, with the tips of fingers 2 and 3 leading. A closed Jaco hand cannot push a
    5 cm cube: its knuckles stick out past the fingertips, so it touches the block above 2.1 cm and the
    block tips over instead of sliding (friction 1.2: mu * h > half width). The open tips of fingers 2 and
    3 reach 7.6 cm from the TCP axis, 3 cm apart, at the TCP's height: a low, two-point paddle.
    """

    def __init__(self, task: Task) -> None:
        self.unit = PUSH_DIRECTIONS[task.family.removeprefix("push_")]
        super().__init__(task)

    def _plan(self, state: SceneState) -> ExpertCommand:
        block = state.block(self.task.color)
        start = self._memory.setdefault("start", block.pos[:2].copy())
        to_goal = start + self.unit * PUSH_OVERSHOOT - block.pos[:2]
        # Aim at the goal, not just along the direction, so sideways drift is corrected on the way.
        aim = to_goal / np.linalg.norm(to_goal) if to_goal @ self.unit > 0.01 else self.unit
        # TCP x points away from the block: fingers 2 and 3 (on the TCP's -x side) lead. Finger 1 alone
        # (the other side) is a single point: the block spins off it.
        away = float(np.arctan2(aim[1], aim[0])) + np.pi
        yaw = nearest_equivalent(away, yaw_of(state.ee_quat), 2 * np.pi)
        push_z = state.table_height + PUSH_HEIGHT  # fixed: a tilting block must not lift the hand with it
        if self._in_contact_position(state, block.pos, aim, push_z):
            target = np.array([*(block.pos[:2] - aim * (PUSH_CONTACT - PUSH_LEAD)), push_z])
            return ExpertCommand(target, top_down_quat(yaw), 1.0)
        # Land clear of the block whatever its yaw (a turned cube reaches 3.5 cm along `aim`), then push.
        relative_yaw = yaw_of(block.quat) - np.arctan2(aim[1], aim[0])
        reach = BLOCK_HALF_SIZE * (abs(np.cos(relative_yaw)) + abs(np.sin(relative_yaw)))
        behind = block.pos[:2] - aim * (PUSH_STANDOFF + reach)
        command = self.move_above(state, behind, push_z + APPROACH_HEIGHT, yaw, 1.0, push_z + APPROACH_HEIGHT)
        if command is not None:
            return command
        return ExpertCommand(np.array([*behind, push_z]), top_down_quat(yaw), 1.0)

    @staticmethod
    def _in_contact_position(state: SceneState, block_pos: np.ndarray, aim: np.ndarray,
                             push_z: float) -> bool:
        """Low, behind the block (along `aim`) and not off to the side: keep pushing."""
        rel = block_pos[:2] - state.ee_pos[:2]
        along, sideways = float(rel @ aim), abs(float(aim[0] * rel[1] - aim[1] * rel[0]))
        low = state.ee_pos[2] < push_z + 0.015
        near, far = PUSH_CONTACT - 0.03, PUSH_STANDOFF + 2 * BLOCK_HALF_SIZE
        return low and near < along < far and sideways < 0.015

    def _last_gripper(self, state: SceneState) -> float:
        return 1.0


# --- factory, delta actions, rollouts -----------------------------------------------------------------------

EXPERT_TYPES: dict[str, type[Expert]] = {
    **{f"push_{d}": PushExpert for d in PUSH_DIRECTIONS},
}
"""Families with their own expert; every other family is pick-and-place."""


def make_expert(task: Task) -> Expert:
    """The scripted expert for `task` (any registered family)."""
    if not isinstance(task, Task):
        raise TypeError(f"make_expert needs a sim.tasks.Task, got {type(task).__name__}")
    return EXPERT_TYPES.get(task.family, PickPlaceExpert)(task)


def command_to_ee_delta(state: SceneState, command: ExpertCommand, max_translation: float,
                        max_rotation: float, reference: tuple[np.ndarray, np.ndarray] | None = None
                        ) -> np.ndarray:
    """(7,) ee_delta action [dx dy dz droll dpitch dyaw gripper], base frame, clipped per axis.

    `reference` is the pose the delta will be added to: TabletopEnv adds it to its previous target (pass
    that, see `rollout_expert`); None uses the measured TCP pose (a robot that adds deltas to the
    measured pose). Deltas from the measured pose into an env that integrates its target would wind up
    while the arm trails the target and overshoot by that trail.
    """
    pos, quat = reference if reference is not None else (state.ee_pos, state.ee_quat)
    delta = ee_delta_between(pos, quat, command.target_pos, command.target_quat)
    translation = np.clip(delta[:3], -max_translation, max_translation)
    rotation = np.clip(delta[3:], -max_rotation, max_rotation)
    return np.concatenate([translation, rotation, [float(np.clip(command.gripper, 0.0, 1.0))]])


def rollout_expert(env, task: Task, seed: int, max_steps: int | None = None) -> dict:
    """One episode of the expert driving `env` (ee_delta mode) through `step`; success, steps, sim seconds."""
    env.reset(seed=seed, task=task)
    return run_expert(env, task, max_steps)


def run_expert(env, task: Task, max_steps: int | None = None) -> dict:
    """The expert carries out `task` from the env's current scene (no reset: a plan's subgoals run one
    after another on one scene); success, steps, sim seconds."""
    if env.config.control_mode != "ee_delta":
        raise ValueError(f"the expert needs control_mode='ee_delta', env has {env.config.control_mode!r}")
    max_steps = max_steps or env.config.max_episode_steps
    env.set_task(task)
    expert, start, success, steps = make_expert(task), env.sim_time, False, 0
    for steps in range(1, max_steps + 1):
        state = env.scene_state()
        action = command_to_ee_delta(state, expert.act(state), env.config.max_translation,
                                     env.config.max_rotation, env.ee_target_pose())
        _, _, success, _, _ = env.step(action)  # the env's episode limit counts from reset: not used here
        if success:
            break
    return {"success": bool(success), "steps": steps, "sim_seconds": round(env.sim_time - start, 3)}
