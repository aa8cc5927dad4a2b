"""Damped-least-squares IK on an analytic planar arm (no MuJoCo) and on the Jaco's MuJoCo kinematics."""

from __future__ import annotations

import numpy as np
import pytest

from agent_stack.control.osc import (DifferentialIKConfig, DifferentialIKController, orientation_error,
                                     quat_multiply, quat_to_rot6d, rot6d_to_quat, rotvec_to_quat)


class PlanarArm:
    """3R arm in the world x-y plane, unit-free link lengths; rotation about z. Analytic FK and Jacobian."""

    lengths = np.array([0.4, 0.3, 0.2])

    def forward(self, q):
        angles = np.cumsum(q)
        pos = np.array([self.lengths @ np.cos(angles), self.lengths @ np.sin(angles), 0.0])
        return pos, np.array([np.cos(angles[-1] / 2), 0.0, 0.0, np.sin(angles[-1] / 2)])

    def jacobian(self, q):
        angles = np.cumsum(q)
        jac = np.zeros((6, 3))
        for i in range(3):
            jac[0, i] = -self.lengths[i:] @ np.sin(angles[i:])
            jac[1, i] = self.lengths[i:] @ np.cos(angles[i:])
            jac[5, i] = 1.0
        return jac


def run(controller, q, pos, quat, steps, dt=0.01):
    for _ in range(steps):
        q = controller.command(q, pos, quat, dt)
    return q


def test_planar_arm_converges_to_reachable_pose():
    arm = PlanarArm()
    goal_pos, goal_quat = arm.forward(np.array([0.6, -0.9, 0.5]))
    controller = DifferentialIKController(arm, DifferentialIKConfig(max_joint_velocity=3.0))
    q = run(controller, np.array([0.1, 0.2, 0.3]), goal_pos, goal_quat, 500)
    pos, quat = arm.forward(q)
    assert np.linalg.norm(pos - goal_pos) < 1e-4
    assert np.linalg.norm(orientation_error(quat, goal_quat)) < 1e-3


def test_joint_speed_is_clamped_and_far_target_stays_finite():
    arm = PlanarArm()
    config = DifferentialIKConfig(max_joint_velocity=0.5)
    controller = DifferentialIKController(arm, config)
    q0 = np.array([0.0, 0.01, 0.0])  # near the stretched-out singularity
    q1 = controller.command(q0, np.array([5.0, 5.0, 0.0]), np.array([1.0, 0, 0, 0]), 0.01)
    assert np.all(np.isfinite(q1))
    assert np.max(np.abs(q1 - q0)) <= 0.5 * 0.01 + 1e-12


def test_joint_limits_are_respected():
    arm = PlanarArm()
    config = DifferentialIKConfig(max_joint_velocity=5.0, joint_lower=(-0.1, -0.1, -0.1),
                                  joint_upper=(0.1, 0.1, 0.1))
    q = run(DifferentialIKController(arm, config), np.zeros(3), np.array([0.0, 0.8, 0.0]),
            np.array([1.0, 0, 0, 0]), 200)
    assert np.all(np.abs(q) <= 0.1 + 1e-12)


@pytest.mark.parametrize("kwargs", [{"damping": 0.0}, {"max_joint_velocity": -1.0},
                                    {"position_gain": float("nan")}, {"joint_lower": (0.0,)},
                                    {"joint_lower": (1.0,), "joint_upper": (0.0,)}])
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError):
        DifferentialIKConfig(**kwargs)


def test_bad_inputs_raise():
    controller = DifferentialIKController(PlanarArm())
    with pytest.raises(ValueError, match="target_pos"):
        controller.command(np.zeros(3), np.array([np.nan, 0, 0]), np.array([1.0, 0, 0, 0]), 0.01)
    with pytest.raises(ValueError, match="dt"):
        controller.command(np.zeros(3), np.zeros(3), np.array([1.0, 0, 0, 0]), 0.0)
    with pytest.raises(TypeError):
        DifferentialIKController(object())


def test_class_level_defaults_used_by_ros_node():
    assert DifferentialIKConfig.damping > 0 and DifferentialIKConfig.max_joint_velocity > 0


def test_jaco_converges():
    from sim.kinematics import JacoKinematics
    from sim.scene import HOME_QPOS, TOP_DOWN_QUAT

    kin = JacoKinematics()
    lower, upper = kin.joint_limits()
    config = DifferentialIKConfig(joint_lower=tuple(lower), joint_upper=tuple(upper))
    controller = DifferentialIKController(kin, config)
    goal_quat = quat_multiply(rotvec_to_quat([0.0, 0.0, 0.4]), TOP_DOWN_QUAT)
    goal_pos = np.array([0.55, -0.15, 0.08])
    q = run(controller, HOME_QPOS.copy(), goal_pos, goal_quat, 400)
    pos, quat = kin.forward(q)
    assert np.linalg.norm(pos - goal_pos) < 0.005
    assert np.linalg.norm(orientation_error(quat, goal_quat)) < 0.05


def test_apply_ee_delta_clips_steps_and_workspace_and_turns_in_the_base_frame():
    from agent_stack.control.osc import apply_ee_delta, quat_multiply, rotvec_to_quat

    quat = rotvec_to_quat(np.array([np.pi, 0.0, 0.0]))  # hand pointing down
    low, high = np.array([0.25, -0.35, 0.0]), np.array([0.75, 0.35, 0.45])
    pos, new_quat = apply_ee_delta(np.array([0.5, 0.0, 0.2]), quat, np.array([0.2, -0.01, 0.0, 0, 0, 0.1]),
                                   0.05, 0.25, low, high)
    np.testing.assert_allclose(pos, [0.55, -0.01, 0.2])  # dx clipped to 0.05
    np.testing.assert_allclose(new_quat, quat_multiply(rotvec_to_quat(np.array([0, 0, 0.1])), quat))
    pos, _ = apply_ee_delta(np.array([0.74, 0.0, 0.01]), quat, np.array([0.05, 0, -0.05, 0, 0, 0]), 0.05, 0.25,
                            low, high)
    np.testing.assert_allclose(pos, [0.75, 0.0, 0.0])  # kept inside the workspace box
    _, turned = apply_ee_delta(np.zeros(3) + 0.5, quat, np.array([0, 0, 0, 0, 0, 3.0]), 0.05, 0.25, low, high)
    np.testing.assert_allclose(turned, quat_multiply(rotvec_to_quat(np.array([0, 0, 0.25])), quat))


def test_rot6d_round_trips_every_rotation_and_tolerates_a_predicted_one():
    rng = np.random.default_rng(0)
    quats = rng.normal(size=(500, 4))
    quats[:4] = np.eye(4)  # the identity and the three half turns (a top-down gripper is one), where w = 0
    for quat in quats / np.linalg.norm(quats, axis=1, keepdims=True):
        back = rot6d_to_quat(quat_to_rot6d(quat))
        np.testing.assert_allclose(back, quat if quat[0] >= 0 else -quat, atol=1e-9)
    # A denoised 6-D vector is near a rotation, not on one: Gram-Schmidt gives the closest-in-direction one.
    quat = np.array([0.2, 0.9, -0.3, 0.25]) / np.linalg.norm([0.2, 0.9, -0.3, 0.25])
    noisy = quat_to_rot6d(quat) * 1.1 + rng.normal(scale=0.01, size=6)
    assert np.linalg.norm(orientation_error(quat, rot6d_to_quat(noisy))) < 0.05
    with pytest.raises(ValueError, match="degenerate"):
        rot6d_to_quat([1.0, 0.0, 0.0, 2.0, 0.0, 0.0])
