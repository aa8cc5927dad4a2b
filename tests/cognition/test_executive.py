"""The closed-loop executive (agent_stack.cognition.executive) with a scripted planner: no LLM, no ROS.

A `ScriptedPlanner` answers with prepared plans in order and records what it was asked (instruction,
scene description, feedback), so each test drives the state machine through one story: success through
the sim's task_status, through "done" + the observed effect, failures by status and by the executive's own
timeout, Inner Monologue feedback, rejected plans, the replan limit, new and repeated instructions."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from agent_stack.cognition.executive import (
    EXECUTING,
    FAILED,
    PLANNING,
    SUCCEEDED,
    Actions,
    Executive,
    ExecutiveConfig,
    effect_check,
    normalize,
)
from agent_stack.cognition.plan import Plan, Subgoal
from agent_stack.cognition.scene import SymbolicScene
from agent_stack.cognition.verifier import verify_plan

INSTRUCTION = "put the red block on the green pad, then the blue one on the red one"
PAD = Subgoal.make("place_on_pad", color="red", target="green")
STACK = Subgoal.make("stack", color="blue", target="red")
PADS = frozenset({"red", "green", "blue", "yellow"})
START = SymbolicScene({"red": "table", "green": "table", "blue": "table"}, PADS)
AFTER_PAD = START.moved("red", "green_pad")
AFTER_BOTH = AFTER_PAD.moved("blue", "red_block")


@dataclass
class Result:
    """The shape of `planner.PlanResult` the executive reads."""

    plan: Plan | None
    valid: bool
    reasons: list[str] = field(default_factory=list)
    calls: int = 3
    seconds: float = 0.5

    def to_dict(self) -> dict:
        return {"plan": self.plan.to_dict() if self.plan else None, "valid": self.valid,
                "reasons": self.reasons, "calls": self.calls, "seconds": self.seconds}


class ScriptedPlanner:
    """Answers with `answers` in order: a list of subgoals (verified against the scene, as the real
    planner does), a Result, or an exception to raise."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, str, str]] = []

    def plan(self, instruction: str, scene: SymbolicScene, feedback: str = ""):
        self.asked.append((instruction, scene.describe(), feedback))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, Result):
            return answer
        verdict = verify_plan(answer, scene)
        return Result(Plan(tuple(answer)), verdict.valid, list(verdict.reasons))


def make(*answers, **config) -> tuple[Executive, ScriptedPlanner]:
    planner = ScriptedPlanner(*answers)
    config.setdefault("done_grace_s", 1.0)
    return Executive(planner, ExecutiveConfig(**config), info={"strategy": "scripted"}), planner


def plan_now(executive: Executive, now: float) -> Actions:
    """What the node's worker does: take the due request, run the planner, hand the result back."""
    request = executive.take_request()
    assert request is not None, "no planning request was due"
    return executive.on_plan(request, executive.run_request(request), now)


def sim_status(subgoal: Subgoal, success: bool) -> dict:
    return {"instruction": subgoal.instruction, "success": success, "elapsed_s": 1.0}


def test_two_step_instruction_succeeds_through_the_sims_task_status():
    executive, planner = make([PAD, STACK])
    started = executive.start(INSTRUCTION, now=0.0)
    assert started.plan["status"] == PLANNING and started.subgoal is None
    assert executive.take_request() is None, "no scene yet: nothing to plan from"
    executive.on_scene(START, 0.1)

    first = plan_now(executive, 0.2)
    assert planner.asked == [(INSTRUCTION, START.describe(), "")]
    assert first.subgoal == PAD.instruction == "put the red block on the green pad"
    report = first.plan
    assert report["status"] == EXECUTING and report["current"] == 0 and report["subgoal"] == PAD.instruction
    assert [s["skill"] for s in report["plan"]["subgoals"]] == ["place_on_pad", "stack"]
    assert report["calls"] == 3 and report["latency_s"] == 0.5 and report["strategy"] == "scripted"

    # The latched status of the new subgoal, not yet true; then a late repeat of the republish.
    assert not executive.on_task_status(sim_status(PAD, False), 1.0)
    assert executive.tick(1.1).subgoal is None  # republish period 1 s from 0.2
    assert executive.tick(1.3).subgoal == PAD.instruction
    # Success of another instruction is not this subgoal's.
    assert not executive.on_task_status(sim_status(STACK, True), 2.0)
    second = executive.on_task_status({"instruction": "Put the red block  on the green pad.", "success": True}, 5.0)
    assert second.subgoal == STACK.instruction and second.plan["current"] == 1
    # The sim still reports the old instruction until it takes the new one: not a second success.
    assert not executive.on_task_status(sim_status(PAD, True), 5.1)
    done = executive.on_task_status(sim_status(STACK, True), 9.0)
    assert done.subgoal is None and done.plan["status"] == SUCCEEDED and executive.status == SUCCEEDED
    assert [h["outcome"] for h in done.plan["history"]] == ["succeeded", "succeeded"]
    assert done.plan["history"][1]["elapsed_s"] == pytest.approx(4.0)
    assert not executive.tick(20.0), "nothing is republished after the instruction ended"


