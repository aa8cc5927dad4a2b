"""Reasoning strategies on the tabletop domain, driven by a scripted LLM (a test double for the vote and
search logic): votes, search with backtracking, merging, budgets, resampling, determinism."""

from __future__ import annotations

import json
import math

import pytest

from agent_stack.cognition.domain import TabletopDomain, TabletopProblem
from agent_stack.cognition.llm.base import Completion
from agent_stack.cognition.plan import Subgoal
from agent_stack.cognition.strategies import STRATEGIES, Budget, make_strategy
from agent_stack.cognition.strategies.values import SELF_EVAL_QUESTION
from tests.cognition.scripted_llm import INSTRUCTION, SCENE, ScriptedLLM

PROBLEM = TabletopProblem(INSTRUCTION, SCENE)
DOMAIN = TabletopDomain()
GOOD = "place_on_pad(red, green); stack(blue, red)"
OTHER_VALID = "put_in_bin(red)"
INVALID = "stack(blue, red); place_on_pad(red, green)"  # red is covered when it is moved


def steps(text: str) -> tuple[Subgoal, ...]:
    return DOMAIN.parse(text)


def run(name: str, script, budget: Budget | None = None, clock=None, **options):
    llm = ScriptedLLM(script)
    extra = {} if clock is None else {"clock": clock(llm)}
    return make_strategy(name, **options).run(llm, DOMAIN, PROBLEM, budget, seed=0, **extra), llm


# --- registry ------------------------------------------------------------------------------------------

def test_registry_knows_every_strategy_and_rejects_bad_options() -> None:
    assert {"chain_of_thought", "self_consistency", "tree_of_thought", "graph_of_thought",
            "value_guided"} <= set(STRATEGIES)
    assert make_strategy("tot", beam=4).beam == 4
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        make_strategy("nope")
    with pytest.raises(ValueError, match="has no option"):
        make_strategy("cot", beam=2)
    with pytest.raises(ValueError, match=r"TreeOfThought.search must be one of"):
        make_strategy("tot", search="astar")
    with pytest.raises(ValueError, match=r"SelfConsistency.samples must be an integer >= 1"):
        make_strategy("sc", samples=0)


# --- chain of thought ----------------------------------------------------------------------------------

def test_cot_resamples_malformed_output_with_the_parse_error_as_feedback() -> None:
    script = ["I cannot plan this.", '{"subgoals": [{"skill": "fly", "args": {}}]}', f"Thought: ok.\n{GOOD}"]
    result, llm = run("cot", script, retries=2)
    assert result.valid and result.steps == steps(GOOD)
    assert result.calls == 3
    assert "could not be parsed" in llm.prompts[1][-1]["content"]
    assert "unknown skill 'fly'" in llm.prompts[2][-1]["content"]
    assert [entry["error"] is None for entry in result.trace] == [False, False, True]


def test_cot_never_returns_malformed_or_rejected_output_as_valid() -> None:
    result, _ = run("cot", ["no plan here"], retries=1)
    assert result.steps is None and not result.valid and result.calls == 2
    result, llm = run("cot", [INVALID], retries=1)
    assert result.steps == steps(INVALID) and not result.valid and not result.verdict.valid
    assert "was rejected" in llm.prompts[1][-1]["content"]


# --- self-consistency ----------------------------------------------------------------------------------

def test_sc_majority_picks_the_most_common_plan_over_a_higher_logprob_one() -> None:
    script = [(GOOD, -5.0), (OTHER_VALID, -0.1), (GOOD, -5.0), (OTHER_VALID, -0.1), (GOOD, -5.0)]
    result, _ = run("sc", script, samples=5, vote="majority")
    assert result.steps == steps(GOOD) and result.valid
    assert result.info["consensus"] == 0.6 and result.info["distinct_plans"] == 2


def test_sc_ties_are_broken_by_summed_logprob() -> None:
    script = [(GOOD, -5.0), (OTHER_VALID, -0.1), (GOOD, -5.0), (OTHER_VALID, -0.1)]
    result, _ = run("sc", script, samples=4, vote="majority")
    assert result.steps == steps(OTHER_VALID)


