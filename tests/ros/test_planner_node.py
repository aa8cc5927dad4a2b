"""planner_node without a graph: the node is built in-process with a scripted planner in place of the LLM
(`Planner` patched), its callbacks and worker tick are called directly (nothing spins), so every case is
deterministic and fast. The executive's logic is tested in tests/cognition/test_executive.py; here: the
parameters and their errors, message validation, what goes out on `plan` and `subgoal`, and that planning
runs outside the executive's lock. The live graph with the real embedded LLM is
tests/integration/test_planner_sim_graph.py."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.parameter import Parameter
from std_msgs.msg import String

from agent_stack.cognition.plan import Plan, Subgoal
from agent_stack.cognition.planner import PlannerConfig, PlanResult
from agent_stack.cognition.verifier import verify_plan
from ros_nodes import planner_node
from ros_nodes.node_main import StartupError
from ros_nodes.planner_node import PlannerNode, build_config, planner_parameters
from sim.state import scene_state_to_dict
from sim.tabletop_env import TabletopConfig, TabletopEnv

INSTRUCTION = "put the red block on the green pad, then the blue one on the red one"
PAD = Subgoal.make("place_on_pad", color="red", target="green")
STACK = Subgoal.make("stack", color="blue", target="red")
ROOT = Path(__file__).resolve().parents[2]
PLANS = {INSTRUCTION: [PAD, STACK]}
"""What the scripted planner answers; any other instruction: put the yellow block in the bin."""


class ScriptedPlanner:
    """Stands in for `Planner(config)`: answers every call with `plan_for(instruction)` (verified on the
    scene like the real one); `during` runs inside `plan`, to act while the planner computes."""

    during = None
    fail_to_load = False

    def __init__(self, config: PlannerConfig) -> None:
        if ScriptedPlanner.fail_to_load:
            raise FileNotFoundError("no weights at planner_lm/weights/model.safetensors")
        self.config = config
        self.asked: list[tuple[str, str, str]] = []

    def plan(self, instruction, scene, feedback=""):
        self.asked.append((instruction, scene.describe(), feedback))
        if ScriptedPlanner.during is not None:
            ScriptedPlanner.during()
        steps = PLANS.get(instruction, [Subgoal.make("put_in_bin", color="yellow")])
        verdict = verify_plan(steps, scene)
        return PlanResult(Plan(tuple(steps)), verdict.valid, list(verdict.reasons), [{"text": "..."}], 4, 120,
                          0.25, "self_consistency", instruction, {"consensus": 0.75})


@pytest.fixture(scope="module")
def scene_state() -> dict:
    """The sim's `scene_state` JSON of a real reset (seed 1: four blocks on the table, four pads, a bin)."""
    env = TabletopEnv(TabletopConfig(render=False))
    env.reset(seed=1)
    state = scene_state_to_dict(env.scene_state())
    env.close()
    return state


@pytest.fixture
def make_node(ros_domain, monkeypatch):
    """PlannerNode(**parameters) in a context of its own, the scripted planner in place of the LLM;
    publishers replaced by recorders (`node.sent["plan"]` as dicts, `node.sent["subgoal"]` as text)."""
    monkeypatch.setattr(planner_node, "Planner", ScriptedPlanner)
    monkeypatch.setattr(ScriptedPlanner, "during", None)
    monkeypatch.setattr(ScriptedPlanner, "fail_to_load", False)
    context = rclpy.Context()
    rclpy.init(context=context, args=[])
    nodes = []

    def make(**parameters) -> PlannerNode:
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        node = PlannerNode(context=context, parameter_overrides=overrides)
        nodes.append(node)
        node.sent = {"plan": [], "subgoal": []}
        node.plan_pub = type("Recorder", (), {"publish": staticmethod(
            lambda msg: node.sent["plan"].append(json.loads(msg.data)))})()
        node.subgoal_pub = type("Recorder", (), {"publish": staticmethod(
            lambda msg: node.sent["subgoal"].append(msg.data))})()
        return node

    yield make
    for node in nodes:
        node.destroy_node()
    rclpy.shutdown(context=context)


def json_msg(payload) -> String:
    return String(data=json.dumps(payload))


def status(instruction: str, success: bool) -> String:
    return json_msg({"instruction": instruction, "success": success, "elapsed_s": 1.0})


# --- startup ---------------------------------------------------------------------------------------------

