"""One string picks the planner's LLM, so configs, launch files and the CLI name a backend the same way.

    embedded                       the planner LM shipped in agent_stack/cognition/planner_lm/weights/
    hf:/path/to/model_dir          any local Hugging Face causal LM directory
    openai:http://host:port/v1     an OpenAI-compatible server; `#model` picks a model, e.g.
                                   openai:http://localhost:8000/v1#llama3

Backends are imported on use: naming an HTTP server must not cost a torch import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent_stack.cognition.llm.base import LLM, LLMError

EMBEDDED_WEIGHTS = Path(__file__).resolve().parents[1] / "planner_lm" / "weights"
"""The embedded planner LM: a Hugging Face directory written by `agent-stack train planner-lm`."""

SPEC_FORMS = "'embedded', 'hf:/path/to/model_dir', 'openai:http://host:port/v1[#model]'"


def make_llm(spec: str, **kwargs: Any) -> LLM:
    """The backend `spec` names; `kwargs` go to its constructor (e.g. device for hf, timeout for openai)."""
    kind, _, rest = spec.partition(":")
    if spec == "embedded":
        if not (EMBEDDED_WEIGHTS / "config.json").is_file():
            raise LLMError(f"embedded planner LM weights are missing in {EMBEDDED_WEIGHTS}; "
                           "train with `agent-stack train planner-lm`")
        from agent_stack.cognition.llm.hf_backend import HFBackend

        return HFBackend(EMBEDDED_WEIGHTS, **{"name": "embedded", **kwargs})
    if kind == "hf" and rest:
        from agent_stack.cognition.llm.hf_backend import HFBackend

        return HFBackend(rest, **kwargs)
    if kind == "openai" and rest:
        from agent_stack.cognition.llm.openai_backend import OpenAIBackend

        url, _, model = rest.partition("#")
        return OpenAIBackend(url, **{"model": model or None, **kwargs})
    raise ValueError(f"unknown LLM spec {spec!r}; use one of {SPEC_FORMS}")