def test_sc_verifier_weighted_vote_ignores_an_invalid_majority() -> None:
    script = [INVALID, GOOD, INVALID, GOOD, INVALID, "garbage"]
    majority, _ = run("sc", script, samples=6, vote="majority")
    assert majority.steps == steps(INVALID) and not majority.valid
    weighted, _ = run("sc", script, samples=6, vote="verifier")
    assert weighted.steps == steps(GOOD) and weighted.valid
    assert weighted.info["parse_failures"] == 1
    assert weighted.info["consensus"] == pytest.approx(2 / 6, abs=1e-3)


def test_sc_uses_distinct_seeds_and_is_deterministic() -> None:
    script = [GOOD, OTHER_VALID, GOOD]
    first, _ = run("sc", script, samples=3)
    second, _ = run("sc", script, samples=3)
    assert first.trace == second.trace and first.steps == second.steps
    assert json.dumps(first.trace)  # JSON-ready

    seen = []

    class Recording(ScriptedLLM):
        def generate(self, prompt, n=1, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None,
                     response_schema=None):
            seen.append((seed, temperature, top_p))
            return super().generate(prompt, n)

    make_strategy("sc", samples=3).run(Recording(script), DOMAIN, PROBLEM, seed=7)
    assert [s for s, _, _ in seen] == [7, 8, 9] and all(t == 0.8 and p == 0.9 for _, t, p in seen)


# --- tree and graph of thoughts ------------------------------------------------------------------------

BACKTRACK_SCRIPT = {
    "": ["stack(blue, red); place_on_pad(red, green)", "place_on_pad(red, green); stack(blue, yellow)"],
    "planned so far: stack(blue, red)": ["place_on_pad(red, green)", "unstack(red, blue)"],
    "planned so far: place_on_pad(red, green)": ["stack(blue, red)"],
}


def test_tot_dfs_backtracks_out_of_a_rejected_branch() -> None:
    result, llm = run("tot", BACKTRACK_SCRIPT, search="dfs", beam=2, branching=2)
    assert result.valid and result.steps == steps(GOOD)
    events = [(e["event"], e.get("steps")) for e in result.trace if "event" in e]
    assert events == [("rejected", "stack(blue, red); place_on_pad(red, green)"),
                      ("rejected", "stack(blue, red); unstack(red, blue)"),
                      ("backtrack", "stack(blue, red)")]
    assert llm.calls == 3


def test_tot_bfs_finds_the_plan_on_the_same_script() -> None:
    result, _ = run("tot", BACKTRACK_SCRIPT, search="bfs", beam=2, branching=2)
    assert result.valid and result.steps == steps(GOOD)


MERGE_SCRIPT = {  # pick_up(red); place_on_pad(red, green) and place_on_pad(red, green) leave the same state
    "": ["pick_up(red); stack(blue, yellow)", "place_on_pad(red, green); stack(blue, yellow)"],
    "planned so far: pick_up(red)": ["place_on_pad(red, green); stack(blue, yellow)"],
    "planned so far: place_on_pad(red, green)": ["pick_up(blue); stack(blue, yellow)"],
    "planned so far: place_on_pad(red, green); pick_up(blue)": ["stack(blue, red)"],
}


def test_got_merges_duplicate_states_and_needs_fewer_calls_than_tot() -> None:
    tot, _ = run("tot", MERGE_SCRIPT, beam=2, branching=2)
    got, _ = run("got", MERGE_SCRIPT, beam=2, branching=2)
    solution = steps("place_on_pad(red, green); pick_up(blue); stack(blue, red)")
    assert tot.steps == got.steps == solution and tot.valid and got.valid
    assert got.calls < tot.calls
    assert ("merged", "pick_up(red); place_on_pad(red, green)") in [
        (e["event"], e.get("steps")) for e in got.trace if "event" in e]


