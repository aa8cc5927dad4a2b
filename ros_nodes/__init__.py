"""Thin rclpy nodes around the agent_stack libraries and the sim, plus the pip-only launcher."""
