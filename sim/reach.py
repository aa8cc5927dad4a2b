"""Goal-conditioned reaching in the tabletop sim, in joint space, for learned low-level controllers.

    agent-stack train control --algo tdmpc2 --env tabletop:reach --steps 100000 --out runs/reach

A learned controller (TD-MPC2, DreamerV3) is meant to replace the damped-least-squares IK of the control
layer, so it acts where the IK acts: on the arm's joint position targets. Each agent step, at
`ReachConfig.control_hz`, moves the six targets by ``action * max_joint_step`` (action in [-1, 1]^6),
clipped to the joint limits; the gripper stays open. An episode is a seeded tabletop layout, the arm at
(or near) home, and a target point drawn uniformly in the reach box (REACH_LOW ..
REACH_HIGH); the same seed gives the same layout and target as `sim.evaluate.run_reach`.

Observation (float32, `OBSERVATION_DIM` = `PROPRIO_DIM` + `GOAL_DIM` = 21 + 3), from `reach_observation`,
the one function the env and the ROS controller node both call (`OBSERVATION_LAYOUT` names the slices):

    [ 0: 6]  sin(joint_pos)           arm joints, radians, as sin and cos: the Jaco's continuous joints
    [ 6:12]  cos(joint_pos)           read the same whether a driver wraps them to (-pi, pi] or not
    [12:18]  JOINT_VEL_SCALE * joint_vel      rad/s, scaled to about unit range
    [18:21]  ee_pos                   tool centre point, base frame, metres (forward kinematics)
    [21:24]  target                   the goal position, base frame, metres

Proprioception (the first `PROPRIO_DIM`) does not depend on the target and the goal part is the target
alone, so an agent's ``act(proprio, goal)``, which appends the goal itself, sees the same vector.

Reward per step (dm_control reacher style, dense for fast learning): ``-distance`` (metres from the tool
centre point to the target) plus `ReachConfig.success_bonus` while within `tolerance`. Episodes have a
fixed length: ``terminated`` is always False and ``truncated`` is True at `max_episode_steps`.
``info["success"]`` is whether the tool is within tolerance after this step, so the last step's value
(what `agent_stack.train.online.evaluate` reports) means "reached and held".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from agent_stack.control.osc import damped_least_squares, scale_to_speed_limit
from sim.scene import ARM_JOINT_NAMES, HOME_QPOS
from sim.tabletop_env import TabletopConfig, TabletopEnv, check_vector

REACH_LOW, REACH_HIGH = (0.35, -0.2, 0.08), (0.65, 0.2, 0.3)
"""Box the reach targets are drawn from (m): inside the workspace, clear of the blocks on the table. The
reach evaluation of other controllers (`sim.evaluate.run_reach`) draws from it too."""
ENV_NAMES = ("reach",)
"""Names `make_env` accepts after the CLI's ``tabletop:`` prefix."""
CLI_PREFIX = "tabletop:"

N_JOINTS = len(ARM_JOINT_NAMES)
JOINT_VEL_SCALE = 0.1
"""Joint velocities (rad/s) are multiplied by this in the observation."""
OBSERVATION_LAYOUT: dict[str, slice] = {
    "sin_joint_pos": slice(0, 6),
    "cos_joint_pos": slice(6, 12),
    "joint_vel": slice(12, 18),
    "ee_pos": slice(18, 21),
    "target": slice(21, 24),
}
"""Named slices of the observation vector (see the module docstring)."""
PROPRIO_DIM = 21
"""sin q (6) ++ cos q (6) ++ scaled joint velocity (6) ++ ee_pos (3): independent of the target."""
GOAL_DIM = 3
"""The target position (3): observation = concat(proprio, goal)."""
OBSERVATION_DIM = PROPRIO_DIM + GOAL_DIM
GRIPPER_OPEN = 1.0
START_SECONDS = 0.3
"""Physics time the servos get at reset to carry the arm to a randomised start configuration."""
MAX_SEED = 2**32 - 1


def _check_float(field: str, value: Any, minimum: float, strict: bool) -> None:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
          and math.isfinite(value) and (value > minimum if strict else value >= minimum))
    if not ok:
        raise ValueError(f"ReachConfig.{field} must be a finite number {'>' if strict else '>='} {minimum}, "
                         f"got {value!r}")


