"""Blocksworld, the classic 4-operator STRIPS domain, and a seeded generator of random problems.

One arm, blocks on a table: pick-up / put-down a block from / to the table, stack / unstack a block on /
from another. A problem is a random arrangement of towers and a random goal arrangement (IPC style: the
goal lists only `on` facts, and is never already true in the initial state).
"""

from __future__ import annotations

import itertools
import random
import string

DOMAIN_NAME = "blocksworld"

DOMAIN_PDDL = """(define (domain blocksworld)
  (:requirements :strips)
  (:predicates (on ?x ?y) (ontable ?x) (clear ?x) (handempty) (holding ?x))
  (:action pick-up
    :parameters (?x)
    :precondition (and (clear ?x) (ontable ?x) (handempty))
    :effect (and (not (ontable ?x)) (not (clear ?x)) (not (handempty)) (holding ?x)))
  (:action put-down
    :parameters (?x)
    :precondition (holding ?x)
    :effect (and (not (holding ?x)) (clear ?x) (handempty) (ontable ?x)))
  (:action stack
    :parameters (?x ?y)
    :precondition (and (holding ?x) (clear ?y))
    :effect (and (not (holding ?x)) (not (clear ?y)) (clear ?x) (handempty) (on ?x ?y)))
  (:action unstack
    :parameters (?x ?y)
    :precondition (and (on ?x ?y) (clear ?x) (handempty))
    :effect (and (holding ?x) (clear ?y) (not (clear ?x)) (not (handempty)) (not (on ?x ?y)))))
"""

Towers = list[list[str]]
"""Each tower bottom to top."""


def block_names(n_blocks: int) -> list[str]:
    """a, b, c, ... for up to 26 blocks, else b1 .. bn."""
    if n_blocks < 1:
        raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
    return list(string.ascii_lowercase[:n_blocks]) if n_blocks <= 26 else [f"b{i + 1}" for i in range(n_blocks)]


def random_towers(blocks: list[str], rng: random.Random) -> Towers:
    """A random arrangement: shuffle, then cut into towers at random points."""
    order = list(blocks)
    rng.shuffle(order)
    towers: Towers = [[order[0]]]
    for block in order[1:]:
        if rng.random() < 0.5:
            towers[-1].append(block)
        else:
            towers.append([block])
    return towers


def tower_facts(towers: Towers) -> list[str]:
    """The full state of an arrangement (hand empty) as PDDL facts."""
    facts = []
    for tower in towers:
        facts.append(f"(ontable {tower[0]})")
        facts.extend(f"(on {top} {below})" for below, top in itertools.pairwise(tower))
        facts.append(f"(clear {tower[-1]})")
    return facts + ["(handempty)"]


def goal_facts(towers: Towers) -> list[str]:
    """IPC-style goal: only the `on` facts of the towers."""
    return [f"(on {top} {below})" for tower in towers for below, top in itertools.pairwise(tower)]


def problem_pddl(name: str, init: Towers, goal: Towers) -> str:
    blocks = sorted(block for tower in init for block in tower)
    return (f"(define (problem {name}) (:domain {DOMAIN_NAME})\n"
            f"  (:objects {' '.join(blocks)})\n"
            f"  (:init {' '.join(tower_facts(init))})\n"
            f"  (:goal (and {' '.join(goal_facts(goal))})))\n")


def random_problem(n_blocks: int, rng: random.Random, name: str | None = None) -> str:
    """PDDL text of a random problem with `n_blocks`; the goal has at least one `on` fact false at the start."""
    blocks = block_names(n_blocks)
    if n_blocks < 2:
        raise ValueError("blocksworld problems need at least 2 blocks (a goal is a set of `on` facts)")
    init = random_towers(blocks, rng)
    init_facts = set(tower_facts(init))
    while True:
        goal = random_towers(blocks, rng)
        facts = goal_facts(goal)
        if facts and not set(facts) <= init_facts:
            break
    return problem_pddl(name or f"bw-{n_blocks}", init, goal)


def problems(n_per_size: int, sizes=(3, 4, 5, 6, 7), seed: int = 0) -> list[tuple[int, str]]:
    """(n_blocks, problem PDDL) for `n_per_size` problems of each size, the same for the same seed."""
    out = []
    for size in sizes:
        rng = random.Random(f"{seed}-{size}")
        out.extend((size, random_problem(size, rng, name=f"bw-{size}-{i}")) for i in range(n_per_size))
    return out