def test_got_aggregates_a_prefix_of_one_branch_with_the_suffix_of_another() -> None:
    script = {"": ["pick_up(red); place_on_pad(red, green); pick_up(blue); stack(blue, red)",
                   "place_on_pad(red, green); stack(blue, yellow)"]}
    tot, _ = run("tot", script, beam=2, branching=2)
    got, _ = run("got", script, beam=2, branching=2)
    assert len(tot.steps) == 4 and tot.valid
    assert got.steps == steps("place_on_pad(red, green); pick_up(blue); stack(blue, red)") and got.valid
    assert any(e.get("event") == "aggregated" for e in got.trace)


# --- value-guided decoding -----------------------------------------------------------------------------

def test_value_guided_commits_the_best_step_and_ends_with_a_verified_plan() -> None:
    script = {"": [("pick_up(red); place_on_pad(red, yellow)", -1.0),
                   ("place_on_pad(red, green); stack(blue, yellow)", -20.0)],
              "planned so far: pick_up(red)": [("place_on_pad(red, green); stack(blue, red)", -1.0)]}
    result, llm = run("vgd", script, branching=2)
    assert result.valid and result.steps == steps("pick_up(red); place_on_pad(red, green); stack(blue, red)")
    assert [e["steps"] for e in result.trace if e.get("event") == "committed"] == ["pick_up(red)"]
    assert llm.calls == 2


# --- budgets -------------------------------------------------------------------------------------------

def test_call_budget_stops_self_consistency_with_a_vote_over_what_it_has() -> None:
    result, llm = run("sc", [GOOD], Budget(max_calls=2), samples=5)
    assert llm.calls == result.calls == 2 and "call budget" in result.stopped
    assert result.valid and result.info["samples"] == 2


def test_token_budget_stops_a_strategy() -> None:
    result, _ = run("sc", [GOOD], Budget(max_tokens=25), samples=5)
    assert result.calls == 3 and result.tokens == 30 and "token budget" in result.stopped


def test_time_budget_stops_a_strategy() -> None:
    def clock(llm):  # one second passes per LLM call
        return lambda: float(llm.calls)
    result, _ = run("cot", ["garbage"], Budget(max_seconds=2.5), clock=clock, retries=10)
    assert result.calls == 3 and "time budget" in result.stopped and result.steps is None


@pytest.mark.parametrize("name", ["tot", "got", "vgd"])
def test_search_under_budget_returns_the_best_plan_so_far(name: str) -> None:
    result, _ = run(name, BACKTRACK_SCRIPT, Budget(max_calls=1), branching=2)
    assert result.calls == 1 and "call budget" in result.stopped
    assert result.steps == steps(BACKTRACK_SCRIPT[""][0]) and not result.valid


@pytest.mark.parametrize("name", sorted({cls.name for cls in STRATEGIES.values()}))
def test_every_strategy_is_deterministic_and_never_valid_on_garbage(name: str) -> None:
    first, _ = run(name, ["no plan at all"], Budget(max_calls=6))
    second, _ = run(name, ["no plan at all"], Budget(max_calls=6))
    assert first.trace == second.trace
    assert first.steps is None and not first.valid and first.strategy == name
    good, _ = run(name, [GOOD], Budget(max_calls=6))
    assert good.valid and good.steps == steps(GOOD)


def test_self_evaluation_value_prefers_the_plan_the_llm_judges_right() -> None:
    class Judging(ScriptedLLM):  # answers the self-evaluation question: yes for GOOD, no otherwise
        def generate(self, prompt, n=1, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None,
                     response_schema=None):
            if prompt[-1]["content"] != SELF_EVAL_QUESTION:
                return super().generate(prompt, n)
            self.calls += 1
            answer = "Yes" if prompt[-2]["content"] == GOOD else "No"
            return [Completion(answer, (math.log(0.9),), "stop", 1)] * n

    llm = Judging({"": [OTHER_VALID, GOOD]})
    result = make_strategy("tot", branching=2, value="verifier+self_eval", votes=1).run(llm, DOMAIN, PROBLEM)
    assert result.steps == steps(GOOD)
    purposes = [e["purpose"] for e in result.trace if "call" in e]
    assert purposes == ["expand", "expand", "self_eval", "self_eval"]
