"""TensorFlow, Triton and MuJoCo's EGL renderer each carry an LLVM; loaded as agent_stack loads them they
share one process in any order (agent_stack/native_libraries.py). Each order runs in a fresh process,
since a wrong load order kills the process with a segfault."""

from __future__ import annotations

import subprocess
import sys

import pytest

RENDER = """
from sim.tabletop_env import TabletopConfig, TabletopEnv
env = TabletopEnv(TabletopConfig(image_size=(32, 32)))
assert env.reset(seed=0)[0]["front"].std() > 1
"""
TENSORFLOW = """
import agent_stack.data
import tensorflow as tf
assert tf.io.decode_jpeg(tf.io.encode_jpeg(tf.zeros([8, 8, 3], tf.uint8))).shape == (8, 8, 3)
"""
TORCH_COMPILE_IMPORTS = """
import torch._dynamo
"""


@pytest.mark.parametrize("order", [(RENDER, TENSORFLOW, TORCH_COMPILE_IMPORTS),
                                   (TENSORFLOW, RENDER, TORCH_COMPILE_IMPORTS),
                                   (TORCH_COMPILE_IMPORTS, TENSORFLOW, RENDER)],
                         ids=["render-first", "tensorflow-first", "torch-first"])
def test_tensorflow_triton_and_rendering_share_a_process(order):
    script = "\n".join(order) + RENDER + "\nprint('survived')\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "survived" in result.stdout, result.stderr[-2000:]
