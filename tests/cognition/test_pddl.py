"""PDDL mode: parse/verify any STRIPS domain with unified-planning, the Blocksworld generator and corpus."""

from __future__ import annotations

import random

import pytest

pytest.importorskip("unified_planning")

from agent_stack.cognition.domain import Domain
from agent_stack.cognition.pddl import PDDLDomain, PDDLProblem, corpus
from agent_stack.cognition.pddl import blocksworld as bw
from agent_stack.cognition.plan import PlanParseError

PROBLEM = """(define (problem three) (:domain blocksworld)
  (:objects a b c)
  (:init (on a b) (ontable b) (ontable c) (clear a) (clear c) (handempty))
  (:goal (and (on b c) (on a b))))"""

SOLUTION = [("unstack", ("a", "b")), ("put-down", ("a",)), ("pick-up", ("b",)), ("stack", ("b", "c")),
            ("pick-up", ("a",)), ("stack", ("a", "b"))]

GRIPPER = """(define (domain gripper-typed)
  (:requirements :strips :typing)
  (:types room ball gripper)
  (:predicates (at-robby ?r - room) (at ?b - ball ?r - room) (free ?g - gripper) (carry ?b - ball ?g - gripper))
  (:action move :parameters (?from ?to - room)
    :precondition (at-robby ?from)
    :effect (and (at-robby ?to) (not (at-robby ?from))))
  (:action pick :parameters (?b - ball ?r - room ?g - gripper)
    :precondition (and (at ?b ?r) (at-robby ?r) (free ?g))
    :effect (and (carry ?b ?g) (not (at ?b ?r)) (not (free ?g))))
  (:action drop :parameters (?b - ball ?r - room ?g - gripper)
    :precondition (and (carry ?b ?g) (at-robby ?r))
    :effect (and (at ?b ?r) (free ?g) (not (carry ?b ?g)))))"""

GRIPPER_PROBLEM = """(define (problem two-balls) (:domain gripper-typed)
  (:objects rooma roomb - room ball1 ball2 - ball left right - gripper)
  (:init (at-robby rooma) (at ball1 rooma) (at ball2 rooma) (free left) (free right))
  (:goal (and (at ball1 roomb) (at ball2 roomb))))"""


@pytest.fixture(scope="module")
def three():
    problem = PDDLProblem(bw.DOMAIN_PDDL, PROBLEM)
    return PDDLDomain(problem), problem


@pytest.fixture(scope="module")
def gripper():
    problem = PDDLProblem(GRIPPER, GRIPPER_PROBLEM)
    return PDDLDomain(problem), problem


def _validator_says_valid(problem: PDDLProblem, steps) -> bool:
    import unified_planning.shortcuts as up
    from unified_planning.engines import ValidationResultStatus

    with up.PlanValidator(problem_kind=problem.up_problem.kind, plan_kind=up.PlanKind.SEQUENTIAL_PLAN) as validator:
        return validator.validate(problem.up_problem, problem.up_plan(steps)).status == ValidationResultStatus.VALID


def test_domain_protocol_and_messages(three):
    domain, problem = three
    assert isinstance(domain, Domain) and domain.name == "blocksworld" and domain.response_schema is None
    system, user = domain.messages(problem)
    for schema in ("pick-up ?x:", "put-down ?x:", "stack ?x ?y:", "unstack ?x ?y:", "(holding ?x)"):
        assert schema in system["content"]
    assert user["content"] == ("Domain: blocksworld\nObjects: a b c\n"
                               "Init: (on a b) (ontable b) (ontable c) (clear a) (clear c) (handempty)\n"
                               "Goal: (on b c) (on a b)")
    feedback = domain.partial_feedback(SOLUTION[:2])
    assert feedback == "planned so far: (unstack a b) (put-down a)"
    assert domain.messages(problem, feedback)[-1]["content"].endswith("\nFeedback: " + feedback)
    assert domain.partial_feedback([]) == ""


def test_parse_is_lenient_about_wrapping(three):
    domain, _ = three
    text = ("Thought: (on a b) is in the way.\nPlan:\n```\n1. (Unstack A B)\n2) put-down a\n- pick_up(b)\n"
            "Step 4: (stack b c)\n(pick-up a) (stack a b)\n```\nThis reaches the goal.")
    assert domain.parse(text) == tuple(SOLUTION)
    assert domain.parse("(unstack a b)\n(put-down a)")[1] == ("put-down", ("a",))
    steps = domain.parse("Plan: (unstack a b)")
    assert hash(steps) and steps[0].name == "unstack" and steps[0].args == ("a", "b")


