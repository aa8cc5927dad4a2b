"""agent_stack: cognition, semantic policy and control libraries. Knows nothing of ROS or MuJoCo."""

__version__ = "0.1.0"
