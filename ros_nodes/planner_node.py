"""planner_node: the cognition layer on live topics, closing the loop around the policy (Inner Monologue).

Subscribes `task` (std_msgs/String, a free-form instruction), `scene_state` (JSON, what the planner plans
from), `subgoal_status` (JSON from the policy: done / timeout / failed) and the latched `task_status` (the
sim's success check). Publishes the latched `plan` (JSON report: instruction, status planning | executing
| succeeded | failed, the plan with subgoal instructions and skills, the current index, replans, verdict
reasons, strategy, LLM calls, latency) and the current subgoal's instruction on `subgoal` (again every
1 / `republish_hz` seconds, for late joiners; policies ignore repeats).

A different instruction on `task` replaces the current one; a repeat is ignored. The logic lives in
`agent_stack.cognition.executive.Executive` (no ROS): this node feeds it messages and the node clock
(sim time under use_sim_time) and publishes what it returns. Planning takes seconds: it runs in a timer of
its own callback group on a multi-threaded executor, outside the executive's lock, so subscriptions keep
taking messages meanwhile. Parameters are checked at startup (StartupError: one error line, exit 1);
malformed messages are dropped with a throttled warning.

Parameters: `planner.<field>` for every field of `PlannerConfig` (backend, strategy, samples, ...), and
`subgoal_timeout_s`, `max_replans`, `republish_hz`, `done_grace_s`, `tick_hz`.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import typing

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from std_msgs.msg import String

from agent_stack.cognition.executive import Actions, Executive, ExecutiveConfig
from agent_stack.cognition.planner import Planner, PlannerConfig
from agent_stack.cognition.scene import scene_from_state
from ros_nodes import conversions, qos
from ros_nodes.node_main import StartupError, run_node

WARN_EVERY_S = 5.0
PLANNER_PREFIX = "planner."
_SCALARS = (bool, int, float, str)


def planner_parameters(config_class, prefix: str = PLANNER_PREFIX) -> dict[str, object]:
    """ROS parameter name -> default for every field of the planner's config dataclass (nested dataclasses
    flattened with dots, as a nested YAML map is): scalars and lists of scalars; None defaults too."""
    params: dict[str, object] = {}
    defaults = config_class()
    for item in dataclasses.fields(config_class):
        if not item.init or item.name.startswith("_"):
            continue
        value = getattr(defaults, item.name)
        if dataclasses.is_dataclass(value):
            params.update(planner_parameters(type(value), f"{prefix}{item.name}."))
        elif value is None or isinstance(value, _SCALARS) or \
                (isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS) for v in value)):
            params[prefix + item.name] = list(value) if isinstance(value, tuple) else value
    return params


def build_config(config_class, values: dict[str, object], prefix: str = PLANNER_PREFIX):
    """The config dataclass from parameter values (as `planner_parameters` names them). An int given for
    a float field becomes a float (YAML and `name:=3` type numbers by their look)."""
    defaults = config_class()
    try:
        hints = typing.get_type_hints(config_class)
    except (NameError, TypeError):
        hints = {}
    kwargs = {}
    for item in dataclasses.fields(config_class):
        name = prefix + item.name
        default = getattr(defaults, item.name)
        if dataclasses.is_dataclass(default):
            kwargs[item.name] = build_config(type(default), values, name + ".")
        elif name in values:
            value = values[name]
            takes_float = isinstance(default, float) or float in typing.get_args(hints.get(item.name))
            if takes_float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            elif isinstance(default, tuple) and isinstance(value, list):
                value = tuple(value)
            kwargs[item.name] = value
    return config_class(**kwargs)


class PlannerNode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__("planner", **node_options)
        self._config_class = PlannerConfig
        try:
            self._planner_defaults = planner_parameters(PlannerConfig)
        except TypeError as error:  # a config without defaults for every field
            raise StartupError(f"PlannerConfig cannot be built from parameters: {error}") from error
        dynamic = ParameterDescriptor(dynamic_typing=True)
        for name, default in self._planner_defaults.items():
            self.declare_parameter(name, default, dynamic)
        numbers = {"subgoal_timeout_s": 120.0, "max_replans": 3, "republish_hz": 1.0, "done_grace_s": 2.0,
                   "tick_hz": 10.0}
        for name, default in numbers.items():
            # Dynamic typing: `subgoal_timeout_s:=60` (an integer to YAML) must not stop the node.
            self.declare_parameter(name, default, dynamic)
        self.planner_config = self._read_planner_config()
        executive_config = self._read_executive_config()

        self.get_logger().info(f"loading the planner: backend {self._describe('backend')}, "
                               f"strategy {self._describe('strategy')}")
        try:
            planner = Planner(self.planner_config)
        except Exception as error:  # whatever makes the backend unusable (missing weights, no server)
            raise StartupError(f"cannot load the planner ({self._describe('backend')} backend): "
                               f"{type(error).__name__}: {error}") from error
        info = {"backend": self._describe("backend"), "strategy": self._describe("strategy")}
        safety = getattr(self.planner_config, "safety", None)
        self.executive = Executive(planner, executive_config, info,
                                   dispatch_allowed=getattr(safety, "allow_subgoal", None))
        self._lock = threading.Lock()  # the executive: subscriptions and the worker take turns
        self._closing = False

        self.plan_pub = self.create_publisher(String, "plan", qos.LATCHED)
        self.subgoal_pub = self.create_publisher(String, "subgoal", qos.COMMANDS)
        self.create_subscription(String, "task", self.on_task, qos.COMMANDS)
        self.create_subscription(String, "scene_state", self.on_scene_state, qos.SENSOR_DATA)
        self.create_subscription(String, "subgoal_status", self.on_subgoal_status, qos.COMMANDS)
        self.create_subscription(String, "task_status", self.on_task_status, qos.LATCHED)
        # Wall-clock timer: ticks (and planning) go on while the sim clock stalls or has not started;
        # the executive's own times are node-clock (sim) seconds.
        self.create_timer(1.0 / self.tick_hz, self.tick, callback_group=MutuallyExclusiveCallbackGroup(),
                          clock=rclpy.clock.Clock())
        self.get_logger().info(f"planner ready ({info['backend']}, {info['strategy']}); waiting for a task")

    def close(self) -> None:
        self._closing = True  # a plan still being computed at shutdown is not published

    # --- parameters --------------------------------------------------------------------------------------

    def _read_planner_config(self):
        values = {name: self.get_parameter(name).value for name in self._planner_defaults}
        try:
            return build_config(self._config_class, values)
        except (TypeError, ValueError) as error:
            raise StartupError(f"bad planner.* parameter: {error}") from error

    def _describe(self, field_name: str) -> str:
        return str(getattr(self.planner_config, field_name, "?"))

    def _read_executive_config(self) -> ExecutiveConfig:
        self.tick_hz = self._number("tick_hz", positive=True)
        republish_hz = self._number("republish_hz")
        max_replans = self.get_parameter("max_replans").value
        if isinstance(max_replans, bool) or not isinstance(max_replans, int) or max_replans < 0:
            raise StartupError(f"parameter max_replans must be an integer >= 0, got {max_replans!r}")
        return ExecutiveConfig(subgoal_timeout_s=self._number("subgoal_timeout_s", positive=True),
                               max_replans=max_replans,
                               republish_period_s=1.0 / republish_hz if republish_hz > 0 else 0.0,
                               done_grace_s=self._number("done_grace_s"))

    def _number(self, name: str, positive: bool = False) -> float:
        """A finite float parameter >= 0 (> 0 when `positive`), else a StartupError naming it."""
        value = self.get_parameter(name).value
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and value >= 0 and not (positive and value == 0)
        if not ok:
            raise StartupError(f"parameter {name} must be a finite number {'> 0' if positive else '>= 0'}, "
                               f"got {value!r}")
        return float(value)

    # --- inputs (subscription callbacks: validate, hand to the executive, never raise) --------------------

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_task(self, msg: String) -> None:
        text = " ".join(msg.data.split())
        if not text:
            self.get_logger().warning("dropped an empty task", throttle_duration_sec=WARN_EVERY_S)
            return
        with self._lock:
            actions = self.executive.start(text, self._now())
        self._publish(actions)

    def on_scene_state(self, msg: String) -> None:
        try:
            scene = scene_from_state(conversions.json_from_msg(msg, ("objects",)))
        except ValueError as error:  # MessageRejected is a ValueError too
            self.get_logger().warning(f"dropped scene_state: {error}", throttle_duration_sec=WARN_EVERY_S)
            return
        with self._lock:
            actions = self.executive.on_scene(scene, self._now())
        self._publish(actions)

    def on_subgoal_status(self, msg: String) -> None:
        try:
            status = conversions.json_from_msg(msg, ("status",))
        except conversions.MessageRejected as error:
            self.get_logger().warning(f"dropped subgoal_status: {error}", throttle_duration_sec=WARN_EVERY_S)
            return
        with self._lock:
            actions = self.executive.on_subgoal_status(status, self._now())
        self._publish(actions)

    def on_task_status(self, msg: String) -> None:
        try:
            status = conversions.json_from_msg(msg, ("instruction", "success"))
            if not isinstance(status["success"], bool) or not isinstance(status["instruction"], str):
                raise conversions.MessageRejected(f"'instruction' must be a string and 'success' a boolean, "
                                                  f"got {status['instruction']!r}, {status['success']!r}")
        except conversions.MessageRejected as error:
            self.get_logger().warning(f"dropped task_status: {error}", throttle_duration_sec=WARN_EVERY_S)
            return
        with self._lock:
            actions = self.executive.on_task_status(status, self._now())
        self._publish(actions)

    # --- the worker (timer, own callback group): timeouts, republishing, planning -------------------------

    def tick(self) -> None:
        with self._lock:
            actions = self.executive.tick(self._now())
            request = self.executive.take_request()
        self._publish(actions)
        if request is None:
            return
        self.get_logger().info(f"planning {request.instruction!r}"
                               + (f" with feedback: {request.feedback}" if request.feedback else ""))
        result = self.executive.run_request(request)  # seconds; the lock is free meanwhile
        if self._closing:
            return
        with self._lock:
            actions = self.executive.on_plan(request, result, self._now())
        self._publish(actions)

    def _publish(self, actions: Actions) -> None:
        if self._closing:
            return
        logger = self.get_logger()
        for level, text in actions.log:  # one call site per severity: rclpy's logger insists on it
            if level == "error":
                logger.error(text)
            elif level == "warning":
                logger.warning(text)
            else:
                logger.info(text)
        if actions.plan is not None:
            try:
                self.plan_pub.publish(conversions.json_msg(actions.plan))
            except ValueError as error:  # NaN in a report: a bug, but the robot must keep going
                self.get_logger().error(f"cannot publish the plan report: {error}")
        if actions.subgoal is not None:
            self.subgoal_pub.publish(String(data=actions.subgoal))


def main(args: list[str] | None = None) -> None:
    run_node(PlannerNode, args, multithreaded=True)


if __name__ == "__main__":
    main()
