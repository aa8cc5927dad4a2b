"""dm_control suite adapter with a gymnasium-style API for the learned-controller benchmarks.

`DMCEnv` wraps one `dm_control.suite` task the way TD-MPC2 and DreamerV3 consume it: actions in [-1, 1],
an action repeat that sums rewards, state observations flattened to float32, pixel observations as
HxWx3 uint8 rendered offscreen (headless EGL by default, see `sim/__init__.py`), and the suite's time
limit reported as truncation rather than termination.
"""

from __future__ import annotations

import importlib
import inspect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from dm_control import suite
from dm_control.rl import control

DOMAIN_ALIASES: dict[str, str] = {"cup": "ball_in_cup", "pointmass": "point_mass"}
"""Short domain names used by TD-MPC2/DreamerV3 task lists, mapped to the suite's domain names."""

OBS_TYPES = ("state", "pixels", "both")
"""Accepted values of `DMCConfig.obs_type`."""

CLI_PREFIX = "dmc:"
"""Prefix the CLI puts in front of dm_control task names (``dmc:walker-walk``)."""


def _benchmark_names() -> str:
    return ", ".join(f"{domain}-{task}" for domain, task in suite.BENCHMARKING)


def parse_task_name(name: str) -> tuple[str, str]:
    """Split ``"walker-walk"``, ``"dmc:cup-catch"`` or ``"finger-turn-hard"`` into the suite's (domain, task).

    The domain is everything before the first dash (after alias lookup); remaining dashes in the task
    become underscores, so both ``turn-hard`` and ``turn_hard`` name the suite's ``turn_hard``.
    Raises ValueError, listing the benchmarking tasks, when the pair is not in `suite.ALL_TASKS`.
    """
    if not isinstance(name, str):
        raise ValueError(f"task name must be a string like 'walker-walk', got {name!r}")
    bare = name.strip()
    if bare.startswith(CLI_PREFIX):
        bare = bare[len(CLI_PREFIX) :]
    domain, sep, task = bare.partition("-")
    domain = DOMAIN_ALIASES.get(domain, domain)
    task = task.replace("-", "_")
    if not sep or (domain, task) not in suite.ALL_TASKS:
        raise ValueError(
            f"unknown dm_control task {name!r} (parsed as domain={domain!r}, task={task!r}); "
            f"expected 'domain-task', e.g. one of the benchmarking tasks: {_benchmark_names()}"
        )
    return domain, task


def default_time_limit(domain: str, task: str) -> float:
    """The suite's own time limit (seconds) for a task, read from its loader's keyword default.

    dm_control exposes no public accessor for it; every suite loader takes ``time_limit=...``.
    """
    loader = importlib.import_module(f"dm_control.suite.{domain}").SUITE[task]
    return float(inspect.signature(loader).parameters["time_limit"].default)


MAX_SEED = 2**32 - 1
"""Largest seed numpy's RandomState (which dm_control tasks draw from) accepts."""


