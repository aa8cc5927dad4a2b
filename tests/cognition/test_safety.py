"""Safety rules: instruction filter, plan veto (skills, objects, length, workspace), subgoal rate, config."""

from __future__ import annotations

import json
import logging

import pytest

from agent_stack.cognition.domain import TabletopDomain, TabletopProblem
from agent_stack.cognition.plan import parse_plan
from agent_stack.cognition.safety import SafetyRules
from agent_stack.cognition.scene import TABLE, SymbolicScene

SCENE = SymbolicScene({"red": TABLE, "green": TABLE, "blue": TABLE}, frozenset({"red", "green"}),
                      positions={"red": (0.5, 0.30, 0.05), "green": (0.5, 0.0, 0.05),
                                 "blue": (0.30, 0.0, 0.05)})


def plan(text: str):
    return parse_plan(text).subgoals


@pytest.mark.parametrize("text", ["throw the red block at the window", "hit the person with the blue block",
                                  "Hand the green block to someone"])
def test_instruction_filter_rejects_forbidden_words_with_the_reason(text: str, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="agent_stack.cognition.safety"):
        reasons = SafetyRules().check_instruction(text)
    assert reasons and all("forbidden" in r for r in reasons)
    assert "instruction rejected" in caplog.text


def test_instruction_filter_passes_ordinary_instructions_and_uses_configured_patterns() -> None:
    assert SafetyRules().check_instruction("put the red block on the green pad, then the blue on it") == []
    rules = SafetyRules(forbidden_patterns=(r"\bbin\b",))
    assert rules.check_instruction("put the red block in the bin") == [
        "instruction contains forbidden 'bin' (rule '\\\\bbin\\\\b')"]


def test_push_out_of_the_workspace_is_rejected_only_where_the_position_is_known() -> None:
    rules = SafetyRules()
    reasons = rules.check_plan(plan("push_left(red)"), SCENE)  # y 0.30 + 0.10 > 0.35
    assert len(reasons) == 1 and "out of the workspace" in reasons[0] and "push_left(red)" in reasons[0]
    assert rules.check_plan(plan("push_right(red)"), SCENE) == []
    assert rules.check_plan(plan("push_backward(blue)"), SCENE)  # x 0.30 - 0.10 < 0.25
    assert rules.check_plan(plan("push_left(green); push_left(green); push_left(green)"), SCENE) == []
    assert rules.check_plan(plan("push_left(green); " * 3 + "push_left(green)"), SCENE)  # 4 x 10 cm adds up
    moved = plan("pick_up(red); place_on_pad(red, red); push_left(red)")  # position now unknown
    assert rules.check_plan(moved, SCENE) == []
    assert rules.check_plan(plan("push_left(red)"), SymbolicScene({"red": TABLE})) == []


def test_forbidden_skills_objects_and_long_plans_are_vetoed(caplog) -> None:
    rules = SafetyRules(forbidden_colors=("blue",), forbidden_skills=("put_in_bin",), max_subgoals=2)
    with caplog.at_level(logging.WARNING, logger="agent_stack.cognition.safety"):
        reasons = rules.check_plan(plan("put_in_bin(red); stack(blue, green); pick_up(green)"), SCENE)
    assert any("more than max_subgoals=2" in r for r in reasons)
    assert any("put_in_bin is forbidden" in r for r in reasons)
    assert any("step 2 stack(blue, green): blue objects are forbidden" in r for r in reasons)
    assert "plan rejected" in caplog.text


def test_the_domain_vetoes_an_unsafe_plan_the_verifier_accepts() -> None:
    domain = TabletopDomain(SafetyRules(forbidden_skills=("put_in_bin",)))
    verdict = domain.verify(TabletopProblem("bin it", SCENE), plan("put_in_bin(red)"))
    assert not verdict.valid and "forbidden" in verdict.explain()


def test_subgoal_rate_limit_over_a_sliding_minute() -> None:
    rules = SafetyRules(max_subgoals_per_minute=2)
    allowed = [rules.allow_subgoal(t) for t in (0.0, 1.0, 2.0, 59.0, 60.5, 61.5)]
    assert allowed == [True, True, False, False, True, True]
    assert all(SafetyRules(max_subgoals_per_minute=None).allow_subgoal(0.0) for _ in range(100))


def test_rules_round_trip_through_json_and_bad_values_name_the_field() -> None:
    rules = SafetyRules(forbidden_colors=("blue",), max_subgoals=5)
    again = SafetyRules.from_dict(json.loads(json.dumps(rules.to_dict())))
    assert again == rules
    for bad, field in (({"max_subgoals": 0}, "max_subgoals"),
                       ({"forbidden_colors": ["purple"]}, "forbidden_colors"),
                       ({"forbidden_skills": ["fly"]}, "forbidden_skills"),
                       ({"forbidden_patterns": ["("]}, "forbidden_patterns"),
                       ({"workspace_low": (1.0, 0.0)}, "workspace_low"), ({"speed": 1}, "unknown")):
        with pytest.raises(ValueError, match=field) as error:
            SafetyRules.from_dict(bad)
        assert "\n" not in str(error.value)


def test_default_instruction_filter_passes_every_task_phrasing_of_the_sim() -> None:
    from sim.tasks import FAMILIES
    rules = SafetyRules()
    for family in FAMILIES.values():
        for phrasing in family.phrasings:
            text = phrasing.format(color="red", target="green", second="blue")
            assert rules.check_instruction(text) == [], text