def test_bad_parameters_are_startup_errors(make_node):
    with pytest.raises(StartupError, match="strategy"):
        make_node(**{"planner.strategy": "guess"})
    with pytest.raises(StartupError, match="max_calls"):
        make_node(**{"planner.max_calls": -2})
    with pytest.raises(StartupError, match="workspace_low"):
        make_node(**{"planner.safety.workspace_low": [0.9, 0.0]})
    with pytest.raises(StartupError, match="subgoal_timeout_s"):
        make_node(subgoal_timeout_s=0.0)
    with pytest.raises(StartupError, match="republish_hz"):
        make_node(republish_hz=float("nan"))
    with pytest.raises(StartupError, match="max_replans"):
        make_node(max_replans=1.5)
    with pytest.raises(StartupError, match="tick_hz"):
        make_node(tick_hz=-1.0)
    # Integers (as YAML types `subgoal_timeout_s:=60`) are fine, also for float fields of the planner config.
    node = make_node(subgoal_timeout_s=60, republish_hz=2, max_replans=0,
                     **{"planner.temperature": 1, "planner.samples": 7, "planner.max_seconds": 30})
    assert node.executive.config.subgoal_timeout_s == 60.0 and node.executive.config.republish_period_s == 0.5
    assert node.planner_config.temperature == 1.0 and isinstance(node.planner_config.temperature, float)
    assert (node.planner_config.samples, node.planner_config.max_seconds) == (7, 30.0)
    assert node.executive.planner.config is node.planner_config


def test_an_unloadable_planner_is_a_startup_error(make_node):
    ScriptedPlanner.fail_to_load = True
    with pytest.raises(StartupError, match="cannot load the planner .*model.safetensors"):
        make_node()


