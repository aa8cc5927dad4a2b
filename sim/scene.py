"""The MuJoCo tabletop scene: a Kinova Jaco arm with its 3-finger hand, four blocks, four pads and a bin.

Built once with `dm_control.mjcf` (the dm_control Kinova entities), compiled to a plain `mujoco.MjModel`;
stepping and rendering then use `mujoco` directly. World frame: origin at the robot base on the table
top, x forward, y left, z up.

Joint names. MJCF attachment prefixes every arm joint (`jaco_arm/joint_1`). What this module exposes,
and what ROS `joint_states` carries, are the stable prefix-free names `jaco_joint_1..6` and
`jaco_finger_1..3` (the kinova-ros `<robot>_joint_<n>` convention); `MJCF_JOINT_NAMES` maps them to the
compiled model's names.

Tool centre point. `TCP_SITE` is a site added to the hand on the finger axis, 18.7 cm from the wrist
flange: with it at a resting block's centre, the closed fingertips end ~1.2 cm above the table.
Its frame is that of dm_control's `gripsite`: z points out along the fingers, x is the direction in
which finger 1 closes against fingers 2 and 3. So a top-down grasp is orientation `TOP_DOWN_QUAT` (pi
about world x) turned by the block's yaw, with the TCP at the block centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from dm_control import mjcf
from dm_control.entities.manipulators.kinova import JacoArm, JacoHand

from sim.state import (BIN_INNER_HALF_SIZE, BIN_WALL_HEIGHT, BLOCK_HALF_SIZE, COLORS, PAD_HALF_SIZE,
                       SPAWN_HIGH, SPAWN_LOW, TABLE_HEIGHT)

ARM_JOINT_NAMES: tuple[str, ...] = tuple(f"jaco_joint_{i}" for i in range(1, 7))
"""The six arm joints, base to wrist, as published on joint_states."""
FINGER_JOINT_NAMES: tuple[str, ...] = tuple(f"jaco_finger_{i}" for i in range(1, 4))
"""The three finger joints, as published on joint_states."""
MJCF_JOINT_NAMES: dict[str, str] = {
    **{name: f"jaco_arm/joint_{i}" for i, name in enumerate(ARM_JOINT_NAMES, start=1)},
    **{name: f"jaco_arm/jaco_hand/finger_{i}" for i, name in enumerate(FINGER_JOINT_NAMES, start=1)},
}
"""Public joint name -> joint name in the compiled MuJoCo model."""
TCP_SITE = "jaco_arm/jaco_hand/tcp"
"""Tool centre point site in the compiled model (see module docstring)."""
HAND_BODY = "jaco_arm/jaco_hand/hand"
FINGER_BODIES: tuple[tuple[str, str], ...] = tuple(
    (f"jaco_arm/jaco_hand/b_finger_{i}", f"jaco_arm/jaco_hand/b_finger_tip_{i}") for i in range(1, 4))
"""(proximal link, tip) bodies of fingers 1, 2, 3, for contact-based grasp detection."""

FINGER_OPEN = 0.45
"""Finger joint angle (rad) for gripper opening 1. Narrower than the joint's lower limit (0.15): the tips
still clear a 5 cm block by about 2.5 cm each side, and stay ~1.3 cm further from neighbouring objects."""
FINGER_CLOSED = 1.35
"""Finger joint angle (rad) fully closed: the joint's upper limit."""


def gripper_opening(finger_positions) -> float:
    """Opening 0 (closed) … 1 (open) from the finger joint angles (rad), as the observation reports it."""
    closed = (float(np.mean(finger_positions)) - FINGER_OPEN) / (FINGER_CLOSED - FINGER_OPEN)
    return float(np.clip(1.0 - closed, 0.0, 1.0))

TOP_DOWN_QUAT = np.array([0.0, 1.0, 0.0, 0.0])
"""TCP orientation (w x y z) pointing straight down, fingers closing along world x."""
HOME_QPOS = np.array([3.0091, 3.6416, 1.6029, -0.3630, 1.2994, -2.0663])
"""Arm posture at reset, elbow up: TCP at HOME_TCP_POS with TOP_DOWN_QUAT (solved once with the DLS
controller; `tests/sim/test_scene.py` checks it)."""
HOME_TCP_POS = np.array([0.45, 0.0, 0.25])