def test_done_counts_only_when_the_expected_effect_is_observed():
    executive, _ = make([PAD, STACK])
    executive.start(INSTRUCTION, 0.0, scene=START)
    plan_now(executive, 0.0)
    # "done" for another subgoal is ignored; "done" for this one waits for the scene to show it.
    assert not executive.on_subgoal_status({"subgoal": STACK.instruction, "status": "done"}, 1.0)
    assert not executive.on_subgoal_status({"subgoal": PAD.instruction, "status": "done"}, 1.0)
    assert executive.index == 0
    advanced = executive.on_scene(AFTER_PAD, 1.5)
    assert advanced.subgoal == STACK.instruction
    assert executive.history[-1]["evidence"].startswith("subgoal_status done")
    # A "done" whose effect never shows is a failure after the grace period, and the executive re-plans.
    executive.on_subgoal_status({"subgoal": STACK.instruction, "status": "done"}, 3.0)
    assert executive.tick(3.5).plan is None
    failed = executive.tick(4.1)
    assert failed.plan["status"] == PLANNING
    assert "reported done but the blue block is on the table, expected on the red block" in executive.feedback


def test_failure_replans_from_the_new_scene_with_inner_monologue_feedback():
    executive, planner = make([PAD, STACK], [STACK])
    executive.start(INSTRUCTION, 0.0, scene=START)
    plan_now(executive, 0.0)
    executive.on_scene(AFTER_PAD, 4.0)
    executive.on_task_status(sim_status(PAD, True), 4.0)
    failed = executive.on_subgoal_status({"subgoal": STACK.instruction, "status": "timeout"}, 30.0)
    assert failed.plan["status"] == PLANNING and failed.plan["replans"] == 1 and failed.subgoal is None
    assert failed.plan["reasons"] == ["stack(blue, red): timeout"]
    assert executive.tick(31.0).subgoal is None, "no subgoal goes out while re-planning"

    again = plan_now(executive, 32.0)
    _, scene_text, feedback = planner.asked[-1]
    assert feedback == "done: place_on_pad(red, green); failed: stack(blue, red) (timeout)"
    assert scene_text == AFTER_PAD.describe()  # the scene as it is now goes into the prompt
    assert again.subgoal == STACK.instruction and again.plan["replans"] == 1
    done = executive.on_task_status(sim_status(STACK, True), 40.0)
    assert done.plan["status"] == SUCCEEDED and done.plan["calls"] == 6
    assert [h["outcome"] for h in done.plan["history"]] == ["succeeded", "failed", "succeeded"]


def test_own_timeout_and_the_replan_limit():
    executive, planner = make([PAD, STACK], [PAD, STACK], subgoal_timeout_s=10.0, max_replans=1)
    executive.start(INSTRUCTION, 0.0, scene=START)
    plan_now(executive, 0.0)
    assert executive.tick(10.0).plan is None
    timed_out = executive.tick(10.5)
    assert timed_out.plan["status"] == PLANNING
    plan_now(executive, 11.0)
    assert planner.asked[-1][2] == "failed: place_on_pad(red, green) (timeout)"
    gave_up = executive.on_subgoal_status({"subgoal": PAD.instruction, "status": "failed",
                                           "reason": "lost the grip"}, 15.0)
    report = gave_up.plan
    assert report["status"] == FAILED and report["replans"] == 1
    assert report["reasons"] == ["place_on_pad(red, green): lost the grip", "gave up after 1 replans"]
    assert ("error", f"instruction failed: {INSTRUCTION!r}: " + "; ".join(report["reasons"])) in gave_up.log
    assert executive.take_request() is None and not executive.tick(100.0)


