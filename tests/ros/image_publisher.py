"""Publishes 640x480 rgb8 frames whose red channel holds the frame number (mod 256); for test_large_images.

Usage: image_publisher.py SECONDS BURST PERIOD — every PERIOD seconds, BURST frames back to back, as a
simulator does when several cameras render in one tick.
"""

import signal
import sys

import numpy as np
import rclpy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image

from ros_nodes import conversions, qos

WIDTH, HEIGHT = 640, 480


def frame(index: int) -> np.ndarray:
    """Frame `index`: red = index % 256 everywhere, green = column, blue = row (mod 256), so a torn or
    shifted copy changes some pixel."""
    image = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[..., 0] = index % 256
    image[..., 1] = (np.arange(WIDTH) % 256).astype(np.uint8)[None, :]
    image[..., 2] = (np.arange(HEIGHT) % 256).astype(np.uint8)[:, None]
    return image


def main() -> None:
    seconds, burst, period = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    stop = []
    # The test ends us with SIGTERM; finish the current spin and shut down cleanly instead of letting rclpy
    # invalidate the context while a timer callback is publishing.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    node = rclpy.create_node("large_image_publisher")
    publisher = node.create_publisher(Image, "camera/test/image_raw", qos.SENSOR_DATA)
    count = [0]

    def publish() -> None:
        for _ in range(burst):
            stamp = node.get_clock().now().to_msg()
            publisher.publish(conversions.image_to_msg(frame(count[0]), stamp, "test"))
            count[0] += 1

    node.create_timer(period, publish)
    end = node.get_clock().now().nanoseconds + int(seconds * 1e9)
    while not stop and node.get_clock().now().nanoseconds < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