ARM_TORQUE_LIMITS = (30.5, 30.5, 30.5, 6.8, 6.8, 6.8)
"""Kinova Jaco joint torque limits (N m), the values dm_control's JacoArm uses."""
BLOCK_NAMES = tuple(f"{color}_block" for color in COLORS)
PAD_NAMES = tuple(f"{color}_pad" for color in COLORS)
BIN_NAME = "bin"
BIN_WALL_THICKNESS = 0.01
CAMERA_NAMES = ("front", "wrist")
MJCF_CAMERA_NAMES: dict[str, str] = {"front": "front", "wrist": "jaco_arm/jaco_hand/wrist"}
"""Public camera name -> camera name in the compiled model (attachment prefixes the wrist camera)."""


@dataclass
class SceneConfig:
    """Physical parameters of the scene; the defaults are tuned for reliable 3-finger top-down grasps."""

    physics_dt: float = 0.002
    """MuJoCo timestep (s)."""
    block_mass: float = 0.075
    """Mass of each 5 cm block (kg)."""
    block_friction: tuple[float, float, float] = (1.2, 0.02, 0.0005)
    """Sliding, torsional, rolling friction of the blocks (condim 4 uses the first two)."""
    arm_kp: tuple[float, float] = (2000.0, 500.0)
    """Position-servo stiffness (N m / rad) of the large joints 1-3 and the small joints 4-6."""
    finger_kp: float = 3.0
    """Finger position-servo stiffness (N m / rad); saturates at finger_force_limit when closed on a block."""
    finger_force_limit: float = 1.0
    """Finger actuator torque limit (N m), dm_control's value (about 25 N grip)."""
    arm_armature: tuple[float, float] = (0.5, 0.2)
    """Reflected rotor inertia (kg m^2) of joints 1-3 and 4-6. dm_control's 4 and 2 (tuned for its velocity
    servos) make the wrist so sluggish at the Kinova torque limits that the tool leaves a straight path."""
    impratio: float = 10.0
    """Frictional-to-normal impedance ratio; > 1 with elliptic cones stops grasped blocks creeping out."""

    def __post_init__(self) -> None:
        if len(self.arm_kp) != 2 or len(self.arm_armature) != 2 or len(self.block_friction) != 3:
            raise ValueError("SceneConfig.arm_kp and arm_armature need 2 values, block_friction 3 values")
        positive = {"physics_dt": self.physics_dt, "block_mass": self.block_mass, "finger_kp": self.finger_kp,
                    "finger_force_limit": self.finger_force_limit, "impratio": self.impratio,
                    "arm_kp[0]": self.arm_kp[0], "arm_kp[1]": self.arm_kp[1],
                    "arm_armature[0]": self.arm_armature[0], "arm_armature[1]": self.arm_armature[1],
                    "block_friction[0]": self.block_friction[0]}
        for name, value in positive.items():
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"SceneConfig.{name} must be a finite positive number, got {value!r}")
        if self.physics_dt > 0.01:
            raise ValueError(f"SceneConfig.physics_dt must be <= 0.01 s for stable contacts, "
                             f"got {self.physics_dt}")


# --- building -----------------------------------------------------------------------------------------------

def build_mjcf(config: SceneConfig | None = None) -> mjcf.RootElement:
    """The whole scene as an MJCF tree (not compiled)."""
    config = config or SceneConfig()
    root = mjcf.RootElement(model="tabletop")
    _add_options_and_visuals(root, config)
    _add_table(root)
    arm, hand = JacoArm(), JacoHand()
    _use_position_actuators(arm, hand, config)
    _add_tcp_and_wrist_camera(hand)
    arm.attach(hand)
    root.attach(arm.mjcf_model)  # base welded to the world origin, i.e. bolted on the table top
    for color, rgba in COLORS.items():
        _add_block(root, color, rgba, config)
        _add_pad(root, color, rgba)
    _add_bin(root)
    _add_front_camera(root)
    return root


def compile_scene(config: SceneConfig | None = None) -> mujoco.MjModel:
    """Compile the scene once into a plain MuJoCo model."""
    root = build_mjcf(config)
    return mujoco.MjModel.from_xml_string(root.to_xml_string(), assets=root.get_assets())


