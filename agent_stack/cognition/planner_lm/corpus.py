"""Synthetic training corpus of the embedded planner LM, generated from the skill library on random scenes.

Every example is a planner prompt (`prompts.planner_messages`, exactly what the backends send) and its
completion `Thought: ...\nPlan: {"subgoals": [...]}`; the target plan is simulated with the skills'
preconditions and effects, so it always runs on its scene. Kinds of example:

- single: one skill in many phrasings; references by colour or by scene relation ("the block on the
  green pad", "the block in your hand"); implicit steps where the scene needs them (a covered block is
  cleared top first, a stacked block is taken down before a push);
- compound: 2-3 steps joined by connectives, with pronouns ("... and then put it in the bin") and
  ellipsis ("..., then the blue one on the red one");
- goal: "clear the red block", "put all blocks in the bin", "build a tower of red, green and blue";
- replan: `Feedback: done: ...; failed: ...` with the scene as it is after the failure, answered with
  the rest of the plan; partial: `Feedback: planned so far: ...` (tree of thought), answered likewise.

Held-out split: some phrasing templates, connectives and relation phrasings are reserved for
`split="heldout"` and never appear in training, so the held-out accuracy measures generalisation to new
wordings. Each example records the template ids it used, which the tests check are disjoint.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

from agent_stack.cognition.llm.base import Messages
from agent_stack.cognition.plan import Plan, Subgoal
from agent_stack.cognition.prompts import PLAN_PREFIX, THOUGHT_PREFIX, planner_messages
from agent_stack.cognition.scene import BIN, HAND, TABLE, SymbolicScene, on_block, on_pad
from agent_stack.cognition.skills import COLORS, SKILLS

SPLITS = ("train", "heldout")
KIND_WEIGHTS = {"single": 0.3, "compound": 0.3, "goal": 0.15, "replan": 0.15, "partial": 0.1}


@dataclass(frozen=True)
class Example:
    """One prompt / completion pair with the facts it was built from."""

    messages: Messages
    completion: str
    plan: Plan | None
    """The target plan (None for examples of other domains, e.g. PDDL Blocksworld)."""
    scene: SymbolicScene | None
    instruction: str = ""
    feedback: str = ""
    kind: str = ""
    templates: tuple[str, ...] = ()
    """Ids of the phrasing templates used, for the train / held-out disjointness check."""
    fixed: tuple[Subgoal, ...] = ()
    """Steps the feedback says are planned already (partial examples): `plan` runs after them."""


# --- phrasings: (train, heldout) per skill; {x} {y} {z} are block references, {p} a pad colour ------------

_TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pick_up": (("pick up {x}", "lift {x}", "grab {x} and lift it", "raise {x} off the table", "pick {x} up",
                 "grab {x}", "take {x} in your hand"),
                ("lift up {x}", "grab {x} and raise it")),
    "place_on_pad": (("put {x} on the {p} pad", "place {x} on the {p} pad", "move {x} onto the {p} pad",
                      "set {x} down on the {p} pad", "put {x} onto the {p} pad", "drop {x} on the {p} pad"),
                     ("set down {x} on the {p} pad", "move {x} to the {p} pad")),
    "stack": (("stack {x} on {y}", "put {x} on {y}", "place {x} on top of {y}", "put {x} on top of {y}",
               "set {x} on {y}", "stack {x} onto {y}"),
              ("place {x} onto {y}", "move {x} on top of {y}")),
    "unstack": (("take {x} off {y}", "unstack {x} from {y}", "remove {x} from {y}",
                 "put {x} from {y} on the table", "lift {x} off {y}"),
                ("take {x} down from {y}", "remove {x} from on top of {y}")),
    "push": (("push {x} {d}", "slide {x} {d}", "shove {x} {d}"),
             ("nudge {x} {d}", "move {x} {d}")),
    "put_near": (("put {x} near {y}", "place {x} next to {y}", "move {x} close to {y}", "put {x} beside {y}",
                  "set {x} down near {y}"),
                 ("put {x} close to {y}", "move {x} beside {y}")),
    "put_in_bin": (("put {x} in the bin", "drop {x} into the bin", "place {x} in the bin",
                    "throw {x} in the bin", "throw {x} away"),
                   ("toss {x} in the bin", "put {x} into the bin")),
    "put_between": (("put {x} between {y} and {z}", "move {x} in between {y} and {z}",
                     "put {x} in the middle of {y} and {z}"),
                    ("place {x} between {y} and {z}", "set {x} down between {y} and {z}")),
    "put_left_of": (("put {x} to the left of {y}", "place {x} on the left side of {y}",
                     "move {x} left of {y}"),
                    ("set {x} down to the left of {y}", "put {x} on the left side of {y}")),
    "put_right_of": (("put {x} to the right of {y}", "place {x} on the right side of {y}",
                      "move {x} right of {y}"),
                     ("set {x} down to the right of {y}", "put {x} on the right side of {y}")),
}
_DIRECTIONS = {"left": ("left", "to the left"), "right": ("right", "to the right"),
               "forward": ("forward", "forwards"), "backward": ("backward", "backwards")}

_CONNECTIVES = {
    2: (("{a}, then {b}", "{a} and then {b}", "first {a}, after that {b}", "{a}. next, {b}",
         "{a}, and then {b}"),
        ("first {a}, then {b}", "{a}. after that, {b}", "{a} and after that {b}")),
    3: (("{a}, then {b}, and then {c}", "{a}, then {b}, then {c}", "first {a}, after that {b}, and then {c}",
         "{a}. next, {b}. next, {c}"),
        ("first {a}, then {b}, and finally {c}", "{a}. after that, {b}. finally, {c}")),
}

_RELATIONS = {  # how a block is named by where it is; the heldout forms never appear in training
    "hand": (("the block in your hand", "the block you are holding"), ("the block that you are holding",)),
    "pad": (("the block on the {w} pad",), ("the block that is on the {w} pad",)),
    "on": (("the block on the {w} block", "the block on top of the {w} block"),
           ("the block that is on the {w} block",)),
    "under": (("the block under the {w} block", "the block below the {w} block"),
              ("the block that is under the {w} block",)),
}

_GOALS = {
    "clear": (("clear {x}", "take everything off {x}", "make {x} clear", "remove whatever is on {x}"),
              ("clear off {x}", "take all blocks off {x}")),
    "all_in_bin": (("put all blocks in the bin", "put every block in the bin",
                    "throw all the blocks in the bin", "clean up the table by putting everything in the bin"),
                   ("put all the cubes in the bin", "drop every block into the bin")),
    "tower": (("build a tower of {colors}", "stack {colors} into a tower", "make a tower from {colors}"),
              ("build a tower from {colors}", "make a tower of {colors}")),
}

_ELLIPSES = (  # (template, skills of the two steps, how the second step's args relate); train only
    "put {x} on the {p} pad, then the {c2} one on the {q} pad",
    "put {x} on the {p} pad, then the {c2} one on the {c1} one",
    "stack {x} on {y}, then the {c2} one on it",
    "put {x} in the bin, then the {c2} one too",
    "put {x} in the bin and the {c2} one as well",
    "pick up {x} and put it on the {p} pad",
    "pick up {x} and put it in the bin",
    "stack {x} on {y} and then put it in the bin",
)

FAILURE_REASONS = ("timeout", "dropped the block", "lost the grip", "the block slipped")


def template_ids(split: str) -> frozenset[str]:
    """Every template id a split may use (for the disjointness test)."""
    index = SPLITS.index(split)
    ids = {f"skill:{name}:{t}" for name, pair in _TEMPLATES.items() for t in pair[index]}
    ids |= {f"conn:{t}" for pair in _CONNECTIVES.values() for t in pair[index]}
    ids |= {f"rel:{t}" for pair in _RELATIONS.values() for t in pair[index]}
    ids |= {f"goal:{t}" for pair in _GOALS.values() for t in pair[index]}
    if split == "train":
        ids |= {f"ellipsis:{t}" for t in _ELLIPSES}
    return frozenset(ids)


# --- feedback text (the same strings the planner builds at run time) ------------------------------------

def execution_feedback(done: list[Subgoal], failed: Subgoal | None = None, reason: str = "") -> str:
    """`done: a(...); b(...); failed: c(...) (reason)`, what happened so far (Inner Monologue)."""
    parts = []
    if done:
        parts.append("done: " + Plan(tuple(done)).calls())
    if failed is not None:
        parts.append(f"failed: {failed.call()}" + (f" ({reason})" if reason else ""))
    return "; ".join(parts)


def partial_feedback(steps: list[Subgoal]) -> str:
    """`planned so far: a(...); b(...)`, as `TabletopDomain.partial_feedback` writes it (tree of thought)."""
    return "planned so far: " + Plan(tuple(steps)).calls()


def completion_text(thought: str, steps: list[Subgoal]) -> str:
    """The target completion: a short thought, then the compact JSON plan (no instructions, to save tokens).

    Colour values carry a leading space (`"color": " red"`, which `parse_plan` strips) so that a colour
    in the plan is the same token as in the instruction and the scene: the model copies a token instead
    of learning a second spelling of every colour."""
    plan = {"subgoals": [{"skill": s.skill, "args": {k: f" {v}" for k, v in s.arguments.items()}}
                         for s in steps]}
    return f"{THOUGHT_PREFIX} {thought}\n{PLAN_PREFIX} {json.dumps(plan)}"


# --- scenes and simulation -------------------------------------------------------------------------------

def random_scene(rng: random.Random) -> SymbolicScene:
    """2-4 blocks of distinct colours on the table, pads, other blocks or in the bin; sometimes one held."""
    colors = rng.sample(COLORS, rng.randint(2, 4))
    pads = frozenset(c for c in COLORS if rng.random() < 0.5)
    has_bin = rng.random() < 0.85
    blocks: dict[str, str] = {}
    for color in colors:
        free_pads = [on_pad(p) for p in sorted(pads) if on_pad(p) not in blocks.values()]
        clear = [on_block(b) for b in blocks
                 if blocks[b] not in (BIN, HAND) and on_block(b) not in blocks.values()]
        options = [([TABLE], 0.35), (free_pads, 0.25), (clear, 0.3), ([BIN] if has_bin else [], 0.1)]
        options = [(where, weight) for where, weight in options if where]
        group = rng.choices([w for w, _ in options], [weight for _, weight in options])[0]
        blocks[color] = rng.choice(group)
    scene = SymbolicScene(blocks=dict(sorted(blocks.items())), pads=pads, has_bin=has_bin)
    holdable = [c for c in scene.blocks if scene.blocks[c] != BIN and scene.is_clear(c)]
    if holdable and rng.random() < 0.15:
        scene = scene.moved(rng.choice(holdable), HAND)
    return scene


def run(scene: SymbolicScene, steps: list[Subgoal]) -> SymbolicScene | None:
    """The scene after `steps`, or None when a step's preconditions fail."""
    for step in steps:
        skill = SKILLS[step.skill]
        if skill.preconditions(scene, step.arguments):
            return None
        scene = skill.apply(scene, step.arguments)
    return scene


