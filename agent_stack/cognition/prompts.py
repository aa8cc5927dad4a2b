"""The planner prompt: skill library and output format (system), scene, feedback and instruction (user).

Every backend gets these messages; the embedded planner LM is trained on exactly this user message (its
chat template drops the system message, which it has learned implicitly), so prompt changes retrain it.
"""

from __future__ import annotations

from agent_stack.cognition.llm.base import Messages
from agent_stack.cognition.skills import skill_library_text

SYSTEM = """You plan for a robot arm at a table with coloured blocks, coloured pads and a bin.
Turn the instruction into an ordered list of subgoals, each one skill from this library:
{skills}
Colours are red, green, blue and yellow. Think briefly about the scene, then answer with JSON only:
{{"subgoals": [{{"skill": "<name>", "args": {{"color": "<colour>", "target": "<colour>"}}}}]}}
Give only the arguments the skill takes. A step whose preconditions fail is rejected."""

THOUGHT_PREFIX = "Thought:"
PLAN_PREFIX = "Plan:"


def user_message(instruction: str, scene_text: str, feedback: str = "") -> str:
    """Scene, then what happened so far (Inner Monologue feedback after a failure), then the instruction."""
    parts = [f"Scene: {scene_text}"]
    if feedback:
        parts.append(f"Feedback: {feedback}")
    parts.append(f"Instruction: {instruction}")
    return "\n".join(parts)


def planner_messages(instruction: str, scene_text: str, feedback: str = "") -> Messages:
    return [{"role": "system", "content": SYSTEM.format(skills=skill_library_text())},
            {"role": "user", "content": user_message(instruction, scene_text, feedback)}]