def _add_options_and_visuals(root: mjcf.RootElement, config: SceneConfig) -> None:
    root.option.timestep = config.physics_dt
    # Elliptic cones + impratio make static friction in a grasp behave like Coulomb's law instead of a
    # soft spring, which is what keeps a squeezed block from sliding out of the fingers.
    root.option.cone = "elliptic"
    # Stiff position servos with derivative damping are stable at 2 ms only when damping is implicit.
    root.option.integrator = "implicitfast"
    root.option.impratio = config.impratio
    root.visual.headlight.ambient = (0.35, 0.35, 0.35)
    root.visual.headlight.diffuse = (0.4, 0.4, 0.4)
    root.visual.map.znear = 0.01
    # Off-screen buffer large enough for `sim view` stills and videos.
    getattr(root.visual, "global").offwidth = 1280
    getattr(root.visual, "global").offheight = 1280
    root.asset.add("texture", name="skybox", type="skybox", builtin="gradient", rgb1=(0.6, 0.7, 0.8),
                   rgb2=(0.1, 0.1, 0.15), width=256, height=256)
    grid = root.asset.add("texture", name="grid", type="2d", builtin="checker", rgb1=(0.25, 0.26, 0.28),
                          rgb2=(0.3, 0.31, 0.33), width=256, height=256)
    root.asset.add("material", name="floor", texture=grid, texrepeat=(8, 8))
    root.asset.add("material", name="table", rgba=(0.72, 0.62, 0.5, 1.0))
    root.worldbody.add("light", name="top", pos=(0.5, 0.0, 2.0), dir=(0, 0, -1), directional=True,
                       diffuse=(0.6, 0.6, 0.6), castshadow=False)
    # No shadows and no reflections: on the software (llvmpipe) EGL renderer of a CPU machine each costs
    # 1.2-3x render time, and rendering two cameras dominates the policy loop's real-time factor.


def _add_table(root: mjcf.RootElement) -> None:
    top_half = (0.6, 0.6, 0.02)
    centre = (0.4, 0.0, TABLE_HEIGHT - top_half[2])
    root.worldbody.add("geom", name="table", type="box", size=top_half, pos=centre, material="table",
                       friction=(1.0, 0.005, 0.0001))
    leg_height = 0.73
    for i, (x, y) in enumerate([(-0.15, -0.55), (-0.15, 0.55), (0.95, -0.55), (0.95, 0.55)]):
        root.worldbody.add("geom", name=f"table_leg_{i}", type="box", size=(0.03, 0.03, leg_height / 2),
                           pos=(x, y, TABLE_HEIGHT - 0.04 - leg_height / 2), material="table",
                           contype=0, conaffinity=0)
    root.worldbody.add("geom", name="floor", type="plane", size=(3, 3, 0.1), material="floor",
                       pos=(0, 0, TABLE_HEIGHT - 0.04 - leg_height), contype=0, conaffinity=0)


def _use_position_actuators(arm: JacoArm, hand: JacoHand, config: SceneConfig) -> None:
    """Swap dm_control's velocity servos for position servos (the forward_command_controller convention)."""
    for actuator in list(arm.actuators) + list(hand.actuators):
        actuator.remove()
    for joint, torque in zip(arm.joints, ARM_TORQUE_LIMITS):
        kp = config.arm_kp[0] if torque > 10 else config.arm_kp[1]
        # The Kinova firmware compensates gravity; gravcomp through the actuator (actuatorgravcomp) does
        # the same and still counts against the joint's torque limit (actuatorfrcrange).
        joint.actuatorgravcomp = "true"
        joint.actuatorfrcrange = (-torque, torque)
        joint.armature = config.arm_armature[0] if torque > 10 else config.arm_armature[1]
        arm.mjcf_model.actuator.add("position", name=joint.name, joint=joint, kp=kp, dampratio=1.0,
                                    forcelimited=True, forcerange=(-torque, torque))
    for body in arm.mjcf_model.find_all("body") + hand.mjcf_model.find_all("body"):
        body.gravcomp = 1.0
    for joint in hand.joints:
        hand.mjcf_model.actuator.add("position", name=joint.name, joint=joint, kp=config.finger_kp,
                                     ctrllimited=True, ctrlrange=(FINGER_OPEN, FINGER_CLOSED),
                                     forcelimited=True,
                                     forcerange=(-config.finger_force_limit, config.finger_force_limit))