def clearing_steps(scene: SymbolicScene, color: str) -> list[Subgoal]:
    """Unstack whatever is on `color`, top block first."""
    above = []
    current = color
    while not scene.is_clear(current):
        current = next(c for c, w in scene.blocks.items() if w == on_block(current))
        above.append(current)
    return [Subgoal.make("unstack", color=top, target=scene.below(top)) for top in reversed(above)]


def expand(scene: SymbolicScene, step: Subgoal) -> tuple[list[Subgoal], list[str]] | None:
    """The steps that achieve `step` from `scene` (implicit clearing first) and the reasons for the implicit
    steps, or None when it cannot be done without guessing (e.g. a full hand, a block in the bin)."""
    if not SKILLS[step.skill].preconditions(scene, step.arguments):
        return [step], []
    if scene.held is not None:
        return None
    args = step.arguments
    prefix, reasons = [], []
    covered = [args["color"]] + ([args["target"]] if step.skill == "stack" else [])
    for color in covered:
        now = run(scene, prefix)
        clearing = clearing_steps(now, color) if now is not None else []
        if clearing:
            reasons.append(f"{_names(s.arguments['color'] for s in clearing)} on the {color} block, "
                           f"take {'it' if len(clearing) == 1 else 'them'} off first")
            prefix += clearing
    now = run(scene, prefix)
    if step.skill.startswith("push_") and now is not None and now.below(args["color"]) is not None:
        below = now.below(args["color"])
        prefix.append(Subgoal.make("unstack", color=args["color"], target=below))
        reasons.append(f"the {args['color']} block is on the {below} block, take it down first")
    steps = prefix + [step]
    return (steps, reasons) if prefix and run(scene, steps) is not None else None