def test_a_rejected_plan_is_never_executed():
    # The blue block is not in this scene: the verifier rejects stack(blue, red) and nothing goes out.
    scene = SymbolicScene({"red": "table", "green": "table"}, PADS)
    executive, planner = make([PAD, STACK], [PAD], max_replans=1)
    executive.start(INSTRUCTION, 0.0, scene=scene)
    rejected = plan_now(executive, 1.0)
    assert rejected.subgoal is None and rejected.plan["status"] == PLANNING
    assert rejected.plan["reasons"] == ["stack(blue, red): there is no blue block"]
    assert rejected.plan["history"][0]["outcome"] == "rejected"
    assert executive.plan is None
    accepted = plan_now(executive, 2.0)
    assert planner.asked[-1][2] == "plan rejected: stack(blue, red): there is no blue block"
    assert accepted.subgoal == PAD.instruction


def test_a_planner_error_and_an_empty_answer_fail_without_acting():
    executive, _ = make(RuntimeError("server unreachable"), Result(None, False, []), max_replans=1)
    executive.start(INSTRUCTION, 0.0, scene=START)
    first = plan_now(executive, 1.0)
    assert first.plan["reasons"] == ["planner error: RuntimeError: server unreachable"]
    last = plan_now(executive, 2.0)
    assert last.plan["status"] == FAILED and last.subgoal is None
    assert last.plan["reasons"][0] == "the planner returned no plan"


def test_new_instruction_replaces_the_old_and_repeats_are_ignored():
    executive, planner = make([PAD, STACK], [Subgoal.make("put_in_bin", color="blue")])
    executive.start(INSTRUCTION, 0.0, scene=START)
    stale = executive.take_request()
    assert executive.take_request() is None, "one planner call at a time"
    assert not executive.start("  PUT the red block on the green pad, then the blue one on the red one ", 0.5)
    replaced = executive.start("put the blue block in the bin", 1.0)
    assert replaced.plan["status"] == PLANNING and replaced.plan["instruction"] == "put the blue block in the bin"
    # The answer to the old instruction arrives late and is dropped.
    dropped = executive.on_plan(stale, executive.run_request(stale), 2.0)
    assert dropped.plan is None and dropped.subgoal is None and executive.plan is None
    fresh = plan_now(executive, 3.0)
    assert fresh.subgoal == "put the blue block in the bin"
    assert planner.asked[-1][0] == "put the blue block in the bin"
    assert executive.start("", 4.0).log == [("warning", "ignored an empty instruction")]


def test_an_already_satisfied_subgoal_completes_at_once():
    executive, _ = make([PAD, STACK])
    # The latched task_status already says the first subgoal holds (the same instruction was given before).
    executive.on_task_status(sim_status(PAD, True), 0.0)
    executive.start(INSTRUCTION, 0.0, scene=START)
    actions = plan_now(executive, 1.0)
    assert actions.subgoal == STACK.instruction and executive.index == 1


def test_effect_check_and_normalize():
    assert effect_check(PAD, AFTER_PAD) == ""
    assert effect_check(STACK, AFTER_PAD) == "the blue block is on the table, expected on the red block"
    assert effect_check(Subgoal.make("pick_up", color="yellow"), START) == "the yellow block is not in the scene"
    assert effect_check(Subgoal.make("put_in_bin", color="red"), START.moved("red", "bin")) == ""
    assert normalize("Stack the BLUE block, on the red block!") == "stack the blue block on the red block"


@pytest.mark.parametrize("field_name, value", [("subgoal_timeout_s", 0.0), ("subgoal_timeout_s", float("nan")),
                                               ("republish_period_s", -1.0), ("done_grace_s", float("inf")),
                                               ("max_replans", -1), ("max_replans", 1.5)])
def test_config_rejects_bad_values(field_name, value):
    with pytest.raises(ValueError, match=field_name):
        ExecutiveConfig(**{field_name: value})


def test_the_subgoal_rate_limit_holds_a_subgoal_back_without_running_its_timeout():
    allowed = {"now": False}
    planner = ScriptedPlanner([PAD, STACK])
    executive = Executive(planner, ExecutiveConfig(subgoal_timeout_s=5.0),
                          dispatch_allowed=lambda now: allowed["now"])
    executive.start(INSTRUCTION, 0.0, scene=START)
    held = plan_now(executive, 0.0)
    assert held.subgoal is None and held.plan["status"] == EXECUTING and held.plan["current"] == 0
    assert held.log[-1][0] == "warning" and "rate limit" in held.log[-1][1]
    assert not executive.tick(10.0), "held back: no timeout, no repeated warning"
    allowed["now"] = True
    sent = executive.tick(11.0)
    assert sent.subgoal == PAD.instruction and sent.plan["subgoal"] == PAD.instruction
    assert executive.tick(15.0).plan is None and executive.tick(16.5).plan["status"] == PLANNING