def _check_int(field: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    # bool is an int subclass; `True` as an image size is a bug, not a 1.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"DMCConfig.{field} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"DMCConfig.{field} must be an integer <= {maximum}, got {value!r}")


@dataclass(frozen=True)
class DMCConfig:
    """Which dm_control suite task to run and how to observe it."""

    name: str = "cartpole-swingup"
    """Task as ``domain-task`` (``walker-walk``), also ``dmc:walker-walk`` and aliases like ``cup-catch``."""
    obs_type: str = "state"
    """``"state"`` (flat float32 vector), ``"pixels"`` (HxWx3 uint8) or ``"both"`` (dict of the two)."""
    image_size: int = 64
    """Side in pixels of the square rendered image; unused for ``obs_type="state"``."""
    camera_id: int | None = None
    """Camera to render; None picks the DreamerV3/TD-MPC2 convention: 2 for quadruped, 0 otherwise."""
    action_repeat: int = 2
    """Physics control steps per agent step; rewards of the repeated steps are summed."""
    seed: int = 0
    """Seed of the task's random state (initial states, targets) used when `reset` gets no seed."""
    time_limit: float | None = None
    """Episode length in seconds of simulated time; None keeps the suite's default for the task."""

    def __post_init__(self) -> None:
        parse_task_name(self.name)
        if self.obs_type not in OBS_TYPES:
            raise ValueError(f"DMCConfig.obs_type must be one of {OBS_TYPES}, got {self.obs_type!r}")
        _check_int("image_size", self.image_size, 1)
        _check_int("action_repeat", self.action_repeat, 1)
        _check_int("seed", self.seed, 0, MAX_SEED)
        if self.camera_id is None:
            # Frozen dataclass: resolve the default once here so every reader sees a concrete camera.
            object.__setattr__(self, "camera_id", 2 if self.domain == "quadruped" else 0)
        _check_int("camera_id", self.camera_id, 0)
        self._check_time_limit()

    def _check_time_limit(self) -> None:
        limit = self.time_limit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float))):
            raise ValueError(f"DMCConfig.time_limit must be a number of seconds or None, got {limit!r}")
        if limit is not None and not (math.isfinite(limit) and limit > 0):
            raise ValueError(f"DMCConfig.time_limit must be finite and > 0 seconds, got {limit!r}")
        if limit is None and not math.isfinite(self.resolved_time_limit):
            # Tasks like lqr never end on their own; an agent loop needs a bound.
            raise ValueError(f"task {self.name!r} has no time limit by default; set DMCConfig.time_limit")

    @property
    def domain(self) -> str:
        """The suite's domain name, e.g. ``ball_in_cup`` for ``cup-catch``."""
        return parse_task_name(self.name)[0]

    @property
    def task(self) -> str:
        """The suite's task name, e.g. ``catch`` for ``cup-catch``."""
        return parse_task_name(self.name)[1]

    @property
    def resolved_time_limit(self) -> float:
        """`time_limit` if set, else the suite's default for the task (seconds)."""
        if self.time_limit is not None:
            return float(self.time_limit)
        return default_time_limit(self.domain, self.task)


UNBOUNDED_ACTION = 1e6
"""Action-spec bounds beyond this magnitude (lqr uses 1e10) are treated as unbounded: no [-1, 1] mapping."""