def _names(colors) -> str:
    colors = list(colors)
    return (f"the {colors[0]} block is" if len(colors) == 1
            else "the " + " and ".join(colors) + " blocks are")


def possible_steps(scene: SymbolicScene) -> list[Subgoal]:
    """Every skill call whose arguments exist in the scene (not necessarily runnable)."""
    blocks = list(scene.blocks)
    steps = []
    for name, skill in SKILLS.items():
        targets = sorted(scene.pads) if skill.target_kind == "pad" else blocks
        pools = [blocks] + [targets] * (len(skill.params) - 1)
        for combo in _product(pools):
            args = dict(zip(skill.params, combo))
            if not skill.check_args(args):
                steps.append(Subgoal.make(name, **args))
    return steps


def _product(pools: list[list[str]]) -> list[tuple[str, ...]]:
    combos: list[tuple[str, ...]] = [()]
    for pool in pools:
        combos = [c + (v,) for c in combos for v in pool]
    return combos


# --- rendering ---------------------------------------------------------------------------------------------

class _Renderer:
    """Turns steps into words for one split, collecting the template ids and the resolved references."""

    def __init__(self, rng: random.Random, split: str) -> None:
        self.rng, self.index = rng, SPLITS.index(split)
        self.templates: list[str] = []
        self.facts: list[str] = []

    def pick(self, kind: str, pair: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
        template = self.rng.choice(pair[self.index])
        self.templates.append(f"{kind}:{template}")
        return template

    def block(self, color: str, scenes: list[SymbolicScene], relational: float = 0.3) -> str:
        """A name for `color`: by colour, or by a relation that holds in every scene of `scenes`."""
        if self.rng.random() < relational:
            options = [o for o in _relation_options(scenes[0], color)
                       if all(o in _relation_options(s, color) for s in scenes[1:])]
            if options:
                kind, other = self.rng.choice(options)
                text = self.pick("rel", _RELATIONS[kind]).format(w=other)
                self.facts.append(f"{text} is the {color} block")
                return text
        return f"the {color} {'cube' if self.rng.random() < 0.2 else 'block'}"

    def step(self, step: Subgoal, scenes: list[SymbolicScene], pronoun: bool = False) -> str:
        """The instruction for one step; `pronoun` names its block "it"."""
        args = step.arguments
        key = "push" if step.skill.startswith("push_") else step.skill
        template = self.pick(f"skill:{key}", _TEMPLATES[key])
        if key == "push":
            template = template.replace("{d}", self.rng.choice(_DIRECTIONS[step.skill[5:]]))
        names = {"x": "it" if pronoun else self.block(args["color"], scenes)}
        if SKILLS[step.skill].target_kind == "pad":
            names["p"] = args["target"]
        elif "target" in args:
            names["y"] = self.block(args["target"], scenes)
        if "second" in args:
            names["z"] = self.block(args["second"], scenes)
        return template.format(**names)

    def join(self, parts: list[str]) -> str:
        return self.pick("conn", _CONNECTIVES[len(parts)]).format(**dict(zip("abc", parts)))


def _relation_options(scene: SymbolicScene, color: str) -> list[tuple[str, str]]:
    where = scene.blocks[color]
    options = []
    if where == HAND:
        options.append(("hand", ""))
    elif where.endswith("_pad"):
        options.append(("pad", where[:-4]))
    elif where.endswith("_block"):
        options.append(("on", where[:-6]))
    top = next((c for c, w in scene.blocks.items() if w == on_block(color)), None)
    if top is not None:
        options.append(("under", top))
    return options


# --- example generators: each returns (instruction, steps, thought facts, templates) or None ----------------

Draft = tuple[str, list[Subgoal], list[str], list[str]]


def _single(rng: random.Random, scene: SymbolicScene, split: str) -> Draft | None:
    step = _sample_step(rng, scene, implicit=rng.random() < 0.4)
    if step is None:
        return None
    steps, reasons = expand(scene, step)
    renderer = _Renderer(rng, split)
    text = renderer.step(step, [scene])
    return text, steps, renderer.facts + reasons, renderer.templates


def _sample_step(rng: random.Random, scene: SymbolicScene, implicit: bool) -> Subgoal | None:
    """A step that can run (directly, or after implicit steps when `implicit`), skills drawn evenly."""
    by_skill: dict[str, list[Subgoal]] = {}
    for step in possible_steps(scene):
        expanded = expand(scene, step)
        if expanded is not None and (len(expanded[0]) > 1) == implicit:
            by_skill.setdefault(step.skill, []).append(step)
    if not by_skill:
        return None
    return rng.choice(by_skill[rng.choice(sorted(by_skill))])


def _compound(rng: random.Random, scene: SymbolicScene, split: str) -> Draft | None:
    if split == "train" and rng.random() < 0.3:
        return _ellipsis(rng, scene)
    renderer = _Renderer(rng, split)
    count = rng.choice((2, 2, 3))
    now, steps, parts, reasons, previous = scene, [], [], [], None
    for _ in range(count):
        same = previous is not None and rng.random() < 0.4
        candidates = [s for s in possible_steps(now) if (s.arguments["color"] == previous) == same
                      and expand(now, s) is not None]
        if not candidates:
            return None
        step = rng.choice(candidates)
        expanded, why = expand(now, step)
        parts.append(renderer.step(step, [scene, now], pronoun=same and rng.random() < 0.7))
        steps += expanded
        reasons += why
        now = run(now, expanded)
        previous = step.arguments["color"]
    return renderer.join(parts), steps, renderer.facts + reasons, renderer.templates


def _ellipsis(rng: random.Random, scene: SymbolicScene) -> Draft | None:
    template = rng.choice(_ELLIPSES)
    blocks, pads = list(scene.blocks), sorted(scene.pads)
    c1, c2 = rng.sample(blocks, 2)
    p, q = (rng.sample(pads, 2) if len(pads) >= 2 else (pads * 2)[:2]) if pads else ("", "")
    y = c2
    calls = {
        _ELLIPSES[0]: [("place_on_pad", c1, p), ("place_on_pad", c2, q)],
        _ELLIPSES[1]: [("place_on_pad", c1, p), ("stack", c2, c1)],
        _ELLIPSES[3]: [("put_in_bin", c1), ("put_in_bin", c2)],
        _ELLIPSES[4]: [("put_in_bin", c1), ("put_in_bin", c2)],
        _ELLIPSES[5]: [("pick_up", c1), ("place_on_pad", c1, p)],
        _ELLIPSES[6]: [("pick_up", c1), ("put_in_bin", c1)],
        _ELLIPSES[7]: [("stack", c1, c2), ("put_in_bin", c1)],
    }
    if template == _ELLIPSES[2]:
        if len(blocks) < 3:
            return None
        y = rng.choice([b for b in blocks if b not in (c1, c2)])
        calls[template] = [("stack", c1, y), ("stack", c2, c1)]
    if "{p}" in template and (not p or ("{q}" in template and p == q)):
        return None
    steps = []
    for name, *args in calls[template]:
        steps.append(Subgoal.make(name, **dict(zip(SKILLS[name].params, args))))
    if run(scene, steps) is None:
        return None
    text = template.format(x=f"the {c1} block", y=f"the {y} block", p=p, q=q, c1=c1, c2=c2)
    return text, steps, [], [f"ellipsis:{template}"]


def _goal(rng: random.Random, scene: SymbolicScene, split: str) -> Draft | None:
    renderer = _Renderer(rng, split)
    kind = rng.choice(("clear", "all_in_bin", "tower"))
    if scene.held is not None and kind != "all_in_bin":
        return None
    if kind == "clear":
        covered = [c for c in scene.blocks if not scene.is_clear(c)]
        if not covered:
            return None
        color = rng.choice(covered)
        steps = clearing_steps(scene, color)
        text = renderer.pick("goal", _GOALS["clear"]).format(x=renderer.block(color, [scene]))
        reasons = [f"{_names(s.arguments['color'] for s in steps)} on the {color} block, take "
                   f"{'it' if len(steps) == 1 else 'them'} off top first"]
    elif kind == "all_in_bin":
        steps = _all_in_bin(scene)
        if not steps:
            return None
        text = renderer.pick("goal", _GOALS["all_in_bin"])
        reasons = ["the hand first, then clear blocks top first" if scene.held else "clear blocks top first"]
    else:
        steps, reasons, colors = _tower(rng, scene)
        if not steps:
            return None
        names = colors[0] + " and " + colors[1] if len(colors) == 2 else \
            ", ".join(colors[:-1]) + " and " + colors[-1]
        text = renderer.pick("goal", _GOALS["tower"]).format(colors=names)
    return text, steps, renderer.facts + reasons, renderer.templates


def _all_in_bin(scene: SymbolicScene) -> list[Subgoal]:
    """Held block first, then repeatedly the first clear block (in scene order): top blocks first."""
    if not scene.has_bin:
        return []
    steps, now = [], scene
    while True:
        left = [c for c in sorted(now.blocks) if now.blocks[c] != BIN and now.is_clear(c)]
        if not left:
            return steps
        color = now.held or left[0]
        step = Subgoal.make("put_in_bin", color=color)
        steps.append(step)
        now = SKILLS["put_in_bin"].apply(now, step.arguments)


def _tower(rng: random.Random, scene: SymbolicScene) -> tuple[list[Subgoal], list[str], list[str]]:
    """Bottom first: clear the tower's blocks (top first), then stack each on the one before."""
    usable = [c for c in scene.blocks if scene.blocks[c] != BIN]
    if len(usable) < 2:
        return [], [], []
    colors = rng.sample(usable, rng.randint(2, min(3, len(usable))))
    if any(scene.below(c) in colors for c in colors):
        return [], [], []  # part of the tower already stands: the canonical plan would be ambiguous
    steps, reasons = [], []
    for color in colors:
        now = run(scene, steps)
        clearing = clearing_steps(now, color)
        if clearing:
            reasons.append(f"{_names(s.arguments['color'] for s in clearing)} on the {color} block, "
                           f"take {'it' if len(clearing) == 1 else 'them'} off first")
            steps += clearing
    steps += [Subgoal.make("stack", color=top, target=bottom) for bottom, top in zip(colors, colors[1:])]
    reasons.append(f"{colors[0]} at the bottom, build upwards")
    return (steps, reasons, colors) if run(scene, steps) is not None else ([], [], [])


GENERATORS: dict[str, Callable[[random.Random, SymbolicScene, str], Draft | None]] = {
    "single": _single, "compound": _compound, "goal": _goal}


# --- examples ----------------------------------------------------------------------------------------------

def _example(kind: str, instruction: str, scene: SymbolicScene, feedback: str, steps: list[Subgoal],
             facts: list[str], templates: list[str], fixed: list[Subgoal] = ()) -> Example:
    thought = ". ".join(facts) + "." if facts else "the instruction names the blocks directly."
    return Example(messages=planner_messages(instruction, scene.describe(), feedback),
                   completion=completion_text(thought, steps), plan=Plan(tuple(steps)), scene=scene,
                   instruction=instruction, feedback=feedback, kind=kind, templates=tuple(templates),
                   fixed=tuple(fixed))


def _replan(rng: random.Random, scene: SymbolicScene, draft: Draft) -> Example | None:
    """The scene after some steps ran and one failed (unchanged, dropped on the table or still held);
    the answer is the rest of the plan, starting with the failed step again."""
    instruction, steps, _, templates = draft
    failed_at = rng.randrange(len(steps))
    step = steps[failed_at]
    now = run(scene, steps[:failed_at])
    outcome = rng.choice(("unchanged", "dropped", "held"))
    if step.skill in ("pick_up", "unstack") or outcome == "unchanged":
        reason = "timeout" if outcome == "unchanged" else rng.choice(FAILURE_REASONS)
    elif outcome == "dropped":
        now, reason = now.moved(step.arguments["color"], TABLE), rng.choice(FAILURE_REASONS[1:])
    else:
        now, reason = now.moved(step.arguments["color"], HAND), "timeout"
    rest = steps[failed_at:]
    if run(now, rest) is None:
        return None
    feedback = execution_feedback(steps[:failed_at], step, reason)
    facts = [f"{failed_at} done, {step.call()} failed, retry it"]
    return _example("replan", instruction, now, feedback, rest, facts, templates)


def _partial(rng: random.Random, scene: SymbolicScene, draft: Draft) -> Example | None:
    instruction, steps, _, templates = draft
    if len(steps) < 2:
        return None
    fixed = rng.randrange(1, len(steps))
    facts = [f"{fixed} planned, {len(steps) - fixed} to go"]
    return _example("partial", instruction, scene, partial_feedback(steps[:fixed]), steps[fixed:], facts,
                    templates, steps[:fixed])


def sample_example(rng: random.Random, split: str = "train") -> Example:
    """One example of a kind drawn by KIND_WEIGHTS (retrying scenes where that kind does not fit)."""
    kind = rng.choices(list(KIND_WEIGHTS), list(KIND_WEIGHTS.values()))[0]
    while True:
        scene = random_scene(rng)
        base = kind if kind in GENERATORS else rng.choice(("single", "compound", "compound", "goal"))
        draft = GENERATORS[base](rng, scene, split)
        if draft is None:
            continue
        if kind in GENERATORS:
            return _example(kind, draft[0], scene, "", *draft[1:])
        example = (_replan if kind == "replan" else _partial)(rng, scene, draft)
        if example is not None:
            return example


def make_corpus(split: str = "train", n: int = 1000, seed: int = 0) -> list[Example]:
    """`n` examples of `split`, deterministic for `seed` (the held-out split draws from its own stream)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = random.Random(f"{split}:{seed}")
    return [sample_example(rng, split) for _ in range(n)]


def domain_examples(n: int, seed: int) -> list[Example]:
    """Examples of other planning domains to mix in: PDDL Blocksworld from `cognition.pddl.corpus` when
    that module is present, else none."""
    try:
        from agent_stack.cognition.pddl.corpus import blocksworld_examples
    except ImportError:
        return []
    return [Example(messages=[{"role": "user", "content": prompt}], completion=completion, plan=None,
                    scene=None, kind="pddl") for prompt, completion in blocksworld_examples(n, seed)]
