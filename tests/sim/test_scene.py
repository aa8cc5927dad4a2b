"""Scene compilation, home pose, kinematics and seeded layouts."""

from __future__ import annotations

import itertools

import mujoco
import numpy as np
import pytest

from agent_stack.control.osc import orientation_error
from sim import scene
from sim.kinematics import JacoKinematics
from sim.state import SPAWN_HIGH, SPAWN_LOW


@pytest.fixture(scope="module")
def model():
    return scene.compile_scene()


def test_scene_compiles_with_every_named_part(model):
    for name in scene.MJCF_JOINT_NAMES.values():
        assert model.joint(name).id >= 0
    for name in (*scene.BLOCK_NAMES, *scene.PAD_NAMES, scene.BIN_NAME):
        assert model.body(name).id >= 0
    for name in scene.MJCF_CAMERA_NAMES.values():
        assert model.camera(name).id >= 0
    assert model.nu == 9 and len(scene.ARM_JOINT_NAMES) == 6
    # Position servos, torque-limited at the Kinova limits.
    arm = [model.actuator(scene.MJCF_JOINT_NAMES[n]).id for n in scene.ARM_JOINT_NAMES]
    assert np.allclose(model.actuator_forcerange[arm, 1], scene.ARM_TORQUE_LIMITS)
    assert np.all(model.actuator_biastype[arm] == mujoco.mjtBias.mjBIAS_AFFINE)


def test_bad_scene_config_raises():
    with pytest.raises(ValueError, match="physics_dt"):
        scene.SceneConfig(physics_dt=0.0)
    with pytest.raises(ValueError, match="block_mass"):
        scene.SceneConfig(block_mass=-1.0)


def test_home_pose_is_top_down_above_table(model):
    pos, quat = JacoKinematics(model).forward(scene.HOME_QPOS)
    assert np.linalg.norm(pos - scene.HOME_TCP_POS) < 1e-3
    assert np.linalg.norm(orientation_error(quat, scene.TOP_DOWN_QUAT)) < 1e-3


def test_jacobian_matches_finite_differences(model):
    kin = JacoKinematics(model)
    q = scene.HOME_QPOS + 0.1
    jac, eps = kin.jacobian(q), 1e-6
    for i in range(6):
        step = np.zeros(6)
        step[i] = eps
        (p1, q1), (p0, q0) = kin.forward(q + step), kin.forward(q - step)
        assert np.allclose((p1 - p0) / (2 * eps), jac[:3, i], atol=1e-5)
        assert np.allclose(orientation_error(q0, q1) / (2 * eps), jac[3:, i], atol=1e-4)


def test_layout_is_deterministic_per_seed():
    a = scene.sample_layout(np.random.default_rng(7))
    b = scene.sample_layout(np.random.default_rng(7))
    c = scene.sample_layout(np.random.default_rng(8))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("seed", range(5))
def test_layout_is_non_overlapping_and_inside_spawn_region(seed):
    layout = scene.sample_layout(np.random.default_rng(seed))
    assert set(layout) == {*scene.BLOCK_NAMES, *scene.PAD_NAMES, scene.BIN_NAME}
    clearance = scene.LayoutClearance()
    for (na, a), (nb, b) in itertools.combinations(layout.items(), 2):
        gap = clearance.gap(scene.object_kind(na), scene.object_kind(nb))
        assert not scene.rectangles_overlap(a[:2], scene.footprint_half_size(na), a[3],
                                            b[:2], scene.footprint_half_size(nb), b[3], gap), (na, nb)
    for pose in layout.values():
        assert np.all(pose[:2] >= SPAWN_LOW) and np.all(pose[:2] <= SPAWN_HIGH)


def test_rectangles_overlap():
    assert scene.rectangles_overlap((0, 0), (1, 1), 0.0, (1.5, 0), (1, 1), 0.0)
    assert not scene.rectangles_overlap((0, 0), (1, 1), 0.0, (2.5, 0), (1, 1), 0.0)
    assert scene.rectangles_overlap((0, 0), (1, 1), 0.0, (2.5, 0), (1, 1), 0.0, gap=0.6)
    # Rotated 45 degrees the corner reaches sqrt(2).
    assert scene.rectangles_overlap((0, 0), (1, 1), np.pi / 4, (2.3, 0), (1, 1), 0.0)
