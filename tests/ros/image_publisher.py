"""Publishes 640x480 rgb8 frames whose pixels encode the frame number; used by test_large_images."""

import sys

import numpy as np
import rclpy
from sensor_msgs.msg import Image

from ros_nodes import conversions, qos


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("large_image_publisher")
    publisher = node.create_publisher(Image, "camera/test/image_raw", qos.SENSOR_DATA)
    frame = {"index": 0}

    def publish() -> None:
        image = np.zeros((480, 640, 3), dtype=np.uint8)
        image[..., 0] = frame["index"] % 256
        image[:, :, 1] = np.arange(640, dtype=np.uint8)[None, :]  # a gradient that a torn copy would break
        image[:, :, 2] = (np.arange(480) % 256).astype(np.uint8)[:, None]
        publisher.publish(conversions.image_to_msg(image, node.get_clock().now().to_msg(), "test"))
        frame["index"] += 1

    node.create_timer(0.05, publish)
    end = node.get_clock().now().nanoseconds + int(float(sys.argv[1]) * 1e9)
    while rclpy.ok() and node.get_clock().now().nanoseconds < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
