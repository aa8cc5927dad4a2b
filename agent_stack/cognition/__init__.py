"""Cognition: the LLM planner that turns an instruction into a verified plan of skills (see docs/COGNITION.md)."""
