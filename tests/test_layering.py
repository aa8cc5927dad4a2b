"""The layering rule from DESIGN.md: agent_stack knows nothing of ROS or MuJoCo; sim knows nothing of ROS."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROS_MODULES = {"rclpy", "std_msgs", "sensor_msgs", "geometry_msgs", "trajectory_msgs", "rosgraph_msgs",
               "std_srvs", "action_msgs", "builtin_interfaces", "ros_nodes", "ament_index_python"}
SIM_MODULES = {"mujoco", "dm_control", "sim"}

FORBIDDEN = {
    "agent_stack": ROS_MODULES | SIM_MODULES,
    "sim": ROS_MODULES,
}


def imported_top_level_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in {
            "import_module", "__import__"
        }:
            names.update(a.value.split(".")[0] for a in node.args if isinstance(a, ast.Constant)
                         and isinstance(a.value, str))
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_layering(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    violations = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in files
        for module in sorted(imported_top_level_modules(path) & FORBIDDEN[package])
    ]
    assert not violations, "layering rule broken:\n" + "\n".join(violations)


def test_checker_sees_forbidden_imports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import rclpy\nfrom mujoco import MjModel\nimportlib.import_module('sim.scene')\n")
    assert {"rclpy", "mujoco", "sim"} <= imported_top_level_modules(bad)
