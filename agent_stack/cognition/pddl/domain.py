"""Any STRIPS PDDL domain as a planning `Domain` for the reasoning strategies, with unified-planning as verifier.

`PDDLProblem` parses domain + problem PDDL with `unified_planning.io.PDDLReader` and keeps the UP problem
and the raw text. `PDDLDomain` renders prompts (system: the domain's action schemas and the answer format;
user: domain name, objects, initial facts, goal facts, optional feedback), parses completions into
`GroundAction` steps such as `("pick-up", ("a",))`, and verifies plans by simulating them with UP's
`SequentialSimulator`: the first inapplicable step and its false preconditions, how many steps run, whether
the goal holds at the end, and the final state as a frozenset of true facts (`"(on a b)"`), so search
strategies can merge equal states.

The embedded planner LM is trained on exactly the user message (see `corpus.py`), so changing
`user_message` means regenerating the corpus and retraining.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

from agent_stack.cognition.llm.base import Messages
from agent_stack.cognition.plan import PlanParseError
from agent_stack.cognition.verifier import Verdict

SYSTEM = """You plan in the PDDL domain {domain}. Its actions (parameters: preconditions; add: facts made \
true; del: facts made false):
{actions}
A step runs only when all its preconditions hold in the current state. Think briefly, then write "Plan:" and \
one action per line as (action arg1 arg2), nothing after the plan. When the feedback lists actions planned so \
far, write only the remaining actions."""

FEEDBACK_PLANNED = "planned so far:"


def user_message(domain_name: str, objects_text: str, init_facts: Sequence[str], goal_facts: Sequence[str],
                 feedback: str = "") -> str:
    """The user message: what the embedded planner LM is trained on (corpus.py renders it the same way)."""
    lines = [f"Domain: {domain_name}", f"Objects: {objects_text}", f"Init: {' '.join(init_facts)}",
             f"Goal: {' '.join(goal_facts)}"]
    if feedback:
        lines.append(f"Feedback: {feedback}")
    return "\n".join(lines)


class GroundAction(NamedTuple):
    """One plan step: an action name and its object arguments; equal to the plain tuple ("stack", ("a", "b"))."""

    name: str
    args: tuple[str, ...]

    def pddl(self) -> str:
        return f"({' '.join((self.name, *self.args))})"


def _up():
    import unified_planning.shortcuts as up

    up.get_environment().credits_stream = None  # engines print credits on creation otherwise
    return up


def _term(node) -> str:
    if node.is_parameter_exp():
        return "?" + node.parameter().name
    if node.is_object_exp():
        return node.object().name
    if node.is_variable_exp():
        return "?" + node.variable().name
    return _expr(node)


def _expr(node) -> str:
    """A UP expression as PDDL text: `(on ?x ?y)`, `(not (clear b))`."""
    if node.is_fluent_exp():
        return f"({' '.join((node.fluent().name, *map(_term, node.args)))})"
    if node.is_not():
        return f"(not {_expr(node.arg(0))})"
    if node.is_and() or node.is_or():
        return f"({'and' if node.is_and() else 'or'} {' '.join(map(_expr, node.args))})"
    if node.is_equals():
        return f"(= {_term(node.arg(0))} {_term(node.arg(1))})"
    if node.is_bool_constant():
        return "true" if node.bool_constant_value() else "false"
    return str(node)


def _conjuncts(node) -> list:
    return [c for arg in node.args for c in _conjuncts(arg)] if node.is_and() else [node]


def _holds(node, state) -> bool | None:
    """Truth of a (negated) ground fact in a UP state; None for anything else."""
    if node.is_not():
        inner = _holds(node.arg(0), state)
        return None if inner is None else not inner
    if node.is_fluent_exp():
        value = state.get_value(node)
        return value.bool_constant_value() if value.is_bool_constant() else None
    return None


class PDDLProblem:
    """A PDDL problem with its domain, parsed by unified-planning; keeps the raw text."""

    def __init__(self, domain_pddl: str, problem_pddl: str) -> None:
        from unified_planning.io import PDDLReader

        _up()
        self.domain_pddl = domain_pddl
        self.problem_pddl = problem_pddl
        self.up_problem = PDDLReader().parse_problem_string(domain_pddl, problem_pddl)
        match = re.search(r"\(\s*domain\s+([^\s()]+)", domain_pddl, re.IGNORECASE)
        self.domain_name = match.group(1).lower() if match else "pddl"
        self.name = self.up_problem.name

    @classmethod
    def from_files(cls, domain_path: str | Path, problem_path: str | Path) -> PDDLProblem:
        return cls(Path(domain_path).read_text(), Path(problem_path).read_text())

    def __repr__(self) -> str:
        return f"PDDLProblem({self.domain_name}/{self.name}, {len(self.objects)} objects)"

    @cached_property
    def objects(self) -> dict[str, object]:
        return {o.name: o for o in self.up_problem.all_objects}

    @cached_property
    def simulator(self):
        return _up().SequentialSimulator(self.up_problem)

    @cached_property
    def _atoms(self) -> list[tuple[object, str]]:
        """Every ground boolean fluent with its PDDL text, in declaration order (fluent, then objects)."""
        atoms = [(f, _expr(f)) for f, v in self.up_problem.initial_values.items() if v.is_bool_constant()]
        order = {f.name: i for i, f in enumerate(self.up_problem.fluents)}
        rank = {name: i for i, name in enumerate(self.objects)}
        return sorted(atoms, key=lambda a: (order[a[0].fluent().name], [rank.get(_term(x), 0) for x in a[0].args]))

    def facts(self, state=None) -> frozenset[str]:
        """The true ground facts of a UP state (default: the initial state) as PDDL text."""
        state = self.simulator.get_initial_state() if state is None else state
        return frozenset(text for atom, text in self._atoms if state.get_value(atom).bool_constant_value())

    def sorted_facts(self, facts) -> list[str]:
        order = {text: i for i, (_, text) in enumerate(self._atoms)}
        return sorted(facts, key=lambda t: (order.get(t, len(order)), t))

    @cached_property
    def initial_facts(self) -> list[str]:
        return self.sorted_facts(self.facts())

    @cached_property
    def goal_facts(self) -> list[str]:
        return [_expr(c) for goal in self.up_problem.goals for c in _conjuncts(goal)]

    def objects_text(self) -> str:
        """`a b c` for untyped problems, `a b - block; t1 - truck` for typed ones."""
        by_type: dict[str, list[str]] = {}
        for obj in self.up_problem.all_objects:
            by_type.setdefault(str(obj.type), []).append(obj.name)
        if list(by_type) == ["object"]:
            return " ".join(by_type["object"])
        return "; ".join(f"{' '.join(names)} - {kind}" for kind, names in by_type.items())

    def solve(self, planner: str = "pyperplan") -> tuple[GroundAction, ...] | None:
        """A reference plan from a UP planner (default up-pyperplan, offline); None when it finds none."""
        up = _up()
        with up.OneshotPlanner(name=planner) as engine:
            result = engine.solve(self.up_problem)
        if result.plan is None:
            return None
        return tuple(GroundAction(a.action.name, tuple(_term(p) for p in a.actual_parameters))
                     for a in result.plan.actions)

    def up_plan(self, steps: Sequence):
        """Steps as a UP `SequentialPlan` (for `PlanValidator`)."""
        from unified_planning.plans import ActionInstance, SequentialPlan

        return SequentialPlan([ActionInstance(self.up_problem.action(name), [self.objects[a] for a in args])
                               for name, args in steps])


def action_schema(action) -> str:
    """One line per action: `stack ?x ?y: (holding ?x) (clear ?y); add (on ?x ?y) ...; del (holding ?x) ...`."""
    params = []
    for p in action.parameters:
        params.append(f"?{p.name}" if str(p.type) == "object" else f"?{p.name} - {p.type}")
    pre = " ".join(_expr(c) for pre in action.preconditions for c in _conjuncts(pre)) or "none"
    add, delete, other = [], [], []
    for effect in action.effects:
        if effect.is_conditional() or effect.is_forall() or not effect.value.is_bool_constant():
            other.append(str(effect))
        elif effect.value.bool_constant_value():
            add.append(_expr(effect.fluent))
        else:
            delete.append(_expr(effect.fluent))
    parts = [f"{' '.join([action.name, *params])}: {pre}", f"add {' '.join(add) or 'none'}",
             f"del {' '.join(delete) or 'none'}"] + ([f"other {'; '.join(other)}"] if other else [])
    return "; ".join(parts)


_NUMBERING = re.compile(r"^(?:[-*•>]+\s*)?(?:step\s*)?(?:\d+\s*[.):\-]?\s*)?")
_GROUP = re.compile(r"(?:([a-z][\w-]*)(\s*))?\(([^()]*)\)")
_WORD = re.compile(r"^[a-z][\w-]*$")
_PLAN_MARKER = re.compile(r"(?im)^[\s*#]*plan[\s*]*:")


class PDDLDomain:
    """The `Domain` protocol for a STRIPS PDDL domain; bound to one problem, `parse` also checks objects."""

    response_schema = None

    def __init__(self, problem: PDDLProblem) -> None:
        self.problem = problem
        self.name = problem.domain_name
        self._actions = {a.name.lower(): a for a in problem.up_problem.actions}
        self._arity = {name: len(a.parameters) for name, a in self._actions.items()}
        self._predicates = {f.name.lower() for f in problem.up_problem.fluents}
        self._max_arity = max(self._arity.values(), default=0)

    @classmethod
    def from_pddl(cls, domain_pddl: str, problem_pddl: str) -> tuple[PDDLDomain, PDDLProblem]:
        problem = PDDLProblem(domain_pddl, problem_pddl)
        return cls(problem), problem

    # prompts ------------------------------------------------------------------------------------------

    @cached_property
    def system_message(self) -> str:
        actions = "\n".join(action_schema(a) for a in self.problem.up_problem.actions)
        return SYSTEM.format(domain=self.name, actions=actions)

    @staticmethod
    def user_message(problem: PDDLProblem, feedback: str = "") -> str:
        return user_message(problem.domain_name, problem.objects_text(), problem.initial_facts,
                            problem.goal_facts, feedback)

    def messages(self, problem: PDDLProblem | None = None, feedback: str = "") -> Messages:
        problem = self.problem if problem is None else problem
        return [{"role": "system", "content": self.system_message},
                {"role": "user", "content": self.user_message(problem, feedback)}]

    def render(self, steps: Sequence) -> str:
        return " ".join(GroundAction(name, tuple(args)).pddl() for name, args in steps)

    def partial_feedback(self, steps: Sequence) -> str:
        return f"{FEEDBACK_PLANNED} {self.render(steps)}" if steps else ""

    # parsing ------------------------------------------------------------------------------------------

    def _action_name(self, word: str) -> str | None:
        word = word.lower()
        for candidate in (word, word.replace("_", "-"), word.replace("-", "_")):
            if candidate in self._actions:
                return candidate
        return None

    def _step(self, name: str, args: list[str], source: str) -> GroundAction:
        action = self._action_name(name)
        if action is None:
            raise PlanParseError(f"unknown action {name!r} in {source!r}; actions are {sorted(self._actions)}")
        if len(args) != self._arity[action]:
            params = " ".join("?" + p.name for p in self._actions[action].parameters)
            raise PlanParseError(f"{action} takes {self._arity[action]} argument(s) ({params}), got {source!r}")
        objects = self.problem.objects
        unknown = [a for a in args if a not in objects]
        if unknown:
            raise PlanParseError(f"unknown object {unknown[0]!r} in {source!r}; objects are {' '.join(objects)}")
        return GroundAction(action, tuple(args))

    def _parse_line(self, line: str) -> list[GroundAction]:
        groups = list(_GROUP.finditer(line))
        if not groups:
            words = [w for w in re.split(r"[\s,]+", line.rstrip(".;")) if w]
            if words and self._action_name(words[0]):
                return [self._step(words[0], words[1:], line)]
            if words and all(_WORD.match(w) for w in words) and len(words) <= self._max_arity + 1 \
                    and not line.endswith((".", ":")):
                return [self._step(words[0], words[1:], line)]  # looks like a bare action: unknown name
            return []  # prose
        steps: list[GroundAction] = []
        for group in groups:
            before, gap, inner = group.group(1), group.group(2), group.group(3)
            tokens = [t for t in re.split(r"[\s,]+", inner.strip()) if t]
            if tokens and self._action_name(tokens[0]):
                steps.append(self._step(tokens[0], tokens[1:], group.group(0).strip()))
            elif before and self._action_name(before):
                steps.append(self._step(before, tokens, group.group(0).strip()))
            elif tokens and tokens[0] in self._predicates:
                continue  # a fact quoted in the reasoning
            elif before and not gap:
                steps.append(self._step(before, tokens, group.group(0)))  # `move(a, b)`: unknown action
            elif tokens:
                steps.append(self._step(tokens[0], tokens[1:], group.group(0)))
        return steps

    def parse(self, text: str) -> tuple[GroundAction, ...]:
        """Actions in a completion: after the last `Plan:` if there is one; one `(action args)` per line, also
        `1. pick-up a`, `stack(a, b)`, code fences, any case. Unknown action, arity or object: PlanParseError."""
        if not isinstance(text, str) or not text.strip():
            raise PlanParseError("empty output")
        markers = list(_PLAN_MARKER.finditer(text))
        body = text[markers[-1].end():] if markers else text
        steps: list[GroundAction] = []
        for raw in body.lower().splitlines():
            line = raw.strip().strip("`").strip()
            if not line or line.startswith(("thought", "feedback")):
                continue
            steps.extend(self._parse_line(_NUMBERING.sub("", line, count=1).strip()))
        if not steps:
            raise PlanParseError("no actions such as (action arg1 arg2) in the output")
        return tuple(steps)

    # verification -------------------------------------------------------------------------------------

    def verify(self, problem: PDDLProblem | None, steps: Sequence) -> Verdict:
        """Simulate `steps` from the initial state with UP's SequentialSimulator; valid = every step runs and
        the goal holds at the end."""
        problem = self.problem if problem is None else problem
        simulator = problem.simulator
        state = simulator.get_initial_state()
        for index, step in enumerate(steps):
            name, args = step
            reason = self._check_step(problem, name, args)
            if reason is None:
                action = problem.up_problem.action(name)
                params = tuple(problem.objects[a] for a in args)
                following = simulator.apply(state, action, params)
                if following is None:
                    reason = self._unsatisfied(simulator, state, action, params)
            if reason is not None:
                text = GroundAction(name, tuple(args)).pddl()
                return Verdict(False, (f"{text}: {reason}",), index, index, False, problem.facts(state))
            state = following
        unmet = [_expr(c) for g in simulator.get_unsatisfied_goals(state) for c in _conjuncts(g)
                 if _holds(c, state) is not True]
        facts = problem.facts(state)
        if unmet:
            reason = ("the plan is empty; " if not steps else "") + f"goal not reached: {' '.join(unmet)} false"
            return Verdict(False, (reason,), None, len(steps), False, facts)
        return Verdict(True, (), None, len(steps), True, facts)

    @staticmethod
    def _check_step(problem: PDDLProblem, name, args) -> str | None:
        try:
            action = problem.up_problem.action(str(name))
        except Exception:  # noqa: BLE001 - UP raises its own error type for unknown names
            return f"unknown action {name!r}"
        if len(args) != len(action.parameters):
            return f"{name} takes {len(action.parameters)} argument(s), got {len(args)}"
        for arg, param in zip(args, action.parameters):
            obj = problem.objects.get(arg)
            if obj is None:
                return f"unknown object {arg!r}"
            if not param.type.is_compatible(obj.type):
                return f"{arg} is a {obj.type}, ?{param.name} must be a {param.type}"
        return None

    @staticmethod
    def _unsatisfied(simulator, state, action, params) -> str:
        conditions, _ = simulator.get_unsatisfied_conditions(state, action, params)
        false = [_expr(c) for cond in conditions for c in _conjuncts(cond) if _holds(c, state) is not True]
        return f"precondition {' '.join(false)} false" if false else "not applicable"
