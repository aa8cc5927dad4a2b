"""PDDL mode of the planner: any STRIPS PDDL domain, unified-planning as verifier (see domain.py)."""

from agent_stack.cognition.pddl.domain import GroundAction, PDDLDomain, PDDLProblem

__all__ = ["GroundAction", "PDDLDomain", "PDDLProblem"]