def test_the_executable_exits_with_one_error_line(ros_domain):
    result = subprocess.run([sys.executable, "-m", "ros_nodes.planner_node", "--ros-args", "-p",
                             "planner.strategy:=guess"], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "guess" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_every_planner_config_field_is_a_parameter():
    names = planner_parameters(PlannerConfig)
    assert {"planner.backend", "planner.strategy", "planner.samples", "planner.temperature", "planner.seed",
            "planner.max_calls", "planner.max_seconds", "planner.safety.max_subgoals_per_minute"} <= set(names)
    assert build_config(PlannerConfig, names) == PlannerConfig()


def test_worker_runs_in_its_own_callback_group(make_node):
    node = make_node(tick_hz=20.0)
    (timer,) = node.timers
    assert timer.callback_group is not node.default_callback_group
    assert timer.timer_period_ns == 50_000_000


# --- messages --------------------------------------------------------------------------------------------

def test_malformed_messages_are_dropped_without_raising(make_node, scene_state):
    node = make_node()
    node.on_task(String(data="  \n "))
    for bad in ("not json", "[1, 2]", '{"objects": {"red_block": {"kind": "block"}}}', '{"ee_pos": [0, 0, 0]}',
                '{"objects": {"x": {"kind": "block", "color": "red", "pos": NaN}}}'):
        node.on_scene_state(String(data=bad))
    for bad in ("{", '{"instruction": "x"}', '{"instruction": "x", "success": "yes"}',
                '{"instruction": 3, "success": true}'):
        node.on_task_status(String(data=bad))
    for bad in ("", '{"subgoal": "x"}', "null"):
        node.on_subgoal_status(String(data=bad))
    assert node.executive.instruction is None and node.executive.scene is None
    assert node.executive.task_status is None and node.sent == {"plan": [], "subgoal": []}
    node.on_scene_state(json_msg(scene_state))  # and good ones still get through
    assert node.executive.scene.blocks == {"red": "table", "green": "table", "blue": "table", "yellow": "table"}


# --- the closed loop -------------------------------------------------------------------------------------

def test_plans_on_the_worker_then_executes_subgoals_in_order(make_node, scene_state):
    node = make_node(republish_hz=1000.0)
    node.on_task(String(data=INSTRUCTION))
    assert node.sent["plan"][-1]["status"] == "planning" and not node.sent["subgoal"]
    node.tick()  # no scene_state yet: nothing to plan from
    assert node.executive.planner.asked == []
    node.on_scene_state(json_msg(scene_state))
    node.tick()  # plans (the scripted planner) and sends the first subgoal
    (asked,) = node.executive.planner.asked
    assert asked[0] == INSTRUCTION and "the red block is on the table" in asked[1] and asked[2] == ""
    report = node.sent["plan"][-1]
    assert report["status"] == "executing" and report["current"] == 0 and report["subgoal"] == PAD.instruction
    assert [s["instruction"] for s in report["plan"]["subgoals"]] == [PAD.instruction, STACK.instruction]
    assert [s["skill"] for s in report["plan"]["subgoals"]] == ["place_on_pad", "stack"]
    assert (report["backend"], report["strategy"], report["calls"], report["latency_s"]) == \
        ("embedded", "self_consistency", 4, 0.25)
    assert report["result"]["info"] == {"consensus": 0.75} and "trace" not in report["result"]
    assert node.sent["subgoal"] == [PAD.instruction]

    time.sleep(0.005)  # past the 1 ms republish period, however fast the ticks above ran
    node.tick()  # republished, for late joiners
    assert node.sent["subgoal"][-1] == PAD.instruction and len(node.sent["subgoal"]) >= 2
    node.on_task(String(data=INSTRUCTION))  # a repeat changes nothing
    node.on_task_status(status(PAD.instruction, True))
    assert node.sent["subgoal"][-1] == STACK.instruction and node.sent["plan"][-1]["current"] == 1
    node.on_task_status(status(STACK.instruction, True))
    final = node.sent["plan"][-1]
    assert final["status"] == "succeeded" and final["replans"] == 0
    assert [h["subgoal"] for h in final["history"]] == [PAD.instruction, STACK.instruction]
    sent = len(node.sent["subgoal"])
    node.tick()
    assert len(node.sent["subgoal"]) == sent, "nothing goes out after success"


def test_a_policy_failure_replans_with_feedback(make_node, scene_state):
    node = make_node(max_replans=1)
    node.on_scene_state(json_msg(scene_state))
    node.on_task(String(data=INSTRUCTION))
    node.tick()
    node.on_subgoal_status(json_msg({"subgoal": PAD.instruction, "status": "timeout", "elapsed_s": 60.0}))
    assert node.sent["plan"][-1]["status"] == "planning" and node.sent["plan"][-1]["replans"] == 1
    node.tick()
    assert node.executive.planner.asked[-1][2] == "failed: place_on_pad(red, green) (timeout)"
    assert node.sent["plan"][-1]["status"] == "executing"
    node.on_subgoal_status(json_msg({"subgoal": PAD.instruction, "status": "failed"}))
    assert node.sent["plan"][-1]["status"] == "failed"
    assert node.sent["plan"][-1]["reasons"][-1] == "gave up after 1 replans"


def test_planning_does_not_hold_the_lock_and_a_new_task_drops_the_old_plan(make_node, scene_state):
    node = make_node()
    node.on_scene_state(json_msg(scene_state))
    seen = {}

    def meanwhile():  # runs inside planner.plan, as a subscription thread would during planning
        seen["lock_free"] = node._lock.acquire(blocking=False)
        if seen["lock_free"]:
            node._lock.release()
        node.on_scene_state(json_msg(scene_state))
        node.on_task(String(data="put the yellow block in the bin"))

    ScriptedPlanner.during = meanwhile
    node.on_task(String(data=INSTRUCTION))
    worker = threading.Thread(target=node.tick)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive() and seen["lock_free"]
    assert not node.sent["subgoal"], "the plan for the replaced instruction was dropped"
    assert node.sent["plan"][-1] == node.executive.report()
    assert node.sent["plan"][-1]["instruction"] == "put the yellow block in the bin"
    ScriptedPlanner.during = None
    node.tick()
    assert node.sent["subgoal"] == ["put the yellow block in the bin"]


# --- launch file and parameter file ----------------------------------------------------------------------

def test_config_file_holds_the_nodes_defaults(make_node):
    import yaml

    config = yaml.safe_load((ROOT / "config" / "planner.yaml").read_text())["/**"]["ros__parameters"]

    def flat(tree: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in tree.items():
            out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
        return out

    node = make_node()
    for name, value in flat(config).items():
        assert node.has_parameter(name), f"config/planner.yaml sets {name}, which planner_node does not declare"
        assert node.get_parameter(name).value == value, name


def test_launch_file_resolves_with_the_pip_only_launcher(ros_domain):
    launch = [sys.executable, "-m", "ros_nodes.launcher", "planner_sim.launch.xml"]
    result = subprocess.run([*launch, "strategy:=cot", "subgoal_timeout_s:=60", "real_time_factor:=0", "--print"],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert {"[sim]", "[controller]", "[expert]", "[planner]"} <= set(out.split()) and "[vla]" not in out
    planner = out[out.index("[planner]"):]
    assert "planner_node --ros-args -r __node:=planner" in planner and "config/planner.yaml" in planner
    assert "strategy: cot" in planner and "subgoal_timeout_s: 60" in planner
    sim = out[out.index("[sim]"):out.index("[controller]")]
    expert = out[out.index("[expert]"):out.index("[planner]")]
    assert "-r task:=subgoal" in sim and "-r task:=subgoal" in expert
    assert "real_time_factor: 0" in sim  # an integer reaches the sim as given; it takes both

    vla = subprocess.run([*launch, "policy:=vla", "checkpoint:=/some/run", "--print"], check=False,
                         capture_output=True, text=True, timeout=60)
    assert vla.returncode == 0, vla.stderr
    assert "[vla]" in vla.stdout and "[expert]" not in vla.stdout and "checkpoint: /some/run" in vla.stdout
    bad = subprocess.run([*launch, "policy:=dance", "--print"], check=False, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 1 and "policy" in bad.stderr
