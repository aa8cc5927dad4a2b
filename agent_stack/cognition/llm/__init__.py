"""LLM backends behind one protocol (`base.LLM`): openai-compatible HTTP, local Hugging Face, embedded.

`make_llm(spec)` builds one from a string; the backend classes are imported on first use, so importing
this package costs neither torch nor the openai client.
"""

from importlib import import_module
from typing import Any

from agent_stack.cognition.llm.base import (
    LLM,
    Completion,
    LLMError,
    Messages,
    ScoringUnsupported,
    messages_of,
)
from agent_stack.cognition.llm.factory import make_llm

_LAZY = {"HFBackend": "hf_backend", "OpenAIBackend": "openai_backend"}

__all__ = ["LLM", "Completion", "HFBackend", "LLMError", "Messages", "OpenAIBackend", "ScoringUnsupported",
           "make_llm", "messages_of"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
