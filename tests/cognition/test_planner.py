"""The planner facade, its config and the `agent-stack plan` command, with a scripted LLM test double
(and, once its weights ship, the embedded planner LM)."""

from __future__ import annotations

import json

import pytest

from agent_stack.cognition import cli
from agent_stack.cognition.plan import Subgoal
from agent_stack.cognition.planner import Planner, PlannerConfig
from agent_stack.cognition.safety import SafetyRules
from tests.cognition.scripted_llm import INSTRUCTION, SCENE, ScriptedLLM

GOOD = "Thought: red goes first.\nPlan: place_on_pad(red, green); stack(blue, red)"
EXPECTED = (Subgoal.make("place_on_pad", color="red", target="green"),
            Subgoal.make("stack", color="blue", target="red"))


def test_config_round_trips_through_json(tmp_path) -> None:
    config = PlannerConfig(strategy="tot", beam=3, search="dfs", max_calls=10,
                           safety=SafetyRules(forbidden_colors=("yellow",)))
    path = tmp_path / "planner.json"
    path.write_text(config.to_json())
    assert PlannerConfig.load(path) == config
    assert config.strategy_options() == {"beam": 3, "search": "dfs"}
    assert config.make_strategy().beam == 3


@pytest.mark.parametrize("bad, field", [
    ({"strategy": "magic"}, "PlannerConfig.strategy"), ({"samples": 0}, "samples"),
    ({"strategy": "tot", "samples": 0}, "PlannerConfig.samples"), ({"retries": -1}, "PlannerConfig.retries"),
    ({"strategy": "tot", "search": "astar"}, "search"), ({"temperature": -1.0}, "temperature"),
    ({"max_calls": -1}, "PlannerConfig.max_calls"), ({"backend": ""}, "PlannerConfig.backend"),
    ({"seed": "x"}, "PlannerConfig.seed"), ({"safety": {"max_subgoals": 0}}, "max_subgoals"),
    ({"colour": "red"}, "unknown PlannerConfig fields"),
])
def test_a_bad_config_value_is_a_one_line_error_naming_the_field(bad: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field) as error:
        PlannerConfig.from_dict(bad)
    assert "\n" not in str(error.value)


def test_planner_returns_a_verified_plan_with_its_trace() -> None:
    planner = Planner(PlannerConfig(samples=3), llm=ScriptedLLM([GOOD]))
    result = planner.plan(INSTRUCTION, SCENE)
    assert result.valid and result.reasons == [] and result.plan.subgoals == EXPECTED
    assert result.strategy == "self_consistency" and result.calls == 3 and result.info["consensus"] == 1.0
    data = json.loads(result.to_json())
    first = data["plan"]["subgoals"][0]
    assert first == {"skill": "place_on_pad", "args": {"color": "red", "target": "green"},
                     "instruction": "put the red block on the green pad"}
    assert len(data["trace"]) == 3 and data["instruction"] == INSTRUCTION


def test_unsafe_instruction_is_refused_before_any_llm_call() -> None:
    llm = ScriptedLLM([GOOD])
    result = Planner(PlannerConfig(), llm=llm).plan("throw the red block at the person", SCENE)
    assert not result.valid and result.plan is None and llm.calls == 0
    assert any("'throw the red block at'" in r for r in result.reasons)


def test_unsafe_or_unverified_plans_are_never_valid() -> None:
    safety = SafetyRules(forbidden_skills=("stack",))
    result = Planner(PlannerConfig(strategy="cot", retries=0, safety=safety), llm=ScriptedLLM([GOOD])).plan(
        INSTRUCTION, SCENE)
    assert not result.valid and result.plan.subgoals == EXPECTED and "forbidden" in result.reasons[0]
    result = Planner(PlannerConfig(strategy="cot"), llm=ScriptedLLM(["no idea"])).plan(INSTRUCTION, SCENE)
    assert not result.valid and result.plan is None and "no plan" in result.reasons[0]
    result = Planner(PlannerConfig(max_calls=0), llm=ScriptedLLM([GOOD])).plan(INSTRUCTION, SCENE)
    assert not result.valid and result.calls == 0 and "call budget" in result.reasons[0]


def test_feedback_reaches_the_prompt() -> None:
    llm = ScriptedLLM([GOOD])
    Planner(PlannerConfig(strategy="cot"), llm=llm).plan(INSTRUCTION, SCENE, feedback="done: pick_up(red)")
    assert "Feedback: done: pick_up(red)" in llm.prompts[0][-1]["content"]


@pytest.fixture
def scripted_cli(monkeypatch):
    monkeypatch.setattr(cli, "Planner", lambda config: Planner(config, llm=ScriptedLLM([GOOD])))


def test_cli_prints_the_plan_as_json(scripted_cli, capsys) -> None:
    code = cli.main([INSTRUCTION, "--blocks", "red,green,blue", "--pads", "red,green", "--strategy", "tot",
                     "--beam", "1", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["valid"] and data["strategy"] == "tree_of_thought"
    assert [s["skill"] for s in data["plan"]["subgoals"]] == ["place_on_pad", "stack"]


def test_cli_prints_a_table_and_reads_a_scene_file(scripted_cli, capsys, tmp_path) -> None:
    scene = tmp_path / "scene.json"
    scene.write_text(json.dumps(SCENE.to_dict()))
    assert cli.main([INSTRUCTION, "--scene", str(scene), "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "stack(blue, red)" in out and "valid" in out and "2 LLM calls" in out


def test_cli_usage_errors_are_one_line(scripted_cli, capsys) -> None:
    assert cli.main([INSTRUCTION]) == 2
    assert "--blocks" in capsys.readouterr().err
    assert cli.main([INSTRUCTION, "--blocks", "red", "--samples", "0"]) == 2
    assert "samples" in capsys.readouterr().err


def test_embedded_planner_plans_the_two_step_stack() -> None:
    # Greedy chain of thought: the shipped LM's most accurate strategy (docs/BENCHMARKS.md).
    result = Planner(PlannerConfig(strategy="chain_of_thought")).plan(INSTRUCTION, SCENE)
    assert result.valid, result.reasons
    assert result.plan.subgoals == EXPECTED
