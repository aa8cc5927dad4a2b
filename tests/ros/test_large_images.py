"""640x480 RGB images cross between processes intact with the project's Fast DDS profile."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from sensor_msgs.msg import Image

from ros_nodes import conversions, qos
from tests.conftest import spin_until

PUBLISHER = Path(__file__).with_name("image_publisher.py")
ROOT = Path(__file__).resolve().parents[2]


def test_profile_is_active_for_the_test_processes(ros_domain):
    profile = Path(os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"])
    assert profile.is_file() and profile.name == "fastdds.xml"
    assert os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] == str(profile)


def test_640x480_images_arrive_intact_across_processes(probe_node):
    frames: list[np.ndarray] = []
    probe_node.create_subscription(Image, "camera/test/image_raw",
                                   lambda msg: frames.append(conversions.msg_to_image(msg)), qos.SENSOR_DATA)
    publisher = subprocess.Popen([sys.executable, str(PUBLISHER), "20"], cwd=ROOT)
    try:
        assert spin_until(probe_node, lambda: len(frames) >= 10, 20), f"received {len(frames)} of 10 frames"
    finally:
        publisher.terminate()
        publisher.wait(timeout=10)
    for frame in frames:
        assert frame.shape == (480, 640, 3)
        assert np.array_equal(frame[0, :, 1], np.arange(640, dtype=np.uint8))
        assert np.array_equal(frame[:, 0, 2], (np.arange(480) % 256).astype(np.uint8))
        assert np.all(frame[..., 0] == frame[0, 0, 0])
    assert len({int(frame[0, 0, 0]) for frame in frames}) >= 5, "frames should be distinct, not one repeated"