def _add_tcp_and_wrist_camera(hand: JacoHand) -> None:
    hand_body = hand.mjcf_model.find("body", "hand")
    grip_quat = hand.grip_site.quat  # z along the fingers, x along finger 1's closing direction
    hand_body.add("site", name="tcp", pos=(0.0, 0.0, -0.187), quat=grip_quat, size=[0.005], group=4)
    # Behind fingers 2 and 3, looking along the fingers and tilted 20 deg towards the hand's axis: the
    # grasp point shows in the gap between those two fingers (behind finger 1 the finger hides it).
    hand_body.add("camera", name="wrist", pos=(0.0, -0.07, -0.06), fovy=75,
                  xyaxes=(-1, 0, 0, 0, -np.cos(0.35), -np.sin(0.35)))


def _add_block(root: mjcf.RootElement, color: str, rgba, config: SceneConfig) -> None:
    body = root.worldbody.add("body", name=f"{color}_block", pos=(0.5, 0.0, TABLE_HEIGHT + BLOCK_HALF_SIZE))
    body.add("freejoint", name=f"{color}_block")
    body.add("geom", name=f"{color}_block", type="box", size=[BLOCK_HALF_SIZE] * 3, rgba=rgba,
             mass=config.block_mass, condim=4, friction=config.block_friction,
             solref=(0.01, 1.0), solimp=(0.95, 0.99, 0.001), priority=1)


def _add_pad(root: mjcf.RootElement, color: str, rgba) -> None:
    # Mocap bodies are static to the physics but movable at reset without editing the model.
    body = root.worldbody.add("body", name=f"{color}_pad", mocap=True, pos=(0.5, 0.0, pad_centre_z()))
    faded = (0.5 + 0.5 * rgba[0], 0.5 + 0.5 * rgba[1], 0.5 + 0.5 * rgba[2], 1.0)
    # Visual only (no contacts): blocks rest on the table through the pad, so placing on a pad is
    # exactly placing on the table and the pad never tips a block.
    body.add("geom", name=f"{color}_pad", type="box", size=PAD_HALF_SIZE, rgba=faded,
             contype=0, conaffinity=0)


def pad_centre_z() -> float:
    """Pads sink into the table so that only their top 1 mm shows."""
    return TABLE_HEIGHT + 0.001 - PAD_HALF_SIZE[2]


def bin_centre_z() -> float:
    return TABLE_HEIGHT + BIN_WALL_HEIGHT / 2


def bin_half_size() -> np.ndarray:
    outer = np.array(BIN_INNER_HALF_SIZE) + BIN_WALL_THICKNESS
    return np.array([outer[0], outer[1], BIN_WALL_HEIGHT / 2])


def _add_bin(root: mjcf.RootElement) -> None:
    body = root.worldbody.add("body", name=BIN_NAME, mocap=True, pos=(0.5, 0.0, bin_centre_z()))
    ix, iy = BIN_INNER_HALF_SIZE
    t, h = BIN_WALL_THICKNESS / 2, BIN_WALL_HEIGHT / 2
    rgba = (0.45, 0.45, 0.5, 1.0)
    body.add("geom", name="bin_floor", type="box", size=(ix, iy, 0.002), pos=(0, 0, -h + 0.002), rgba=rgba)
    walls = {"px": ((t, iy + 2 * t, h), (ix + t, 0, 0)), "nx": ((t, iy + 2 * t, h), (-ix - t, 0, 0)),
             "py": ((ix, t, h), (0, iy + t, 0)), "ny": ((ix, t, h), (0, -iy - t, 0))}
    for side, (size, pos) in walls.items():
        body.add("geom", name=f"bin_wall_{side}", type="box", size=size, pos=pos, rgba=rgba)


def _add_front_camera(root: mjcf.RootElement) -> None:
    pos, target = np.array([1.0, 0.0, 0.72]), np.array([0.40, 0.0, 0.02])
    forward = (target - pos) / np.linalg.norm(target - pos)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    root.worldbody.add("camera", name="front", pos=pos, xyaxes=np.concatenate([right, up]), fovy=50)


