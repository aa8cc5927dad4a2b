"""agent_stack: cognition, semantic policy and control libraries. Knows nothing of ROS or MuJoCo."""

from agent_stack.native_libraries import isolate_triton

__version__ = "0.1.0"

# Before torch can import Triton the usual way: see agent_stack/native_libraries.py.
isolate_triton()
