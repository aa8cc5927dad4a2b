"""The robot's skill library as the planner sees it: each skill's arguments, the language instruction the
VLA (or the scripted expert) was trained on, its preconditions and its effect on the symbolic scene.

Skill names and instruction templates are those of the tabletop task families (`sim.tasks`), so a plan
step is a task the policy layer already knows; `tests/cognition/test_skills.py` keeps the two in step.
Preconditions return the reasons a step cannot run; the verifier simulates a plan with them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent_stack.cognition.scene import BIN, HAND, TABLE, SymbolicScene, on_block, on_pad

COLORS = ("red", "green", "blue", "yellow")
ROLES = ("color", "target", "second")
"""Argument names in order: X (the block acted on), Y, Z."""


@dataclass(frozen=True)
class Skill:
    name: str
    params: tuple[str, ...]
    template: str
    """The instruction for the policy layer, a str.format template over `params`."""
    target_kind: str = "block"
    """What `target` / `second` name: a "block" or a "pad"."""
    effect: Callable[[SymbolicScene, dict], SymbolicScene] | None = None
    extra_checks: Callable[[SymbolicScene, dict], list[str]] | None = None
    description: str = ""

    def instruction(self, args: dict[str, str]) -> str:
        return self.template.format(**args)

    def check_args(self, args: dict[str, str]) -> list[str]:
        """Reasons the arguments are malformed (names, colours, repeats), empty when they are fine."""
        if tuple(args) != self.params and set(args) != set(self.params):
            return [f"{self.name} takes arguments {list(self.params)}, got {list(args)}"]
        bad = [v for v in args.values() if v not in COLORS]
        if bad:
            return [f"{self.name}: unknown colour(s) {bad}; colours are {list(COLORS)}"]
        blocks = [args["color"]] + ([args[p] for p in self.params[1:]] if self.target_kind == "block" else [])
        if len(set(blocks)) != len(blocks):
            return [f"{self.name} needs distinct blocks, got {args}"]
        return []

    def preconditions(self, scene: SymbolicScene, args: dict[str, str]) -> list[str]:
        """Reasons the step cannot run in `scene` (an absent object, a covered block, a full hand, ...)."""
        reasons = self.check_args(args)
        if reasons:
            return reasons
        x = args["color"]
        others = [args[p] for p in self.params[1:]]
        for color in [x] + (others if self.target_kind == "block" else []):
            if color not in scene.blocks:
                reasons.append(f"there is no {color} block")
        if self.target_kind == "pad":
            reasons += [f"there is no {c} pad" for c in others if c not in scene.pads]
        if reasons:
            return reasons
        if scene.blocks[x] == BIN:
            reasons.append(f"the {x} block is in the bin")
        if not scene.is_clear(x):
            top = next(c for c, w in scene.blocks.items() if w == on_block(x))
            reasons.append(f"the {top} block is on the {x} block")
        if scene.held is not None and scene.held != x:
            reasons.append(f"the hand holds the {scene.held} block")
        if self.extra_checks is not None:
            reasons += self.extra_checks(scene, args)
        return reasons

    def apply(self, scene: SymbolicScene, args: dict[str, str]) -> SymbolicScene:
        """The scene after the step (call only when `preconditions` are empty)."""
        return self.effect(scene, args) if self.effect is not None else scene


def _place(where: Callable[[dict], str]):
    return lambda scene, args: scene.moved(args["color"], where(args))


def _target_block_free(scene: SymbolicScene, args: dict) -> list[str]:
    reasons = []
    for role in ("target", "second"):
        color = args.get(role)
        if color is None:
            continue
        if scene.blocks[color] == HAND:
            reasons.append(f"the {color} block is held, nothing can go on or next to it")
        elif scene.blocks[color] == BIN:
            reasons.append(f"the {color} block is in the bin")
    return reasons


def _stack_checks(scene: SymbolicScene, args: dict) -> list[str]:
    reasons = _target_block_free(scene, args)
    if not scene.is_clear(args["target"]):
        reasons.append(f"the {args['target']} block already has a block on it")
    return reasons


def _pad_free(scene: SymbolicScene, args: dict) -> list[str]:
    occupant = scene.block_on_pad(args["target"])
    return [f"the {occupant} block is already on the {args['target']} pad"] \
        if occupant not in (None, args["color"]) else []


def _unstack_checks(scene: SymbolicScene, args: dict) -> list[str]:
    return [] if scene.blocks[args["color"]] == on_block(args["target"]) else \
        [f"the {args['color']} block is not on the {args['target']} block"]


def _on_table(scene: SymbolicScene, args: dict) -> list[str]:
    return [] if scene.blocks[args["color"]] == TABLE else \
        [f"the {args['color']} block must rest on the table to be pushed"]


def _move_beside(scene: SymbolicScene, args: dict) -> SymbolicScene:
    return scene.moved(args["color"], TABLE)


SKILLS: dict[str, Skill] = {}


def _register(skill: Skill) -> None:
    SKILLS[skill.name] = skill


_register(Skill("pick_up", ("color",), "pick up the {color} block", effect=_place(lambda a: HAND),
                description="grasp block X and lift it; the hand then holds X"))
_register(Skill("place_on_pad", ("color", "target"), "put the {color} block on the {target} pad", "pad",
                effect=_place(lambda a: on_pad(a["target"])), extra_checks=_pad_free,
                description="put block X on the pad of colour Y"))
_register(Skill("stack", ("color", "target"), "stack the {color} block on the {target} block",
                effect=_place(lambda a: on_block(a["target"])), extra_checks=_stack_checks,
                description="put block X on top of block Y (Y must be clear and not held)"))
_register(Skill("unstack", ("color", "target"), "take the {color} block off the {target} block",
                effect=_place(lambda a: TABLE), extra_checks=_unstack_checks,
                description="take block X off block Y and put it on the table"))
for _direction, _phrase in (("left", "left"), ("right", "right"), ("forward", "forward"),
                            ("backward", "backward")):
    _register(Skill(f"push_{_direction}", ("color",), f"push the {{color}} block {_phrase}",
                    effect=_place(lambda a: TABLE), extra_checks=_on_table,
                    description=f"push block X about 10 cm {_direction} along the table"))
_register(Skill("put_near", ("color", "target"), "put the {color} block near the {target} block",
                effect=_move_beside, extra_checks=_target_block_free,
                description="put block X on the table next to block Y"))
_register(Skill("put_in_bin", ("color",), "put the {color} block in the bin", effect=_place(lambda a: BIN),
                extra_checks=lambda scene, args: [] if scene.has_bin else ["there is no bin"],
                description="drop block X into the bin"))
_register(Skill("put_between", ("color", "target", "second"),
                "put the {color} block between the {target} block and the {second} block",
                effect=_move_beside, extra_checks=_target_block_free,
                description="put block X on the table between blocks Y and Z"))
_register(Skill("put_left_of", ("color", "target"), "put the {color} block to the left of the {target} block",
                effect=_move_beside, extra_checks=_target_block_free,
                description="put block X on the table to the left of block Y"))
_register(Skill("put_right_of", ("color", "target"), "put the {color} block to the right of the {target} block",
                effect=_move_beside, extra_checks=_target_block_free,
                description="put block X on the table to the right of block Y"))


def skill_library_text() -> str:
    """The skill list as it appears in planner prompts."""
    lines = []
    for skill in SKILLS.values():
        args = ", ".join(f"{p}: {'pad colour' if skill.target_kind == 'pad' and p != 'color' else 'block colour'}"
                         for p in skill.params)
        lines.append(f"- {skill.name}({args}): {skill.description}")
    return "\n".join(lines)
