"""QoS profiles of the topic contract (DESIGN.md)."""

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

SENSOR_DATA = qos_profile_sensor_data
"""Cameras, joint states, scene state: best effort, newest sample wins."""

COMMANDS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)
"""Targets, commands and instructions: reliable, volatile, so `ros2 topic pub` defaults match."""

LATCHED = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""`estop` and `task_status`: a late subscriber still gets the last value."""

CLOCK = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT,
                   durability=DurabilityPolicy.VOLATILE)
"""`clock`: rclpy's time source subscribes best effort; only the newest tick matters."""
