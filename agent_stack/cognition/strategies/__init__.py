"""Reasoning strategies over any `Domain`: chain of thought, self-consistency, tree / graph of thoughts and
value-guided decoding, found by name through a registry (`make_strategy("tot", beam=2)`).

A plugin adds a strategy by decorating its dataclass with `register("name")` and importing its module.
"""

from agent_stack.cognition.strategies.base import (
    STRATEGIES,
    Budget,
    BudgetExhausted,
    Session,
    Strategy,
    StrategyResult,
    make_strategy,
    option_names,
    register,
)
from agent_stack.cognition.strategies.chain_of_thought import ChainOfThought
from agent_stack.cognition.strategies.graph_of_thought import GraphOfThought
from agent_stack.cognition.strategies.self_consistency import SelfConsistency
from agent_stack.cognition.strategies.tree_of_thought import TreeOfThought
from agent_stack.cognition.strategies.value_guided import ValueGuided

__all__ = ["STRATEGIES", "Budget", "BudgetExhausted", "ChainOfThought", "GraphOfThought", "SelfConsistency",
           "Session", "Strategy", "StrategyResult", "TreeOfThought", "ValueGuided", "make_strategy",
           "option_names", "register"]
