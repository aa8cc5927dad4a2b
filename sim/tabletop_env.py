"""The tabletop environment: Jaco arm, blocks, pads and a bin, driven by end-effector deltas or joint targets.

Two ways in:
* gym-style `reset` / `step` at `policy_hz` (the VLA and the learning code);
* `set_joint_targets` / `set_gripper` / `set_ee_target` + `advance(seconds)` (the ROS sim node, which
  owns the clock and streams commands in).

An end-effector target is tracked by the damped-least-squares controller of
`agent_stack.control.osc` at `control_hz`; it integrates the joint command kinematically (Jacobian at
the last command, not at the measured q), and the stiff position servos of the scene follow that
command. Integrating on the command keeps the IK free of servo lag and contact noise, so the TCP ends
where the target is, not short of it.

Observation "state" vector (14,): ee_pos (3), ee_quat w x y z (4), gripper opening (1), arm joint_pos (6).
Observation "ee_target" (7,): the end-effector target (position, quaternion w x y z) the next ee_delta
action moves; a policy that predicts absolute targets turns them into deltas against it.
`sim_time` never goes back, not even at reset, so a ROS clock published from it stays monotonic.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import mujoco
import numpy as np

from agent_stack.control.osc import DifferentialIKController, apply_ee_delta, normalize_quat
from sim.kinematics import JacoKinematics, jaco_tracking_config
from sim.scene import (ARM_JOINT_NAMES, BIN_NAME, BLOCK_NAMES, CAMERA_NAMES, FINGER_BODIES, FINGER_CLOSED,
                       FINGER_JOINT_NAMES, FINGER_OPEN, HAND_BODY, HOME_QPOS, MJCF_CAMERA_NAMES, gripper_opening,
                       MJCF_JOINT_NAMES, PAD_NAMES, TCP_SITE, SceneConfig, bin_half_size, compile_scene,
                       object_kind, sample_layout, yaw_to_quat)
from sim.state import (BLOCK_HALF_SIZE, COLORS, PAD_HALF_SIZE, TABLE_HEIGHT, WORKSPACE_HIGH, WORKSPACE_LOW,
                       ObjectState, SceneState, colour_renaming)

CONTROL_MODES = ("ee_delta", "joint")
STATE_KEYS = ("ee_pos", "ee_quat", "gripper", "joint_pos")
"""Order of the pieces concatenated into obs["state"]."""
SETTLE_SECONDS = 0.3
"""Physics time run at reset so blocks come to rest and the arm holds its home pose."""
LIFT_CLEARANCE = 0.005
"""A block counts as off the table when its bottom is this far (m) above the table top."""


@dataclass
class TabletopConfig:
    """Everything that shapes an episode of the tabletop environment."""

    control_mode: str = "ee_delta"
    """'ee_delta': action = base-frame TCP delta + gripper; 'joint': 6 arm joint targets + gripper."""
    cameras: tuple[str, ...] = ("front", "wrist")
    """Cameras rendered into every observation (subset of sim.scene.CAMERA_NAMES)."""
    image_size: tuple[int, int] = (128, 128)
    """(height, width) of observation images in pixels."""
    policy_hz: float = 10.0
    """Rate of `step` calls: each step advances 1 / policy_hz seconds."""
    control_hz: float = 100.0
    """Rate of the inner damped-least-squares loop that tracks the end-effector target (>= 50)."""
    physics_dt: float = 0.002
    """MuJoCo timestep (s)."""
    max_episode_steps: int = 300
    """`step` reports truncated=True from this step on."""
    render: bool = True
    """False: observations carry no images and no renderer is created."""
    max_translation: float = 0.05
    """Per-step clip (m) of each of dx, dy, dz in ee_delta mode."""
    max_rotation: float = 0.25
    """Per-step clip (rad) of each of droll, dpitch, dyaw in ee_delta mode."""

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        self.image_size = tuple(int(v) for v in self.image_size)
        if self.control_mode not in CONTROL_MODES:
            raise ValueError(f"TabletopConfig.control_mode must be one of {CONTROL_MODES}, "
                             f"got {self.control_mode!r}")
        unknown = [c for c in self.cameras if c not in CAMERA_NAMES]
        if unknown or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"TabletopConfig.cameras must be distinct names from {CAMERA_NAMES}, "
                             f"got {self.cameras}")
        if len(self.image_size) != 2 or min(self.image_size) < 1:
            raise ValueError(f"TabletopConfig.image_size must be (height, width) >= 1, got {self.image_size}")
        for name in ("policy_hz", "control_hz", "physics_dt", "max_translation", "max_rotation"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"TabletopConfig.{name} must be a finite positive number, got {value!r}")
        if self.control_hz < 50:
            raise ValueError(f"TabletopConfig.control_hz must be >= 50, got {self.control_hz}")
        if self.control_hz * self.physics_dt > 1.0 + 1e-9 or self.policy_hz > self.control_hz:
            raise ValueError("TabletopConfig needs policy_hz <= control_hz <= 1 / physics_dt, got "
                             f"{self.policy_hz}, {self.control_hz}, 1/{self.physics_dt}")
        if int(self.max_episode_steps) != self.max_episode_steps or self.max_episode_steps < 1:
            raise ValueError("TabletopConfig.max_episode_steps must be a positive integer, "
                             f"got {self.max_episode_steps}")


class TabletopEnv:
    """MuJoCo tabletop with a Kinova Jaco; see the module docstring for the two ways to drive it."""

    def __init__(self, config: TabletopConfig | None = None) -> None:
        self.config = config or TabletopConfig()
        self.model = compile_scene(SceneConfig(physics_dt=self.config.physics_dt))
        self.data = mujoco.MjData(self.model)
        self.kinematics = JacoKinematics(self.model)  # own MjData: IK never touches the simulation state
        self.controller = DifferentialIKController(self.kinematics, jaco_tracking_config(self.kinematics))
        self.joint_names: list[str] = [*ARM_JOINT_NAMES, *FINGER_JOINT_NAMES]
        self._index_model()
        # Ticks of the DLS loop fall on whole physics steps; the nearest whole number keeps the rate exact
        # for the usual rates (100 Hz over 2 ms) and close otherwise.
        self._control_every = max(1, round(1.0 / (self.config.control_hz * self.config.physics_dt)))
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self.task = None
        self.sim_time = 0.0
        self._time_debt = 0.0
        self._steps = 0
        self._physics_steps = 0
        self._ee_target: tuple[np.ndarray, np.ndarray] | None = None
        self._target_pose: tuple[np.ndarray, np.ndarray] | None = None
        self._reset_physics(sample_layout(np.random.default_rng(0)))

    # --- model lookup --------------------------------------------------------------------------------------

    def _index_model(self) -> None:
        m = self.model
        joint_ids = [m.joint(MJCF_JOINT_NAMES[n]).id for n in self.joint_names]
        self._qpos_adr = np.array([m.jnt_qposadr[j] for j in joint_ids])
        self._dof_adr = np.array([m.jnt_dofadr[j] for j in joint_ids])
        self._arm_act = np.array([m.actuator(MJCF_JOINT_NAMES[n]).id for n in ARM_JOINT_NAMES])
        self._finger_act = np.array([m.actuator(MJCF_JOINT_NAMES[n]).id for n in FINGER_JOINT_NAMES])
        self._tcp = m.site(TCP_SITE).id
        self._block_body = {name: m.body(name).id for name in BLOCK_NAMES}
        self._block_qpos = {name: m.jnt_qposadr[m.joint(name).id] for name in BLOCK_NAMES}
        self._mocap = {name: m.body_mocapid[m.body(name).id] for name in (*PAD_NAMES, BIN_NAME)}
        self._table_geom = m.geom("table").id
        self._geom_role = self._geom_roles()

    def _geom_roles(self) -> dict[int, str]:
        """geom id -> "finger_i", "palm" or a block name, for contact-based grasp detection."""
        roles: dict[int, str] = {}
        hand = self.model.body(HAND_BODY).id
        for g in range(self.model.ngeom):
            body = self.model.geom_bodyid[g]
            name = self.model.body(body).name
            for i, bodies in enumerate(FINGER_BODIES, start=1):
                if name in bodies:
                    roles[g] = f"finger_{i}"
            if body == hand:
                roles[g] = "palm"
            if name in self._block_body:
                roles[g] = name
        return roles

    # --- episodes ------------------------------------------------------------------------------------------

    def reset(self, seed: int | None = None, task=None) -> tuple[dict, dict]:
        """New seeded layout (arranged by `task`), arm at home with the hand open, blocks settled."""
        rng = np.random.default_rng(seed)
        self.task = task
        layout = sample_layout(rng)
        if task is not None:
            layout = _check_layout(task.arrange(dict(layout), rng), layout)
        self._reset_physics(layout)
        self._steps = 0
        return self._observation(), self._info()

    def _reset_physics(self, layout: dict[str, np.ndarray]) -> None:
        mujoco.mj_resetData(self.model, self.data)
        for name, (x, y, z, yaw) in layout.items():
            if object_kind(name) == "block":
                adr = self._block_qpos[name]
                self.data.qpos[adr:adr + 3] = (x, y, z)
                self.data.qpos[adr + 3:adr + 7] = yaw_to_quat(yaw)
            else:
                self.data.mocap_pos[self._mocap[name]] = (x, y, z)
                self.data.mocap_quat[self._mocap[name]] = yaw_to_quat(yaw)
        self.data.qpos[self._qpos_adr[:6]] = HOME_QPOS
        self.data.qpos[self._qpos_adr[6:]] = FINGER_OPEN
        self.data.ctrl[self._arm_act] = HOME_QPOS
        self.set_gripper(1.0)
        self._ee_target = None
        mujoco.mj_forward(self.model, self.data)
        self._target_pose = self.ee_pose()
        self._time_debt = 0.0
        self._physics_steps = 0  # control ticks start in phase every episode: episodes replay exactly
        self.advance(SETTLE_SECONDS)

    def set_task(self, task) -> None:
        """Swap the task without touching the scene (the ROS node's `task` topic)."""
        self.task = task

    def success(self) -> bool:
        return bool(self.task is not None and self.task.success(self.scene_state()))

    def _info(self) -> dict:
        return {"instruction": getattr(self.task, "instruction", "") if self.task is not None else "",
                "family": getattr(self.task, "family", "") if self.task is not None else "",
                "success": self.success()}

    # --- gym-style stepping ------------------------------------------------------------------------------

    def step(self, action) -> tuple[dict, float, bool, bool, dict]:
        """Apply one policy action, advance 1 / policy_hz seconds; reward 1.0 and terminated on success."""
        action = check_vector(action, 7, "action")
        if self.config.control_mode == "ee_delta":
            self._apply_ee_delta(action[:6])
        else:
            self.set_joint_targets(action[:6])
        self.set_gripper(float(np.clip(action[6], 0.0, 1.0)))
        self.advance(1.0 / self.config.policy_hz)
        self._steps += 1
        info = self._info()
        success = info["success"]
        truncated = self._steps >= self.config.max_episode_steps and not success
        return self._observation(), float(success), success, truncated, info

    def _apply_ee_delta(self, delta: np.ndarray) -> None:
        # The delta moves the previous target, not the measured pose, so small steps add up without the
        # servo's tracking error leaking into every step.
        # The workspace clip keeps a policy from winding the target up far out of reach.
        self.set_ee_target(*apply_ee_delta(*self._target_pose, delta, self.config.max_translation,
                                           self.config.max_rotation, WORKSPACE_LOW, WORKSPACE_HIGH))

    def ee_target_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The end-effector target (position, quaternion w x y z) that the next ee_delta action moves."""
        pos, quat = self._target_pose
        return pos.copy(), quat.copy()

    # --- streaming commands (ROS sim node) -----------------------------------------------------------------

    def set_joint_targets(self, q) -> None:
        """Absolute position targets of the 6 arm joints; clears any end-effector target."""
        q = check_vector(q, 6, "joint targets")
        lower, upper = self.kinematics.joint_limits()
        self._ee_target = None
        self.data.ctrl[self._arm_act] = np.clip(q, lower, upper)
        # A later ee_delta step starts from where these joints put the TCP, not from a stale target.
        self._target_pose = self.kinematics.forward(self.data.ctrl[self._arm_act].copy())

    def set_gripper(self, opening: float) -> None:
        """Gripper opening, 0 closed … 1 open."""
        opening = float(opening)
        if not np.isfinite(opening) or not 0.0 <= opening <= 1.0:
            raise ValueError(f"gripper opening must be a number in [0, 1], got {opening!r}")
        self.data.ctrl[self._finger_act] = FINGER_CLOSED + opening * (FINGER_OPEN - FINGER_CLOSED)

    def set_ee_target(self, pos, quat_wxyz) -> None:
        """Absolute TCP target pose, world (= base) frame; tracked at control_hz while advancing."""
        pos = check_vector(pos, 3, "ee target position")
        quat = normalize_quat(check_vector(quat_wxyz, 4, "ee target quaternion"))
        self._ee_target = (pos, quat)
        self._target_pose = (pos.copy(), quat.copy())

    def advance(self, seconds: float) -> None:
        """Run physics for `seconds` (>= 0); a remainder below one physics step carries over to the next."""
        if not np.isfinite(seconds) or seconds < 0:
            raise ValueError(f"advance needs a finite number of seconds >= 0, got {seconds!r}")
        dt = self.model.opt.timestep
        self._time_debt += seconds
        n_steps = int(np.floor(self._time_debt / dt + 1e-6))
        self._time_debt = max(0.0, self._time_debt - n_steps * dt)
        for _ in range(n_steps):
            if self._ee_target is not None and self._physics_steps % self._control_every == 0:
                self._control_tick(self._control_every * dt)
            mujoco.mj_step(self.model, self.data)
            self._physics_steps += 1
        if n_steps:
            self.sim_time += n_steps * dt
            self._refresh()

    def _refresh(self) -> None:
        """Positions, site frames and contacts of the current state, without changing the trajectory."""
        # mj_forward overwrites the solver's warm start; restoring it makes the physics independent of
        # how `advance` calls are chunked (same seed + same commands -> bit-identical states).
        warmstart = self.data.qacc_warmstart.copy()
        mujoco.mj_forward(self.model, self.data)
        self.data.qacc_warmstart[:] = warmstart

    def _control_tick(self, dt: float) -> None:
        q_command = self.data.ctrl[self._arm_act].copy()
        self.data.ctrl[self._arm_act] = self.controller.command(q_command, *self._ee_target, dt)

    # --- reading the state ---------------------------------------------------------------------------------

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._qpos_adr].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._dof_adr].copy()

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured TCP position (3,) and quaternion w x y z (4,)."""
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self._tcp])
        return self.data.site_xpos[self._tcp].copy(), quat

    def gripper_opening(self) -> float:
        return gripper_opening(self.data.qpos[self._qpos_adr[6:]])

    def scene_state(self) -> SceneState:
        pos, quat = self.ee_pose()
        return SceneState(objects=self._objects(), ee_pos=pos, ee_quat=quat,
                          gripper_opening=self.gripper_opening(), grasped=self._grasped(),
                          table_height=TABLE_HEIGHT)

    def _objects(self) -> dict[str, ObjectState]:
        objects = {}
        for name, body in self._block_body.items():
            objects[name] = ObjectState(name, "block", name.removesuffix("_block"),
                                        self.data.xpos[body].copy(), self.data.xquat[body].copy(),
                                        np.full(3, BLOCK_HALF_SIZE))
        for name in (*PAD_NAMES, BIN_NAME):
            mocap = self._mocap[name]
            kind = object_kind(name)
            half = np.array(PAD_HALF_SIZE) if kind == "pad" else bin_half_size()
            objects[name] = ObjectState(name, kind, name.removesuffix("_pad") if kind == "pad" else None,
                                        self.data.mocap_pos[mocap].copy(),
                                        self.data.mocap_quat[mocap].copy(), half)
        return objects

    def _grasped(self) -> frozenset[str]:
        touches: dict[str, set[str]] = {name: set() for name in BLOCK_NAMES}
        on_table: set[str] = set()
        for contact in self.data.contact[: self.data.ncon]:
            a, b = self._geom_role.get(contact.geom1), self._geom_role.get(contact.geom2)
            for block, other, other_geom in ((a, b, contact.geom2), (b, a, contact.geom1)):
                if block in touches:
                    if other is not None and other not in touches:
                        touches[block].add(other)
                    if other_geom == self._table_geom:
                        on_table.add(block)
        grasped = set()
        for block, parts in touches.items():
            fingers = {p for p in parts if p.startswith("finger")}
            held = len(fingers) >= 2 or (fingers and "palm" in parts)
            bottom = self.data.xpos[self._block_body[block]][2] - BLOCK_HALF_SIZE
            lifted = bottom > TABLE_HEIGHT + LIFT_CLEARANCE
            if held and lifted and block not in on_table:
                grasped.add(block)
        return frozenset(grasped)

    def _observation(self) -> dict:
        pos, quat = self.ee_pose()
        obs = {"joint_pos": self.joint_positions()[:6], "joint_vel": self.joint_velocities()[:6],
               "gripper": np.array([self.gripper_opening()]), "ee_pos": pos, "ee_quat": quat}
        obs["state"] = np.concatenate([obs[key] for key in STATE_KEYS]).astype(np.float32)
        obs["ee_target"] = np.concatenate(self._target_pose)  # the pose the next ee_delta action moves
        if self.config.render:
            for camera in self.config.cameras:
                obs[camera] = self.render(camera)
        return obs

    # --- cameras -------------------------------------------------------------------------------------------

    def render(self, camera: str, size: tuple[int, int] | None = None) -> np.ndarray:
        """RGB image (H, W, 3) uint8 from a named camera; one renderer per size, created on first use."""
        if camera not in CAMERA_NAMES:
            raise ValueError(f"unknown camera {camera!r}; choose from {CAMERA_NAMES}")
        height, width = _check_size(size or self.config.image_size)
        renderer = self._renderers.get((height, width))
        if renderer is None:
            self._ensure_framebuffer(height, width)
            renderer = self._renderers[(height, width)] = mujoco.Renderer(self.model, height, width)
        renderer.update_scene(self.data, camera=MJCF_CAMERA_NAMES[camera])
        return renderer.render()

    @contextmanager
    def recoloured(self, renaming: dict[str, str]) -> Iterator[None]:
        """Inside the block, colour c's block and pad are drawn in the colour renaming[c] (see
        `sim.state.colour_renaming`). Only the drawing changes: physics, scene state and task keep the
        original names, so `collect` can show one demonstration under renamed colours."""
        renaming = colour_renaming(renaming)
        geoms = {(colour, kind): self.model.geom(f"{colour}_{kind}").id for colour in COLORS
                 for kind in ("block", "pad")}
        drawn = {key: self.model.geom_rgba[geom].copy() for key, geom in geoms.items()}
        try:
            for (colour, kind), geom in geoms.items():
                self.model.geom_rgba[geom] = drawn[renaming[colour], kind]
            yield
        finally:
            for key, geom in geoms.items():
                self.model.geom_rgba[geom] = drawn[key]

    def _ensure_framebuffer(self, height: int, width: int) -> None:
        # The offscreen buffer is fixed at compile time (640x480 by default); grow it for bigger images.
        visual = self.model.vis.global_
        visual.offwidth, visual.offheight = max(visual.offwidth, width), max(visual.offheight, height)

    def camera_intrinsics(self, camera: str, size: tuple[int, int] | None = None) -> np.ndarray:
        """3x3 pinhole K for `camera` at (height, width), from its vertical field of view (square pixels)."""
        if camera not in CAMERA_NAMES:
            raise ValueError(f"unknown camera {camera!r}; choose from {CAMERA_NAMES}")
        height, width = _check_size(size or self.config.image_size)
        fovy = np.deg2rad(self.model.cam_fovy[self.model.camera(MJCF_CAMERA_NAMES[camera]).id])
        focal = 0.5 * height / np.tan(fovy / 2)
        return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    def __enter__(self) -> TabletopEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_vector(values, length: int, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be {length} numbers, got {values!r}") from error
    if array.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf: {array}")
    return array


def _check_size(size) -> tuple[int, int]:
    if len(size) != 2 or int(size[0]) < 1 or int(size[1]) < 1:
        raise ValueError(f"image size must be (height, width) >= 1, got {size!r}")
    return int(size[0]), int(size[1])


def _check_layout(arranged, sampled: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A task's arrangement: known names, finite [x, y, z, yaw]; objects left out keep the sampled pose."""
    if not isinstance(arranged, dict):
        raise ValueError("task.arrange must return a dict name -> [x, y, z, yaw], "
                         f"got {type(arranged).__name__}")
    unknown = set(arranged) - set(sampled)
    if unknown:
        raise ValueError(f"task.arrange returned unknown objects {sorted(unknown)}; known: {sorted(sampled)}")
    checked = {name: check_vector(pose, 4, f"layout[{name!r}]") for name, pose in arranged.items()}
    return {**sampled, **checked}
