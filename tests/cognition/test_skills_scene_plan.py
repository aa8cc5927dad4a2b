"""The planner's symbolic layer: skills match the sim's task suite, scenes come from real sim states,
plans parse leniently but validate strictly, and the verifier simulates preconditions and effects."""

from __future__ import annotations

import pytest

from agent_stack.cognition.plan import Plan, PlanParseError, Subgoal, parse_plan
from agent_stack.cognition.scene import BIN, HAND, TABLE, SymbolicScene, scene_from_state
from agent_stack.cognition.skills import SKILLS
from agent_stack.cognition.verifier import verify_plan
from sim.state import scene_state_to_dict
from sim.tasks import FAMILIES, make_task, task_from_instruction

ARGS = {"color": "red", "target": "green", "second": "blue"}


def test_every_skill_is_a_sim_task_family_and_its_instruction_parses_back() -> None:
    assert set(SKILLS) == set(FAMILIES)
    for name, skill in SKILLS.items():
        assert skill.params == FAMILIES[name].params
        assert skill.target_kind == FAMILIES[name].target_kind
        args = {p: ARGS[p] for p in skill.params}
        task = task_from_instruction(skill.instruction(args))
        assert (task.family, task.args) == (name, args)


@pytest.fixture(scope="module")
def env():
    from sim.tabletop_env import TabletopConfig, TabletopEnv
    env = TabletopEnv(TabletopConfig(render=False))
    yield env
    env.close()


def test_scene_from_a_real_sim_state_sees_a_stack(env) -> None:
    env.reset(seed=3, task=make_task("unstack", color="red", target="blue"))  # red starts on blue
    scene = scene_from_state(scene_state_to_dict(env.scene_state()))
    assert scene.blocks["red"] == "blue_block"
    assert scene.blocks["blue"] == TABLE and scene.held is None
    assert scene.pads == frozenset({"red", "green", "blue", "yellow"}) and scene.has_bin
    assert not scene.is_clear("blue") and scene.is_clear("red")
    assert "the red block is on the blue block" in scene.describe()


def test_malformed_scene_state_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="malformed scene state"):
        scene_from_state({"objects": {"red_block": {"kind": "block"}}})
    with pytest.raises(ValueError, match="unknown location"):
        SymbolicScene({"red": "purple_block"})


@pytest.mark.parametrize("text", [
    'Thought: red is free.\nPlan: {"subgoals": [{"skill": "place_on_pad", "args": {"color": "red", '
    '"target": "green"}}, {"skill": "stack", "args": {"color": "blue", "target": "red"}}]}',
    "```json\n{'subgoals': [{'skill': 'place_on_pad', 'args': ['red', 'green']}, "
    "{skill: 'stack', args: {color: 'Blue', target: 'red'}},]}\n```",
    '[{"skill": "place_on_pad", "args": {"color": "red", "target": "green"}}, '
    '{"skill": "stack", "args": {"color": "blue", "target": "red"}}]',
    "1. place_on_pad(red, green)\n2. stack(color=blue, target=red)",
])
def test_parse_plan_accepts_common_llm_wrappings(text: str) -> None:
    plan = parse_plan(text)
    assert plan.calls() == "place_on_pad(red, green); stack(blue, red)"
    assert [s.instruction for s in plan.subgoals] == ["put the red block on the green pad",
                                                      "stack the blue block on the red block"]


@pytest.mark.parametrize("text, reason", [
    ("", "empty output"),
    ("I cannot help with that.", "no JSON plan"),
    ('{"subgoals": []}', "non-empty"),
    ('{"subgoals": [{"skill": "fly", "args": {}}]}', "unknown skill 'fly'"),
    ('{"subgoals": [{"skill": "stack", "args": {"color": "red"}}]}', "takes arguments"),
    ('{"subgoals": [{"skill": "pick_up", "args": {"color": "purple"}}]}', "unknown colour"),
    ('{"subgoals": [{"skill": "stack", "args": {"color": "red", "target": "red"}}]}', "distinct blocks"),
])
def test_parse_plan_rejects_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(PlanParseError, match=reason):
        parse_plan(text)


def test_plan_round_trips_through_json() -> None:
    plan = parse_plan("pick_up(red)\nput_in_bin(red)")
    assert parse_plan(plan.to_json()) == plan
    assert plan.to_dict()["subgoals"][0] == {"skill": "pick_up", "args": {"color": "red"},
                                            "instruction": "pick up the red block"}


SCENE = SymbolicScene({"red": TABLE, "green": TABLE, "blue": "red_block"}, pads=frozenset({"green"}))


@pytest.mark.parametrize("calls, valid, failed, reason", [
    ("unstack(blue, red); place_on_pad(red, green); stack(blue, red)", True, None, ""),
    ("place_on_pad(red, green)", False, 0, "the blue block is on the red block"),
    ("pick_up(yellow)", False, 0, "there is no yellow block"),
    ("unstack(blue, red); place_on_pad(red, yellow)", False, 1, "there is no yellow pad"),
    ("pick_up(green); stack(blue, green)", False, 1, "the green block is held"),
    ("unstack(blue, red); pick_up(blue); pick_up(red)", False, 2, "the hand holds the blue block"),
    ("put_in_bin(green); stack(red, green)", False, 1, "the green block is in the bin"),
    ("unstack(blue, red); place_on_pad(red, green); place_on_pad(blue, green)", False, 2,
     "the red block is already on the green pad"),
    ("stack(green, blue); push_left(green)", False, 1, "must rest on the table"),
])
def test_verifier_simulates_preconditions_and_effects(calls, valid, failed, reason) -> None:
    steps = parse_plan(calls.replace("; ", "\n")).subgoals
    verdict = verify_plan(steps, SCENE)
    assert verdict.valid is valid and verdict.failed_step == failed
    assert reason in verdict.explain()
    if valid:
        assert verdict.final_state.blocks == {"red": "green_pad", "green": TABLE, "blue": "red_block"}


def test_effects_move_blocks_between_hand_bin_and_table() -> None:
    steps = (Subgoal.make("pick_up", color="green"),)
    assert verify_plan(steps, SCENE).final_state.blocks["green"] == HAND
    steps += (Subgoal.make("put_in_bin", color="green"),)
    assert verify_plan(steps, SCENE).final_state.blocks["green"] == BIN
    assert verify_plan(Plan(()).subgoals, SCENE).explain() == "the plan is empty"