@pytest.mark.parametrize("text, reason", [
    ("Plan:\n(fly a b)", "unknown action 'fly'"),
    ("Plan:\n(stack a)", "stack takes 2 argument"),
    ("Plan:\n(pick-up z)", "unknown object 'z'"),
    ("Plan:\nmove a b", "unknown action 'move'"),
    ("I cannot solve this.", "no actions"),
    ("", "empty output"),
])
def test_parse_errors_say_why(three, text, reason):
    domain, _ = three
    with pytest.raises(PlanParseError, match=reason):
        domain.parse(text)


def test_verify_valid_inapplicable_and_goal_not_reached(three):
    domain, problem = three
    verdict = domain.verify(problem, SOLUTION)
    assert verdict.valid and verdict.goal_reached and verdict.executable_steps == 6
    assert {"(on a b)", "(on b c)", "(ontable c)", "(clear a)", "(handempty)"} == verdict.final_state

    bad = domain.verify(problem, [("pick-up", ("b",))] + SOLUTION)
    assert not bad.valid and bad.failed_step == 0 and bad.executable_steps == 0
    assert "(clear b)" in bad.reasons[0] and "(handempty)" not in bad.reasons[0]

    bad = domain.verify(problem, SOLUTION[:2] + [("stack", ("a", "b"))])
    assert bad.failed_step == 2 and "(holding a)" in bad.reasons[0]

    short = domain.verify(problem, SOLUTION[:4])
    assert not short.valid and short.failed_step is None and short.goal_reached is False
    assert short.executable_steps == 4 and "(on a b)" in short.reasons[0]
    assert "(holding a)" not in short.final_state and "(on b c)" in short.final_state

    assert not domain.verify(problem, []).valid
    assert "unknown object" in domain.verify(problem, [("pick-up", ("z",))]).reasons[0]
    assert "unknown action" in domain.verify(problem, [("fly", ("a",))]).reasons[0]


def test_equal_states_compare_equal(three):
    domain, problem = three
    detour = [("unstack", ("a", "b")), ("put-down", ("a",)), ("pick-up", ("a",)), ("put-down", ("a",))]
    assert domain.verify(problem, detour).final_state == domain.verify(problem, SOLUTION[:2]).final_state


def test_simulator_agrees_with_plan_validator_on_random_problems():
    rng = random.Random(3)
    for size in (3, 4, 5, 6):
        problem = PDDLProblem(bw.DOMAIN_PDDL, bw.random_problem(size, rng))
        domain = PDDLDomain(problem)
        plan = problem.solve()
        assert plan, "pyperplan finds a plan"
        broken = list(plan)
        del broken[rng.randrange(len(broken))]
        for steps in (plan, plan[:-1], broken):
            assert domain.verify(problem, steps).valid == _validator_says_valid(problem, steps)
        assert domain.verify(problem, plan).valid


def test_generator_is_seeded_and_goals_are_open():
    first = bw.problems(2, sizes=(3, 5, 7), seed=1)
    assert first == bw.problems(2, sizes=(3, 5, 7), seed=1) != bw.problems(2, sizes=(3, 5, 7), seed=2)
    assert [size for size, _ in first] == [3, 3, 5, 5, 7, 7]
    for size, text in first:
        problem = PDDLProblem(bw.DOMAIN_PDDL, text)
        assert len(problem.objects) == size
        verdict = PDDLDomain(problem).verify(problem, [])
        assert not verdict.goal_reached  # the goal never holds at the start
        user = PDDLDomain(problem).messages(problem)[-1]["content"]
        assert all(name in user for name in problem.objects) and all(g in user for g in problem.goal_facts)


def test_corpus_is_deterministic_and_every_plan_validates():
    examples = corpus.blocksworld_examples(24, seed=7)
    assert examples == corpus.blocksworld_examples(24, seed=7) != corpus.blocksworld_examples(24, seed=8)
    assert sum("Feedback: planned so far:" in prompt for prompt, _ in examples) == 12
    for prompt, completion in examples[:12]:
        assert completion.startswith("Thought: unmet goals ") and "\nPlan:\n(" in completion
        assert completion.endswith(")") and prompt.startswith("Domain: blocksworld\nObjects: ")


