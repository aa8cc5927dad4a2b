"""A scripted LLM: a test double for the strategies' vote and search logic only (not a model of any LLM).

It answers from a script keyed by the prompt's feedback line (the partial plan being continued, "" for
none), serving each key's completions in order and cycling; a list script answers every prompt in order.
An entry is a text or (text, summed logprob). Every completion reports 10 tokens.
"""

from __future__ import annotations

from collections import defaultdict

from agent_stack.cognition.llm.base import Completion, ScoringUnsupported, messages_of
from agent_stack.cognition.scene import TABLE, SymbolicScene

SCENE = SymbolicScene({"red": TABLE, "green": TABLE, "blue": TABLE}, frozenset({"red", "green"}))
INSTRUCTION = "put the red block on the green pad, then the blue one on the red one"
TOKENS = 10


def feedback_of(prompt) -> str:
    lines = messages_of(prompt)[-1]["content"].splitlines()
    return next((line.removeprefix("Feedback: ") for line in lines if line.startswith("Feedback: ")), "")


class ScriptedLLM:
    name = "scripted"

    def __init__(self, script: dict[str, list] | list, default: str = "I am not sure.") -> None:
        self.script, self.default = script, default
        self.served: dict[str, int] = defaultdict(int)
        self.calls = 0
        self.prompts: list = []

    def generate(self, prompt, n=1, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None,
                 response_schema=None) -> list[Completion]:
        self.calls += 1
        self.prompts.append(prompt)
        key = "" if isinstance(self.script, list) else feedback_of(prompt)
        entries = self.script if isinstance(self.script, list) else self.script.get(key, [self.default])
        completions = []
        for _ in range(n):
            entry = entries[self.served[key] % len(entries)]
            self.served[key] += 1
            text, logprob = entry if isinstance(entry, tuple) else (entry, None)
            completions.append(Completion(text, None if logprob is None else (logprob,), "stop", TOKENS))
        return completions

    def score(self, prompt, continuation: str) -> float:
        raise ScoringUnsupported("scripted completions have no model to score with")
