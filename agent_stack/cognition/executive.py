"""The closed-loop executive: plan an instruction, hand out one subgoal at a time, watch it succeed or fail,
and re-plan from the scene as it is now (Inner Monologue, Huang et al. 2022).

A pure state machine (no ROS, no threads, no clock of its own): the planner node feeds it messages and the
time, and publishes what it returns. Planning is the one slow step, so the executive never calls the
planner inside an event: it queues a `PlanRequest`, the caller runs it with `run_request` wherever slow
work belongs (a worker thread, a callback group of its own) and hands the result back with `on_plan`.

    idle ──start──► planning ──valid plan──► executing ──last subgoal succeeded──► succeeded
                       ▲  │                     │
                       │  └─rejected, no replans left──► failed ◄──failure, no replans left─┘
                       └────────── failure / rejected plan (replans left) ◄──────────────────┘

Success detection, per subgoal:
- `task_status` (the sim's latched success check) reports success for exactly this subgoal's instruction;
- or `subgoal_status` (the policy: vla_node) says "done" for it and the skill's expected symbolic effect
  holds in the observed scene (`scene_from_state` of `scene_state`) within `done_grace_s` (a robot without
  a success oracle); "done" without the effect is a failure.
Failure: `subgoal_status` "timeout" / "failed" for this subgoal, or no success within `subgoal_timeout_s`.
A failure re-plans from the current scene with feedback `done: a(..); b(..); failed: c(..) (reason)` (the
planner puts the scene description and this feedback into its prompt), at most `max_replans` times per
instruction. A plan the planner's verifier rejects is never executed; it costs a replan as well.

Every method returns `Actions`: the plan report to publish (a JSON-ready dict, on every change), the
subgoal instruction to publish (on start and every `republish_period_s`, so late joiners get it; policies
ignore repeats), and log lines.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent_stack.cognition.plan import Plan, Subgoal
from agent_stack.cognition.scene import BIN, HAND, TABLE, SymbolicScene
from agent_stack.cognition.skills import SKILLS

IDLE, PLANNING, EXECUTING, SUCCEEDED, FAILED = "idle", "planning", "executing", "succeeded", "failed"
FAILURE_STATUSES = ("timeout", "failed")
"""`subgoal_status` values that end a subgoal unsuccessfully ("done" is the other one)."""


class PlannerLike(Protocol):
    def plan(self, instruction: str, scene: SymbolicScene, feedback: str = ""):
        """A result with `.plan` (Plan | None), `.valid`, `.reasons`, `.calls`, `.seconds`."""


@dataclass
class ExecutiveConfig:
    """How the executive judges and retries subgoals."""

    subgoal_timeout_s: float = 120.0
    """A subgoal not succeeded this long (caller's clock: sim time under use_sim_time) after it went out
    counts as failed with reason "timeout"."""
    max_replans: int = 3
    """Re-plans per instruction (after failures or rejected plans) before the instruction fails."""
    republish_period_s: float = 1.0
    """The current subgoal is published again this often (0: only once)."""
    done_grace_s: float = 2.0
    """After a "done" subgoal_status, how long the observed scene may take to show the expected effect."""

    def __post_init__(self) -> None:
        for name in ("subgoal_timeout_s", "republish_period_s", "done_grace_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0 or (name == "subgoal_timeout_s" and value == 0):
                bound = "> 0" if name == "subgoal_timeout_s" else ">= 0"
                raise ValueError(f"ExecutiveConfig.{name} must be a finite number {bound}, got {value!r}")
            setattr(self, name, float(value))
        if isinstance(self.max_replans, bool) or not isinstance(self.max_replans, int) or self.max_replans < 0:
            raise ValueError(f"ExecutiveConfig.max_replans must be an integer >= 0, got {self.max_replans!r}")


@dataclass(frozen=True)
class PlanRequest:
    """One call of the planner the executive is waiting for."""

    instruction: str
    scene: SymbolicScene
    feedback: str
    token: int
    """Identifies the request; a result for an outdated token (a new task came meanwhile) is dropped."""


@dataclass
class Actions:
    """What to publish after an event."""

    plan: dict | None = None
    """The plan report (publish on `plan` as JSON), or None when it did not change."""
    subgoal: str | None = None
    """A subgoal instruction to publish on `subgoal`, or None."""
    log: list[tuple[str, str]] = field(default_factory=list)
    """(level, text) lines: level "info", "warning" or "error"."""

    def merge(self, other: Actions) -> Actions:
        return Actions(other.plan if other.plan is not None else self.plan,
                       other.subgoal if other.subgoal is not None else self.subgoal, self.log + other.log)

    def __bool__(self) -> bool:
        return self.plan is not None or self.subgoal is not None or bool(self.log)


@dataclass(frozen=True)
class PlannerError:
    """Stands in for a planner result when the planner raised (an unreachable LLM server, ...)."""

    reasons: tuple[str, ...]
    seconds: float
    plan: None = None
    valid: bool = False
    calls: int = 0

    def to_dict(self) -> dict:
        return {"valid": False, "reasons": list(self.reasons), "calls": 0, "seconds": self.seconds}


def normalize(text: str) -> str:
    """Instructions compare case-, space- and punctuation-insensitively (the sim echoes its own phrasing)."""
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", str(text).lower()).split())


def effect_check(subgoal: Subgoal, scene: SymbolicScene) -> str:
    """Why the subgoal's expected symbolic effect does not hold in `scene`; "" when it does.

    The effect is the skill's `apply` on the acted-on block (skills.py): the location the step puts it in.
    Skills whose effect is only "on the table" (pushes, put_near) are checked that far and no further.
    """
    color = subgoal.arguments["color"]
    if color not in scene.blocks:
        return f"the {color} block is not in the scene"
    try:
        expected = SKILLS[subgoal.skill].apply(scene, subgoal.arguments).blocks[color]
    except ValueError as error:  # the effect is impossible in this scene (e.g. a second block in hand)
        return str(error)
    actual = scene.blocks[color]
    if actual == expected:
        return ""
    return f"the {color} block is {_place(actual)}, expected {_place(expected)}"


def _place(where: str) -> str:
    return {TABLE: "on the table", HAND: "in the hand", BIN: "in the bin"}.get(
        where, f"on the {where.replace('_', ' ')}")


class Executive:
    """The state machine; see the module docstring. Not thread-safe: one caller (or one lock) at a time."""

    def __init__(self, planner: PlannerLike, config: ExecutiveConfig | None = None,
                 info: dict[str, Any] | None = None,
                 dispatch_allowed: Callable[[float], bool] | None = None) -> None:
        self.planner = planner
        self.config = config or ExecutiveConfig()
        self.info = dict(info or {})
        """Static facts copied into every report (backend, strategy, ...)."""
        self.dispatch_allowed = dispatch_allowed
        """Rate limit on new subgoals (`SafetyRules.allow_subgoal`): a refused subgoal waits, its timeout
        not yet running, and is tried again every tick. Republishing is not a new dispatch."""
        self.scene: SymbolicScene | None = None
        self.task_status: dict | None = None
        self._token = 0
        self._clear(None)

    def _clear(self, instruction: str | None) -> None:
        self.instruction = instruction
        self.status = IDLE if instruction is None else PLANNING
        self.plan: Plan | None = None
        self.index: int | None = None
        self.replans = 0
        self.reasons: list[str] = []
        self.done: list[Subgoal] = []
        self.history: list[dict] = []
        self.feedback = ""
        self.calls = 0
        self.planning_seconds = 0.0
        self.last_result: dict | None = None
        self.latency: float | None = None
        self.subgoal_started: float | None = None
        self.last_published: float | None = None
        self.done_reported: float | None = None
        self._held = False
        self._token += 1
        self._request_due = instruction is not None
        self._in_flight: PlanRequest | None = None

    # --- the current subgoal ---------------------------------------------------------------------------

    @property
    def subgoal(self) -> Subgoal | None:
        if self.status != EXECUTING or self.plan is None or self.index is None or self.subgoal_started is None:
            return None  # none, or held back by the rate limit (not dispatched yet)
        return self.plan.subgoals[self.index]

    @property
    def planning(self) -> bool:
        """A plan is wanted or being computed."""
        return self.status == PLANNING

    # --- inputs ----------------------------------------------------------------------------------------

    def start(self, instruction: str, now: float, scene: SymbolicScene | None = None) -> Actions:
        """A new instruction from `task`. The same instruction again (any case or spacing) is ignored,
        whatever its state, so a repeating publisher does not restart it; a different one replaces it."""
        text = " ".join(str(instruction).split())
        if scene is not None:
            self.scene = scene
        if not text:
            return Actions(log=[("warning", "ignored an empty instruction")])
        if self.instruction is not None and normalize(text) == normalize(self.instruction):
            return Actions()
        previous = self.instruction if self.status in (PLANNING, EXECUTING) else None
        self._clear(text)
        log = [("info", f"new instruction {text!r}" + (f" (replaces {previous!r})" if previous else ""))]
        if self.scene is None:
            log.append(("info", "waiting for a scene_state to plan from"))
        return Actions(plan=self.report(), log=log)

    def on_scene(self, scene: SymbolicScene, now: float) -> Actions:
        """The latest observed scene (from `scene_state`)."""
        self.scene = scene
        return self._check_done(now)

    def on_task_status(self, status: dict, now: float) -> Actions:
        """The sim's `task_status` {"instruction", "success", ...}: success for the current subgoal's
        instruction completes it."""
        self.task_status = dict(status)
        subgoal = self.subgoal
        if subgoal is None or status.get("success") is not True:
            return Actions()
        if normalize(status.get("instruction", "")) != normalize(subgoal.instruction):
            return Actions()  # another subgoal's (a late message for the previous one)
        return self._succeeded(now, "task_status")

    def on_subgoal_status(self, status: dict, now: float) -> Actions:
        """The policy's `subgoal_status` {"subgoal", "status": "done" | "timeout" | "failed", ...}."""
        subgoal = self.subgoal
        if subgoal is None:
            return Actions()
        reported = status.get("subgoal")
        if reported is not None and normalize(reported) != normalize(subgoal.instruction):
            return Actions()  # about an earlier subgoal
        verdict = str(status.get("status", ""))
        if verdict == "done":
            if self.done_reported is None:
                self.done_reported = now
            return self._check_done(now)
        if verdict in FAILURE_STATUSES:
            reason = str(status.get("reason") or verdict)
            return self._failed(now, reason)
        return Actions(log=[("warning", f"ignored subgoal_status {verdict!r} (expected done, timeout or failed)")])

    def tick(self, now: float) -> Actions:
        """Time passes: the subgoal timeout, the grace after "done", the periodic republish."""
        if self.status == EXECUTING and self.subgoal_started is None:
            return self._dispatch(now)
        subgoal = self.subgoal
        if subgoal is None:
            return Actions()
        actions = self._check_done(now)
        if self.subgoal is not subgoal:
            return actions
        if now - self.subgoal_started > self.config.subgoal_timeout_s:
            return actions.merge(self._failed(now, "timeout"))
        period = self.config.republish_period_s
        if period > 0 and now - self.last_published >= period:
            self.last_published = now
            actions = actions.merge(Actions(subgoal=subgoal.instruction))
        return actions

    # --- planning --------------------------------------------------------------------------------------

    def take_request(self) -> PlanRequest | None:
        """The planner call to run now, or None (nothing to plan, one in flight, or no scene yet)."""
        if not self._request_due or self._in_flight is not None or self.scene is None:
            return None
        self._request_due = False
        self._in_flight = PlanRequest(self.instruction, self.scene, self.feedback, self._token)
        return self._in_flight

    def run_request(self, request: PlanRequest):
        """Call the planner (slow: seconds). Touches no executive state, so it may run in another thread;
        an exception becomes a rejected result with the error as its reason."""
        began = time.monotonic()
        try:
            return self.planner.plan(request.instruction, request.scene, request.feedback)
        except Exception as error:  # noqa: BLE001 - whatever the backend raises, the robot must not act on it
            return PlannerError((f"planner error: {type(error).__name__}: {error}",),
                                round(time.monotonic() - began, 3))

    def on_plan(self, request: PlanRequest, result, now: float) -> Actions:
        """The planner's answer to `request`: execute it when valid, else re-plan or fail."""
        if request.token != self._token or self._in_flight is not request:
            return Actions(log=[("info", f"dropped a plan for {request.instruction!r}: the instruction changed")])
        self._in_flight = None
        calls = int(getattr(result, "calls", 0) or 0)
        seconds = float(getattr(result, "seconds", 0.0) or 0.0)
        self.calls += calls
        self.planning_seconds += seconds
        self.latency = seconds
        self.last_result = _json_safe(result)
        plan = getattr(result, "plan", None)
        reasons = [str(r) for r in (getattr(result, "reasons", None) or [])]
        if getattr(result, "valid", False) and plan is not None and len(plan) > 0:
            self.plan, self.reasons = plan, []
            log = [("info", f"plan ({calls} LLM calls, {seconds:.2f} s): {plan.calls()}")]
            return Actions(log=log).merge(self._begin(0, now))
        reasons = reasons or ["the planner returned no plan"]
        self.history.append({"plan": plan.calls() if plan is not None else None, "outcome": "rejected",
                             "reasons": reasons})
        return self._retry_or_fail(reasons, "plan rejected: " + "; ".join(reasons))

    # --- transitions -----------------------------------------------------------------------------------

    def _begin(self, index: int, now: float) -> Actions:
        self.status, self.index = EXECUTING, index
        self.subgoal_started = self.last_published = self.done_reported = None
        self._held = False
        actions = self._dispatch(now)
        return actions if actions.plan is not None else Actions(plan=self.report()).merge(actions)

    def _dispatch(self, now: float) -> Actions:
        """Send out subgoal `index` unless the rate limit holds it back (then `tick` tries again)."""
        text = self.plan.subgoals[self.index].instruction
        if self.dispatch_allowed is not None and not self.dispatch_allowed(now):
            first, self._held = not self._held, True
            warning = ("warning", f"subgoal held back by the subgoal rate limit: {text!r}")
            return Actions(log=[warning] if first else [])
        self._held = False
        self.subgoal_started = self.last_published = now
        log = [("info", f"subgoal {self.index + 1}/{len(self.plan)}: {text!r}")]
        actions = Actions(plan=self.report(), subgoal=text, log=log)
        # Already true (the latched task_status of a repeated instruction): no new message would come.
        status = self.task_status
        if status and status.get("success") is True and normalize(status.get("instruction", "")) == normalize(text):
            actions = actions.merge(self._succeeded(now, "task_status"))
        return actions

    def _check_done(self, now: float) -> Actions:
        """After a "done": succeed once the effect holds; fail when it has not within the grace."""
        subgoal = self.subgoal
        if subgoal is None or self.done_reported is None or self.scene is None:
            return Actions()
        mismatch = effect_check(subgoal, self.scene)
        if not mismatch:
            return self._succeeded(now, "subgoal_status done and the expected effect holds")
        if now - self.done_reported >= self.config.done_grace_s:
            return self._failed(now, f"reported done but {mismatch}")
        return Actions()

    def _succeeded(self, now: float, evidence: str) -> Actions:
        subgoal = self.subgoal
        self.done.append(subgoal)
        self.history.append({"subgoal": subgoal.instruction, "call": subgoal.call(), "outcome": "succeeded",
                             "evidence": evidence, "elapsed_s": round(now - self.subgoal_started, 3)})
        log = [("info", f"subgoal succeeded ({evidence}): {subgoal.instruction!r}")]
        if self.index + 1 < len(self.plan):
            return Actions(log=log).merge(self._begin(self.index + 1, now))
        self.status, self.index, self.subgoal_started = SUCCEEDED, None, None
        summary = f"({len(self.done)} subgoals, {self.replans} replans)"
        log.append(("info", f"instruction succeeded: {self.instruction!r} {summary}"))
        return Actions(plan=self.report(), log=log)

    def _failed(self, now: float, reason: str) -> Actions:
        subgoal = self.subgoal
        self.history.append({"subgoal": subgoal.instruction, "call": subgoal.call(), "outcome": "failed",
                             "reason": reason, "elapsed_s": round(now - self.subgoal_started, 3)})
        # The Inner Monologue feedback: what is done, what failed and why (planner_lm.corpus's format).
        feedback = "; ".join(part for part in (
            "done: " + Plan(tuple(self.done)).calls() if self.done else "",
            f"failed: {subgoal.call()} ({reason})") if part)
        log = [("warning", f"subgoal failed ({reason}): {subgoal.instruction!r}")]
        return Actions(log=log).merge(self._retry_or_fail([f"{subgoal.call()}: {reason}"], feedback))

    def _retry_or_fail(self, reasons: list[str], feedback: str) -> Actions:
        self.index, self.subgoal_started, self.done_reported = None, None, None
        if self.replans < self.config.max_replans:
            self.replans += 1
            self.status, self.reasons, self.feedback, self._request_due = PLANNING, reasons, feedback, True
            log = [("info", f"re-planning ({self.replans}/{self.config.max_replans}) with feedback: {feedback}")]
            return Actions(plan=self.report(), log=log)
        self.status = FAILED
        self.reasons = reasons + [f"gave up after {self.replans} replans"]
        return Actions(plan=self.report(), log=[("error", f"instruction failed: {self.instruction!r}: "
                                                          + "; ".join(self.reasons))])

    # --- the report ------------------------------------------------------------------------------------

    def report(self) -> dict:
        """The `plan` message: instruction, status, the plan, where execution is, replans, reasons, cost."""
        subgoal = self.subgoal
        return {
            "instruction": self.instruction,
            "status": self.status,
            "plan": self.plan.to_dict() if self.plan is not None else None,
            "current": self.index,
            "subgoal": subgoal.instruction if subgoal is not None else None,
            "replans": self.replans,
            "max_replans": self.config.max_replans,
            "reasons": list(self.reasons),
            "feedback": self.feedback,
            "history": list(self.history),
            **self.info,
            "calls": self.calls,
            "latency_s": round(self.latency, 3) if self.latency is not None else None,
            "planning_s": round(self.planning_seconds, 3),
            "scene": self.scene.describe() if self.scene is not None else None,
            "result": self.last_result,
        }


def _json_safe(result) -> dict:
    """`result.to_dict()` without the trace (every completion: large) and what the report has already,
    when it is strict JSON; else the few fields every result has."""
    try:
        data = {k: v for k, v in result.to_dict().items() if k not in ("trace", "plan", "instruction")}
        json.dumps(data, allow_nan=False)
        return data
    except (AttributeError, TypeError, ValueError):
        return {"valid": bool(getattr(result, "valid", False)),
                "reasons": [str(r) for r in (getattr(result, "reasons", None) or [])],
                "calls": int(getattr(result, "calls", 0) or 0),
                "seconds": float(getattr(result, "seconds", 0.0) or 0.0)}