def rescale_action(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map an action in [-1, 1] affinely onto the box [low, high], element-wise."""
    return low + (action + 1.0) * 0.5 * (high - low)


def flatten_state(observation: dict[str, Any], keys: tuple[str, ...]) -> np.ndarray:
    """Concatenate the observation dict's arrays in `keys` order into one float32 vector."""
    return np.concatenate([np.asarray(observation[k], dtype=np.float32).ravel() for k in keys])


class DMCEnv:
    """One dm_control suite task behind ``reset() -> (obs, info)`` and a 5-tuple ``step``.

    Observations follow `DMCConfig.obs_type`. State vectors concatenate the task's observation dict in
    the order of its observation spec (fixed per task). Episodes end with ``truncated=True`` at the time
    limit and ``terminated=True`` only when dm_control ends an episode with discount 0.

    Attributes: ``observation_shape`` (a tuple, or a dict of tuples for ``"both"``), ``action_dim``,
    ``action_low``/``action_high`` (the [-1, 1] box `step` accepts, float32), ``spec_low``/``spec_high``
    (the task's own actuator bounds that box is mapped onto) and ``max_episode_steps`` (agent steps).
    """

    def __init__(self, config: DMCConfig) -> None:
        if not isinstance(config, DMCConfig):
            raise TypeError(f"DMCEnv expects a DMCConfig, got {type(config).__name__}")
        self.config = config
        self._env = self._load(config.seed)
        self._state_keys = tuple(self._env.observation_spec().keys())
        self.spec_low, self.spec_high = self._action_bounds()
        self.action_dim: int = int(self.spec_low.size)
        self.action_low = np.full(self.action_dim, -1.0, dtype=np.float32)
        self.action_high = np.full(self.action_dim, 1.0, dtype=np.float32)
        for bounds in (self.spec_low, self.spec_high, self.action_low, self.action_high):
            bounds.setflags(write=False)  # shared with callers; an in-place edit would skew every rescale
        self.max_episode_steps: int = self._compute_max_steps()
        self.observation_shape = self._compute_observation_shape()
        self._episode_over = True

    # -- construction -------------------------------------------------------------------------------

    def _load(self, seed: int) -> control.Environment:
        cfg = self.config
        env = suite.load(
            cfg.domain,
            cfg.task,
            task_kwargs={"random": seed, "time_limit": cfg.resolved_time_limit},
        )
        self._grow_offscreen_buffer(env.physics)
        return env

    def _grow_offscreen_buffer(self, physics: control.Physics) -> None:
        # Suite models set a small offscreen framebuffer; rendering larger than it raises, so enlarge it
        # before the first render creates the context.
        visual = physics.model.vis.global_
        size = self.config.image_size
        visual.offwidth = max(int(visual.offwidth), size)
        visual.offheight = max(int(visual.offheight), size)

    def _action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        spec = self._env.action_spec()
        low = np.asarray(spec.minimum, dtype=np.float64).ravel()
        high = np.asarray(spec.maximum, dtype=np.float64).ravel()
        if max(np.abs(low).max(), np.abs(high).max()) > UNBOUNDED_ACTION:
            self._env.close()
            raise ValueError(
                f"task {self.config.name!r} has an unbounded action spec; [-1, 1] actions cannot be rescaled"
            )
        return low, high

    def _compute_max_steps(self) -> int:
        # Same float expression dm_control uses: the episode ends once step_count >= limit / control_dt.
        # The agent sees that divided by the action repeat, rounded up.
        control_steps = math.ceil(self.config.resolved_time_limit / self._env.control_timestep())
        return math.ceil(control_steps / self.config.action_repeat)

    def _compute_observation_shape(self) -> tuple[int, ...] | dict[str, tuple[int, ...]]:
        state_dim = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
        shapes = {"state": (state_dim,), "pixels": (self.config.image_size, self.config.image_size, 3)}
        return shapes if self.config.obs_type == "both" else shapes[self.config.obs_type]

    # -- gymnasium-style API ----------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Start an episode; a `seed` rebuilds the task with that random state so resets are reproducible."""
        if seed is not None:
            _check_int("seed (reset argument)", seed, 0, MAX_SEED)
            # dm_control draws initial states from the RandomState given at load time; reloading is the
            # public way to reseed it.
            self._env.close()
            self._env = self._load(int(seed))
        time_step = self._env.reset()
        self._episode_over = False
        return self._observe(time_step.observation), {"discount": 1.0, "steps": 0}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Apply `action` (in [-1, 1]) for `action_repeat` control steps; returns summed reward."""
        if self._episode_over:
            raise RuntimeError("DMCEnv.step called before reset() or after the episode ended; call reset()")
        scaled = self._scale_action(action)
        reward, time_step, repeats = 0.0, None, 0
        for _ in range(self.config.action_repeat):
            time_step = self._env.step(scaled)
            reward += float(time_step.reward or 0.0)
            repeats += 1
            if time_step.last():
                break
        terminated = time_step.last() and float(time_step.discount) == 0.0
        truncated = time_step.last() and not terminated
        self._episode_over = bool(time_step.last())
        info = {"discount": float(time_step.discount), "steps": repeats}
        return self._observe(time_step.observation), reward, bool(terminated), bool(truncated), info

    def render(self) -> np.ndarray:
        """The current frame as HxWx3 uint8 from the configured camera, whatever the obs_type."""
        size = self.config.image_size
        frame = self._env.physics.render(height=size, width=size, camera_id=self.config.camera_id)
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def close(self) -> None:
        """Release the physics and its rendering context."""
        self._env.close()
        self._episode_over = True

    # -- helpers ----------------------------------------------------------------------------------

    def _scale_action(self, action: Any) -> np.ndarray:
        try:
            array = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"action must be numeric, got {action!r}") from error
        if array.shape != (self.action_dim,):
            raise ValueError(f"action must have shape ({self.action_dim},), got {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"action must be finite, got {array.tolist()}")
        # A small tolerance absorbs float32 round-off from tanh policies; anything larger is a caller bug.
        if np.any(np.abs(array) > 1.0 + 1e-6):
            raise ValueError(f"action must lie in [-1, 1], got {array.tolist()}")
        array = np.clip(array, -1.0, 1.0)
        return rescale_action(array, self.spec_low, self.spec_high)

    def _observe(self, observation: dict[str, Any]) -> Any:
        obs_type = self.config.obs_type
        if obs_type == "state":
            return flatten_state(observation, self._state_keys)
        if obs_type == "pixels":
            return self.render()
        return {"state": flatten_state(observation, self._state_keys), "pixels": self.render()}


def make_env(name: str, seed: int = 0, obs_type: str = "state", action_repeat: int = 2,
             image_size: int = 64) -> DMCEnv:
    """Factory of the `agent_stack.envs` entry point ``dmc``: ``make_env("walker-walk", seed=1)``."""
    return DMCEnv(DMCConfig(name=name, obs_type=obs_type, action_repeat=action_repeat, image_size=image_size,
                            seed=seed))