def test_corpus_prompts_match_the_domain_and_plans_are_optimal():
    rng = random.Random(11)
    for _ in range(6):
        blocks = bw.block_names(rng.choice((3, 4, 5)))
        init, goal = bw.random_towers(blocks, rng), bw.random_towers(blocks, rng)
        if not bw.goal_facts(goal):
            continue
        task = corpus.blocksworld_task(init, goal)
        problem = PDDLProblem(bw.DOMAIN_PDDL, bw.problem_pddl("p", init, goal))
        domain = PDDLDomain(problem)
        plan = corpus.bfs_plan(task)
        feedback = domain.partial_feedback(plan[:1])
        assert task.prompt(feedback) == domain.messages(problem, feedback)[-1]["content"]
        assert domain.verify(problem, plan).valid
        assert len(plan) <= len(problem.solve())
        # each corpus completion, parsed back and appended to its prefix, is a valid plan
        pair = corpus.example(task, random.Random(0), partial=True)
        prefix = domain.parse(pair[0].split("Feedback: ")[1])
        assert domain.verify(problem, prefix + domain.parse(pair[1])).valid


def test_any_strips_domain_typed_gripper(gripper):
    domain, problem = gripper
    assert domain.name == "gripper-typed"
    system, user = domain.messages(problem)
    assert "pick ?b - ball ?r - room ?g - gripper:" in system["content"]
    assert "Objects: rooma roomb - room; ball1 ball2 - ball; left right - gripper" in user["content"]
    assert "Goal: (at ball1 roomb) (at ball2 roomb)" in user["content"]
    plan = domain.parse("Plan:\n(pick ball1 rooma left)\n(pick ball2 rooma right)\n(move rooma roomb)\n"
                        "(drop ball1 roomb left)\n(drop ball2 roomb right)")
    assert domain.verify(problem, plan).valid and _validator_says_valid(problem, plan)
    bad = domain.verify(problem, plan[:2] + plan[3:])
    assert bad.failed_step == 2 and "(at-robby roomb)" in bad.reasons[0]
    assert "must be a room" in domain.verify(problem, [("move", ("ball1", "roomb"))]).reasons[0]
    reference = problem.solve()
    assert domain.verify(problem, reference).valid
    shortest = corpus.bfs_plan(corpus.strips_task(problem))
    assert len(shortest) == 5 and domain.verify(problem, shortest).valid


class _NoisyOracle:
    """A stub LLM for the benchmark's plumbing: answers the optimal plan (or the rest of it after the
    feedback's prefix), dropping one step in some answers, so strategies see both valid and invalid plans."""

    name = "noisy-oracle"

    def __init__(self, problems) -> None:
        self.tasks = {PDDLDomain.user_message(p): (d, corpus.strips_task(p)) for _, p, d in problems}

    def generate(self, prompt, n=1, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None,
                 response_schema=None):
        from agent_stack.cognition.llm.base import Completion

        user = prompt[-1]["content"]
        head, _, feedback = user.partition("\nFeedback: ")
        domain, task = self.tasks[head]
        prefix = domain.parse(feedback) if feedback.startswith("planned so far:") else ()
        state = task.run(prefix)
        rest = list(corpus.bfs_plan(task, state) or ()) if state is not None else []
        out = []
        for i in range(n):
            steps = list(rest)
            if len(steps) > 1 and random.Random(f"{user}-{seed}-{i}").random() < 0.5:
                del steps[0]
            out.append(Completion(corpus.completion(task, state or task.init, steps), tokens=5 * len(steps) + 5))
        return out

    def score(self, prompt, continuation):
        from agent_stack.cognition.llm.base import ScoringUnsupported

        raise ScoringUnsupported("stub")


def test_benchmark_runs_end_to_end_with_a_stub_llm(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    pytest.importorskip("agent_stack.cognition.strategies")
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "pddl_blocksworld.py"
    spec = importlib.util.spec_from_file_location("pddl_blocksworld_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    problems = bench.load_problems(2, [3, 4], seed=0)
    out = tmp_path / "bw.json"
    assert bench.main(["--per-size", "2", "--sizes", "3,4", "--calls", "3", "--out", str(out)],
                      llm=_NoisyOracle(problems)) == 0
    results = json.loads(out.read_text())
    summary = results["summary"]
    assert set(summary) == {"pyperplan (solver)", "chain_of_thought", "self_consistency", "tree_of_thought"}
    assert summary["pyperplan (solver)"]["all"]["valid_rate"] == 1.0
    for name in bench.STRATEGIES:
        assert summary[name]["all"]["problems"] == 4 and summary[name]["all"]["errors"] == 0
        assert 1 <= summary[name]["all"]["mean_calls"] <= 3
        assert summary[name]["all"]["valid_rate"] > 0
