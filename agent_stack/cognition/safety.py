"""Safety rules the planner enforces before a plan reaches the robot.

Three places: `check_instruction` filters the user's instruction (forbidden words and patterns),
`check_plan` vetoes a plan (forbidden skills and objects, too many subgoals, pushes that would leave the
workspace box), and `allow_subgoal` rate-limits the subgoals the planner node dispatches. Each returns the
reasons for a rejection, and every rejection is logged. The rules are a typed, JSON-serialisable config.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent_stack.cognition.plan import Subgoal
from agent_stack.cognition.scene import SymbolicScene
from agent_stack.cognition.skills import COLORS, SKILLS
from agent_stack.configs import config_from_dict

LOG = logging.getLogger(__name__)

PUSH_DIRECTIONS: dict[str, tuple[float, float]] = {
    "push_left": (0.0, 1.0), "push_right": (0.0, -1.0),
    "push_forward": (1.0, 0.0), "push_backward": (-1.0, 0.0),
}
"""Unit xy directions of the push skills in the robot base frame (x forward, y left), as sim.tasks."""

# "throw the red block in the bin" is a task phrasing; throwing *at* something is not.
DEFAULT_FORBIDDEN_PATTERNS = (r"\bthrow\b[^.,;]*\bat\b", r"\bhit\b", r"\bsmash", r"\bpunch", r"\bhurt", r"\bstab",
                              r"\b(person|people|human|someone|anybody|child)\b")


@dataclass
class SafetyRules:
    workspace_low: tuple[float, float] = (0.25, -0.35)
    """(x, y) lower corner of the box blocks must stay in (m, base frame; the sim's workspace)."""
    workspace_high: tuple[float, float] = (0.75, 0.35)
    """(x, y) upper corner of that box."""
    push_distance: float = 0.10
    """How far a push moves a block (m): a push from closer than this to the bound is rejected."""
    forbidden_colors: tuple[str, ...] = ()
    """Blocks or pads no step may touch (e.g. a fragile object)."""
    forbidden_skills: tuple[str, ...] = ()
    """Skills no plan may use (e.g. "put_in_bin")."""
    max_subgoals: int = 12
    """Longest plan accepted."""
    max_subgoals_per_minute: float | None = 30.0
    """Subgoals the planner node may dispatch in any 60 s (None: no limit)."""
    forbidden_patterns: tuple[str, ...] = DEFAULT_FORBIDDEN_PATTERNS
    """Case-insensitive regular expressions; an instruction matching one is refused."""
    _dispatched: deque = field(default_factory=deque, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("workspace_low", "workspace_high", "forbidden_colors", "forbidden_skills",
                     "forbidden_patterns"):
            setattr(self, name, tuple(getattr(self, name)))
        for name in ("workspace_low", "workspace_high"):
            if len(getattr(self, name)) != 2:
                raise ValueError(f"SafetyRules.{name} must be (x, y), got {getattr(self, name)!r}")
        if any(lo >= hi for lo, hi in zip(self.workspace_low, self.workspace_high)):
            raise ValueError(f"SafetyRules.workspace_low {self.workspace_low} must be below workspace_high "
                             f"{self.workspace_high}")
        if self.push_distance < 0:
            raise ValueError(f"SafetyRules.push_distance must be >= 0, got {self.push_distance!r}")
        if unknown := [c for c in self.forbidden_colors if c not in COLORS]:
            raise ValueError(f"SafetyRules.forbidden_colors: unknown {unknown}; colours are {list(COLORS)}")
        if unknown := [s for s in self.forbidden_skills if s not in SKILLS]:
            raise ValueError(f"SafetyRules.forbidden_skills: unknown {unknown}; skills are {sorted(SKILLS)}")
        count = self.max_subgoals
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"SafetyRules.max_subgoals must be a positive integer, got {count!r}")
        if self.max_subgoals_per_minute is not None and self.max_subgoals_per_minute <= 0:
            raise ValueError(f"SafetyRules.max_subgoals_per_minute must be > 0 or None, "
                             f"got {self.max_subgoals_per_minute!r}")
        for pattern in self.forbidden_patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                message = f"SafetyRules.forbidden_patterns: {pattern!r} is no regex ({error})"
                raise ValueError(message) from None

    # --- checks ------------------------------------------------------------------------------------------

    def check_instruction(self, text: str) -> list[str]:
        """Reasons to refuse the instruction (empty when it may be planned)."""
        reasons = []
        for pattern in self.forbidden_patterns:
            match = re.search(pattern, text, flags=re.IGNORECASE)
            if match:
                reasons.append(f"instruction contains forbidden {match.group(0)!r} (rule {pattern!r})")
        return self._logged("instruction", text, reasons)

    def check_plan(self, steps: Sequence[Subgoal], scene: SymbolicScene) -> list[str]:
        """Reasons to veto the plan on `scene` (empty when it is safe)."""
        reasons = []
        if len(steps) > self.max_subgoals:
            reasons.append(f"the plan has {len(steps)} subgoals, more than max_subgoals={self.max_subgoals}")
        for index, step in enumerate(steps, start=1):
            if step.skill in self.forbidden_skills:
                reasons.append(f"step {index} {step.call()}: the skill {step.skill} is forbidden")
            touched = sorted(set(step.arguments.values()) & set(self.forbidden_colors))
            if touched:
                reasons.append(f"step {index} {step.call()}: {', '.join(touched)} objects are forbidden")
        reasons += self._workspace_reasons(steps, scene)
        return self._logged("plan", "; ".join(s.call() for s in steps), reasons)

    def allow_subgoal(self, now_s: float) -> bool:
        """Whether a subgoal may be dispatched at time `now_s` (s); counts it when it may."""
        if self.max_subgoals_per_minute is None:
            return True
        while self._dispatched and now_s - self._dispatched[0] >= 60.0:
            self._dispatched.popleft()
        if len(self._dispatched) >= self.max_subgoals_per_minute:
            LOG.warning("safety: subgoal refused at t=%.1f s: %d subgoals in the last minute, limit %s",
                        now_s, len(self._dispatched), self.max_subgoals_per_minute)
            return False
        self._dispatched.append(now_s)
        return True

    def _workspace_reasons(self, steps: Sequence[Subgoal], scene: SymbolicScene) -> list[str]:
        """Pushes whose block, where its position is known, would end outside the workspace box."""
        positions = {c: (p[0], p[1]) for c, p in scene.positions.items()}
        reasons = []
        for index, step in enumerate(steps, start=1):
            color = step.arguments["color"]
            direction = PUSH_DIRECTIONS.get(step.skill)
            if direction is None:
                positions.pop(color, None)  # moved somewhere the planner cannot predict
                continue
            if color not in positions:
                continue
            x, y = (p + self.push_distance * d for p, d in zip(positions[color], direction))
            positions[color] = (x, y)
            (x_lo, y_lo), (x_hi, y_hi) = self.workspace_low, self.workspace_high
            if not (x_lo <= x <= x_hi and y_lo <= y <= y_hi):
                reasons.append(f"step {index} {step.call()}: would push the {color} block out of the "
                               f"workspace to ({x:.2f}, {y:.2f}) m (box x {x_lo}..{x_hi}, y {y_lo}..{y_hi})")
        return reasons

    @staticmethod
    def _logged(what: str, subject: str, reasons: list[str]) -> list[str]:
        if reasons:
            LOG.warning("safety: %s rejected (%s): %s", what, subject, "; ".join(reasons))
        return reasons

    # --- JSON --------------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self) if f.init}

    @classmethod
    def from_dict(cls, data: dict) -> SafetyRules:
        return config_from_dict(cls, data)
