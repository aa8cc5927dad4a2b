"""MuJoCo tabletop simulation, language task suite, scripted experts and dm_control adapter.

Knows nothing of ROS. Rendering defaults to headless EGL; set MUJOCO_GL before import to override.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
