"""The repository is one ament_python package: `colcon build` installs nodes, launch files and config
where `ros2 run` / `ros2 launch` look for them, and the launcher resolves the installed package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLCON = Path(sys.prefix) / "bin" / "colcon"
NODES = ("sim_node", "controller_node", "expert_node")


@pytest.mark.skipif(not COLCON.exists(), reason="colcon is not installed (pip install -e '.[test]')")
def test_colcon_build_installs_an_ament_package(tmp_path):
    source = tmp_path / "src" / "agent_stack"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "install", "log", "outputs", "*.egg-info", "__pycache__", ".pytest_cache"))
    build = subprocess.run([str(COLCON), "build", "--packages-select", "agent_stack"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    prefix = tmp_path / "install" / "agent_stack"
    share = prefix / "share" / "agent_stack"
    for node in NODES:
        assert os.access(prefix / "lib" / "agent_stack" / node, os.X_OK), f"{node} not in lib/agent_stack"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "agent_stack").is_file()
    for path in ("package.xml", "launch/sim.launch.xml", "config/sim.yaml", "config/fastdds.xml"):
        assert (share / path).is_file(), f"{path} not installed"

    printed = subprocess.run(
        [sys.executable, "-m", "agent_stack.cli", "launch", "sim.launch.xml", "--print"],
        env={**os.environ, "AMENT_PREFIX_PATH": str(prefix)}, capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    assert f"{prefix}/lib/agent_stack/sim_node --ros-args" in printed.stdout
    assert f"FASTDDS_DEFAULT_PROFILES_FILE={share}/config/fastdds.xml" in printed.stdout
