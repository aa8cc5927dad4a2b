"""Plans: ordered subgoals, each a skill with arguments and the instruction the policy layer executes.

LLM output reaches the robot only through `parse_plan`: lenient about the wrapping (prose around the JSON,
code fences, trailing commas, single quotes, a bare list, or one `skill(arg, ...)` call per line) and
strict about the content (known skills, argument names and colours). Anything else is a `PlanParseError`
with the reason, which strategies feed back when they resample.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from agent_stack.cognition.skills import SKILLS

PLAN_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "subgoals": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object",
                "properties": {"skill": {"type": "string", "enum": sorted(SKILLS)},
                               "args": {"type": "object", "additionalProperties": {"type": "string"}},
                               "instruction": {"type": "string"}},
                "required": ["skill", "args"],
            },
        },
    },
    "required": ["subgoals"],
}
"""JSON schema of a plan, sent as the response format to backends that offer structured output."""


class PlanParseError(ValueError):
    """LLM output that is not a well-formed plan; the message says why."""


@dataclass(frozen=True)
class Subgoal:
    skill: str
    args: tuple[tuple[str, str], ...]
    """(name, colour) pairs in the skill's parameter order; hashable, so plans can be voted on."""

    @classmethod
    def make(cls, skill: str, **args: str) -> Subgoal:
        return cls.from_dict({"skill": skill, "args": args})

    @property
    def arguments(self) -> dict[str, str]:
        return dict(self.args)

    @property
    def instruction(self) -> str:
        """The language instruction for the VLA / expert, from the skill's template."""
        return SKILLS[self.skill].instruction(self.arguments)

    def to_dict(self) -> dict:
        return {"skill": self.skill, "args": self.arguments, "instruction": self.instruction}

    def call(self) -> str:
        """Compact form, `stack(blue, red)`."""
        return f"{self.skill}({', '.join(v for _, v in self.args)})"

    @classmethod
    def from_dict(cls, data) -> Subgoal:
        if not isinstance(data, dict) or "skill" not in data:
            raise PlanParseError(f"a subgoal must be an object with 'skill' and 'args', got {data!r}")
        name = str(data["skill"]).strip()
        skill = SKILLS.get(name)
        if skill is None:
            raise PlanParseError(f"unknown skill {name!r}; skills are {sorted(SKILLS)}")
        raw = data.get("args", {})
        if isinstance(raw, (list, tuple)):  # positional: ["red", "green"]
            if len(raw) != len(skill.params):
                raise PlanParseError(f"{name} takes {len(skill.params)} argument(s) {list(skill.params)}, got {raw!r}")
            raw = dict(zip(skill.params, raw))
        if not isinstance(raw, dict):
            raise PlanParseError(f"{name}: 'args' must be an object, got {raw!r}")
        args = {str(k).strip(): str(v).strip().lower() for k, v in raw.items()}
        reasons = skill.check_args(args)
        if reasons:
            raise PlanParseError("; ".join(reasons))
        return cls(name, tuple((p, args[p]) for p in skill.params))


@dataclass(frozen=True)
class Plan:
    subgoals: tuple[Subgoal, ...]
    thought: str = field(default="", compare=False)
    """The reasoning text that came with the plan (chain of thought), kept for the trace."""

    def to_dict(self) -> dict:
        return {"subgoals": [s.to_dict() for s in self.subgoals]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def calls(self) -> str:
        return "; ".join(s.call() for s in self.subgoals)

    def __len__(self) -> int:
        return len(self.subgoals)


_CALL = re.compile(r"\b([a-z_]+)\s*\(\s*([a-z_=,\s\"']*)\)")


def parse_plan(text: str) -> Plan:
    """The plan in an LLM completion (see module docstring); PlanParseError says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise PlanParseError("empty output")
    thought, data = _extract_json(text)
    if data is not None:
        items = data.get("subgoals", data.get("plan")) if isinstance(data, dict) else data
        if not isinstance(items, list) or not items:
            raise PlanParseError("the JSON has no non-empty 'subgoals' list")
        return Plan(tuple(Subgoal.from_dict(item) for item in items), thought=thought)
    calls = [(m.group(1), m.group(2)) for m in _CALL.finditer(text) if m.group(1) in SKILLS]
    if not calls:
        raise PlanParseError("no JSON plan and no skill call such as stack(blue, red) in the output")
    subgoals = []
    for name, raw in calls:
        parts = [p.strip().strip("\"'") for p in raw.split(",") if p.strip()]
        if all("=" in p for p in parts) and parts:
            args = dict(tuple(x.strip().strip("\"'") for x in p.split("=", 1)) for p in parts)
        else:
            args = parts
        subgoals.append(Subgoal.from_dict({"skill": name, "args": args}))
    first = _CALL.search(text)
    return Plan(tuple(subgoals), thought=text[:first.start()].strip() if first else "")


def _extract_json(text: str):
    """(text before the JSON, parsed JSON) for the first JSON object or list that parses after light
    repair, or ("", None) when there is none."""
    cleaned = re.sub(r"```(?:json)?", "", text)
    for start, char in ((i, c) for i, c in enumerate(cleaned) if c in "{["):
        end = _matching_bracket(cleaned, start)
        if end is None:
            continue
        candidate = cleaned[start:end + 1]
        for repaired in (candidate, _repair(candidate)):
            try:
                return cleaned[:start].strip(), json.loads(repaired)
            except json.JSONDecodeError:
                continue
    return "", None


def _matching_bracket(text: str, start: int) -> int | None:
    pairs, stack, in_string, quote = {"{": "}", "[": "]"}, [], False, ""
    for i in range(start, len(text)):
        char = text[i]
        if in_string:
            if char == quote and text[i - 1] != "\\":
                in_string = False
        elif char in "\"'":
            in_string, quote = True, char
        elif char in pairs:
            stack.append(pairs[char])
        elif char in "}]":
            if not stack or stack.pop() != char:
                return None
            if not stack:
                return i
    return None


def _repair(candidate: str) -> str:
    repaired = re.sub(r",\s*([}\]])", r"\1", candidate)          # trailing commas
    repaired = re.sub(r"'([^'\"]*)'", r'"\1"', repaired)           # single-quoted strings
    return re.sub(r"([{,]\s*)([A-Za-z_]+)\s*:", r'\1"\2":', repaired)  # bare keys