def _check_seed(field: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= MAX_SEED:
        raise ValueError(f"{field} must be an integer in [0, {MAX_SEED}], got {value!r}")


@dataclass(frozen=True)
class ReachConfig:
    """One reaching task: rates, episode length, action scale, success and start randomisation."""

    control_hz: float = 50.0
    """Agent steps per second; the ROS controller node runs the agent at this rate too."""
    episode_seconds: float = 2.0
    """Episode length in simulated seconds; max_episode_steps = round(episode_seconds * control_hz)."""
    max_joint_step: float = 0.05
    """Change (rad) of every arm joint target per step at action +-1 (0.05 at 50 Hz = 2.5 rad/s)."""
    tolerance: float = 0.02
    """The tool centre point within this distance (m) of the target counts as success."""
    success_bonus: float = 1.0
    """Reward added to -distance on every step within tolerance."""
    init_noise: float = 0.1
    """Half-width (rad) of the uniform perturbation of each arm joint around HOME_QPOS at reset; 0 = home."""
    seed: int = 0
    """Seeds the sequence of episode seeds drawn when `reset` gets no seed."""

    def __post_init__(self) -> None:
        _check_float("control_hz", self.control_hz, 0.0, strict=True)
        physics_hz = 1.0 / TabletopConfig.physics_dt
        if self.control_hz > physics_hz:
            raise ValueError(f"ReachConfig.control_hz must be <= the physics rate {physics_hz:g} Hz, "
                             f"got {self.control_hz!r}")
        _check_float("episode_seconds", self.episode_seconds, 0.0, strict=True)
        if round(self.episode_seconds * self.control_hz) < 1:
            raise ValueError("ReachConfig.episode_seconds must last at least one step (1 / control_hz), "
                             f"got {self.episode_seconds!r}")
        _check_float("max_joint_step", self.max_joint_step, 0.0, strict=True)
        _check_float("tolerance", self.tolerance, 0.0, strict=True)
        _check_float("success_bonus", self.success_bonus, 0.0, strict=False)
        _check_float("init_noise", self.init_noise, 0.0, strict=False)
        _check_seed("ReachConfig.seed", self.seed)

    @property
    def max_episode_steps(self) -> int:
        return round(self.episode_seconds * self.control_hz)


def reach_observation(joint_pos: Any, joint_vel: Any, ee_pos: Any, target: Any) -> np.ndarray:
    """The (OBSERVATION_DIM,) float32 observation: proprioception (PROPRIO_DIM) then the goal (GOAL_DIM).

    joint_pos, joint_vel: the 6 arm joints (rad, rad/s) in ARM_JOINT_NAMES order; ee_pos: tool centre
    point in the base frame (m), e.g. forward kinematics of joint_pos; target: goal position (m).
    """
    q = check_vector(joint_pos, N_JOINTS, "joint_pos")
    qd = check_vector(joint_vel, N_JOINTS, "joint_vel")
    ee = check_vector(ee_pos, 3, "ee_pos")
    goal = check_vector(target, 3, "target")
    return np.concatenate([np.sin(q), np.cos(q), JOINT_VEL_SCALE * qd, ee, goal]).astype(np.float32)


class ReachEnv:
    """Joint-space reaching with the gymnasium-style API of `sim.dmc.DMCEnv` (see the module docstring).

    Attributes: ``observation_shape`` ((OBSERVATION_DIM,)), ``action_dim`` (6), ``action_low`` /
    ``action_high`` (the [-1, 1] box, float32), ``max_episode_steps``, and per episode ``target`` (3,)
    and ``joint_targets`` (6,), the arm position command the next action moves.
    """

    def __init__(self, config: ReachConfig | None = None) -> None:
        config = ReachConfig() if config is None else config
        if not isinstance(config, ReachConfig):
            raise TypeError(f"ReachEnv expects a ReachConfig, got {type(config).__name__}")
        self.config = config
        self.max_episode_steps: int = config.max_episode_steps
        self.observation_shape: tuple[int, ...] = (OBSERVATION_DIM,)
        self.action_dim: int = N_JOINTS
        self.action_low = np.full(N_JOINTS, -1.0, dtype=np.float32)
        self.action_high = np.full(N_JOINTS, 1.0, dtype=np.float32)
        for bounds in (self.action_low, self.action_high):
            bounds.setflags(write=False)
        # The inner DLS rate only matters in ee_delta mode; it just has to be >= policy_hz and >= 50.
        self.tabletop = TabletopEnv(TabletopConfig(
            control_mode="joint", render=False, policy_hz=config.control_hz,
            control_hz=max(100.0, config.control_hz), max_episode_steps=self.max_episode_steps))
        self.kinematics = self.tabletop.kinematics
        self.joint_lower, self.joint_upper = self.kinematics.joint_limits()
        self._seeds = np.random.default_rng(config.seed)
        self.target = np.full(3, np.nan)  # set by reset
        self.joint_targets = HOME_QPOS.copy()
        self._steps = 0
        self._episode_over = True

    # --- gymnasium-style API -------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """New episode: the seed's layout, target and start (no seed: the next one drawn from config.seed)."""
        if seed is None:
            seed = int(self._seeds.integers(0, 2**31 - 1))
        _check_seed("reset seed", seed)
        seed = int(seed)
        # Same stream as sim.evaluate.run_reach for the target, so a seed means the same episode in both.
        target_seq, start_seq = np.random.SeedSequence(seed).spawn(2)
        self.target = np.random.default_rng(target_seq).uniform(REACH_LOW, REACH_HIGH)
        self.tabletop.reset(seed=seed)
        noise = self.config.init_noise
        start = np.clip(HOME_QPOS + np.random.default_rng(start_seq).uniform(-noise, noise, N_JOINTS),
                        self.joint_lower, self.joint_upper)
        if noise > 0:
            self.tabletop.set_joint_targets(start)
            self.tabletop.advance(START_SECONDS)
        self.joint_targets = start
        self._steps = 0
        self._episode_over = False
        observation, distance = self._observe()
        info = {"distance": distance, "success": distance < self.config.tolerance,
                "target": self.target.copy(), "seed": seed}
        return observation, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Move the joint targets by action * max_joint_step and advance 1 / control_hz seconds."""
        if self._episode_over:
            raise RuntimeError("ReachEnv.step called before reset() or after the episode ended; call reset()")
        action = self._check_action(action)
        self.joint_targets = np.clip(self.joint_targets + action * self.config.max_joint_step,
                                     self.joint_lower, self.joint_upper)
        self.tabletop.step(np.append(self.joint_targets, GRIPPER_OPEN))
        self._steps += 1
        observation, distance = self._observe()
        success = distance < self.config.tolerance
        reward = -distance + (self.config.success_bonus if success else 0.0)
        truncated = self._steps >= self.max_episode_steps
        self._episode_over = truncated
        return observation, float(reward), False, truncated, {"distance": distance, "success": success}

    def close(self) -> None:
        self.tabletop.close()
        self._episode_over = True

    def __enter__(self) -> ReachEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- helpers -----------------------------------------------------------------------------------------

    def _observe(self) -> tuple[np.ndarray, float]:
        ee_pos, _ = self.tabletop.ee_pose()
        observation = reach_observation(self.tabletop.joint_positions()[:N_JOINTS],
                                        self.tabletop.joint_velocities()[:N_JOINTS], ee_pos, self.target)
        return observation, float(np.linalg.norm(ee_pos - self.target))

    def _check_action(self, action: Any) -> np.ndarray:
        array = check_vector(action, N_JOINTS, "action")
        # A small tolerance absorbs float32 round-off from tanh policies; anything larger is a caller bug.
        if np.any(np.abs(array) > 1.0 + 1e-6):
            raise ValueError(f"action must lie in [-1, 1], got {array.tolist()}")
        return np.clip(array, -1.0, 1.0)


def scripted_reach_action(env: ReachEnv, gain: float = 0.3, damping: float = 0.05) -> np.ndarray:
    """A reference controller in the env's action space: one position-only damped-least-squares step.

    It integrates on the joint command, as the tabletop's IK does: the command's forward kinematics
    moves `gain` of the way to the target per step, and the joint change is scaled (direction kept) to
    at most max_joint_step. Shows the task is solvable; a learned controller should match it.
    """
    q = env.joint_targets
    pos, _ = env.kinematics.forward(q)
    jac = env.kinematics.jacobian(q)[:3]
    dq = damped_least_squares(jac, gain * (env.target - pos), damping)
    return scale_to_speed_limit(dq / env.config.max_joint_step, 1.0).astype(np.float32)


def make_env(name: str, seed: int = 0, obs_type: str = "state", **options: Any) -> ReachEnv:
    """Factory of the `agent_stack.envs` entry point ``tabletop``: ``make_env("reach", seed=1)``.

    `options` are `ReachConfig` fields (``control_hz=100.0``); anything else is a ValueError.
    """
    bare = name.strip() if isinstance(name, str) else name
    if isinstance(bare, str):
        bare = bare.removeprefix(CLI_PREFIX)
    if bare not in ENV_NAMES:
        raise ValueError(f"unknown tabletop environment {name!r}; available: "
                         f"{', '.join(CLI_PREFIX + n for n in ENV_NAMES)}")
    if obs_type != "state":
        raise ValueError(f"tabletop:reach has state observations only (obs_type='state'), got {obs_type!r}")
    allowed = {f.name for f in fields(ReachConfig)} - {"seed"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        hint = " (set the agent rate with control_hz instead)" if "action_repeat" in unknown else ""
        raise ValueError(f"tabletop:reach does not take {unknown}{hint}; its options are {sorted(allowed)}")
    return ReachEnv(ReachConfig(seed=seed, **options))