# --- seeded layouts ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayoutClearance:
    """Minimum free gap (m) between footprints, by pair of kinds: room for the fingers around a block."""

    block_block: float = 0.05
    """Open fingertips reach ~7 cm from a block's centre (4.5 cm past its face): neighbours keep this free."""
    block_bin: float = 0.05
    """The bin walls are as tall as a block: same room for the open fingertips as between blocks."""
    flat: float = 0.01
    """Any pair involving a (flat, non-colliding) pad."""

    def gap(self, kind_a: str, kind_b: str) -> float:
        kinds = {kind_a, kind_b}
        if "pad" in kinds:
            return self.flat
        if kinds == {"block"}:
            return self.block_block
        return self.block_bin


def footprint_half_size(name: str) -> tuple[float, float]:
    kind = object_kind(name)
    if kind == "block":
        return BLOCK_HALF_SIZE, BLOCK_HALF_SIZE
    if kind == "pad":
        return PAD_HALF_SIZE[0], PAD_HALF_SIZE[1]
    half = bin_half_size()
    return float(half[0]), float(half[1])


def object_kind(name: str) -> str:
    if name == BIN_NAME:
        return "bin"
    if name.endswith("_block"):
        return "block"
    if name.endswith("_pad"):
        return "pad"
    raise ValueError(f"unknown scene object {name!r}; expected {{color}}_block, {{color}}_pad or bin")


def default_z(name: str) -> float:
    """Resting centre height of an object on the table."""
    kind = object_kind(name)
    if kind == "block":
        return TABLE_HEIGHT + BLOCK_HALF_SIZE
    return pad_centre_z() if kind == "pad" else bin_centre_z()


def sample_layout(rng: np.random.Generator, clearance: LayoutClearance | None = None,
                  max_tries: int = 200) -> dict[str, np.ndarray]:
    """Non-overlapping poses {name: [x, y, z, yaw]} for the bin, pads and blocks inside SPAWN_LOW..SPAWN_HIGH.

    Largest objects first, each by rejection sampling; the whole layout restarts when one cannot be
    placed, so the result depends only on the generator's state.
    """
    clearance = clearance or LayoutClearance()
    names = [BIN_NAME, *PAD_NAMES, *BLOCK_NAMES]
    for _ in range(max_tries):
        layout: dict[str, np.ndarray] = {}
        for name in names:
            pose = _place(name, layout, rng, clearance, max_tries)
            if pose is None:
                break
            layout[name] = pose
        else:
            return layout
    raise RuntimeError("could not sample a non-overlapping layout; the spawn region is too small "
                       "for the objects")


def _place(name, layout, rng, clearance, tries) -> np.ndarray | None:
    half = footprint_half_size(name)
    low, high = np.array(SPAWN_LOW), np.array(SPAWN_HIGH)
    for _ in range(tries):
        # The footprint itself stays inside the spawn region, not just its centre.
        xy = rng.uniform(low + max(half), high - max(half))
        yaw = rng.uniform(-np.pi / 4, np.pi / 4)  # every object is 90-degree symmetric
        if all(not rectangles_overlap(xy, half, yaw, other[:2], footprint_half_size(other_name), other[3],
                                      clearance.gap(object_kind(name), object_kind(other_name)))
               for other_name, other in layout.items()):
            return np.array([xy[0], xy[1], default_z(name), yaw])
    return None


def rectangles_overlap(centre_a, half_a, yaw_a, centre_b, half_b, yaw_b, gap: float = 0.0) -> bool:
    """Separating-axis test of two oriented rectangles, each inflated by gap / 2 on every side.

    Splitting the gap between both keeps the test symmetric in a and b, whatever their yaws.
    """
    half_a, half_b = np.asarray(half_a) + gap / 2, np.asarray(half_b) + gap / 2
    axes_a, axes_b = _axes(yaw_a), _axes(yaw_b)
    delta = np.asarray(centre_b, float) - np.asarray(centre_a, float)
    for axis in (*axes_a, *axes_b):
        radius_a = sum(h * abs(axis @ u) for h, u in zip(half_a, axes_a))
        radius_b = sum(h * abs(axis @ u) for h, u in zip(half_b, axes_b))
        if abs(delta @ axis) > radius_a + radius_b:
            return False
    return True


def _axes(yaw: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([c, s]), np.array([-s, c])


def yaw_to_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
