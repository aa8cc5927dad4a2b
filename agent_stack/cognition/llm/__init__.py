"""LLM backends behind one protocol (`base.LLM`): openai-compatible HTTP, local Hugging Face, embedded."""

from agent_stack.cognition.llm.base import LLM, Completion, LLMError, Messages, ScoringUnsupported, messages_of

__all__ = ["LLM", "Completion", "LLMError", "Messages", "ScoringUnsupported", "messages_of"]
