"""Task suite contract: registry, phrasings, parsing round trips, serialisation, arrangements, predicates.

Written against the public contract of `sim.tasks` only (FAMILIES, make_task, sample_task,
task_from_instruction, Task.to_dict / from_dict, task.arrange / success), so it holds whatever the
internals look like. Predicates are checked on hand-made SceneStates: one state a person would call
done and one or more they would not, per family.
"""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest

from sim.scene import (bin_half_size, footprint_half_size, object_kind, rectangles_overlap, sample_layout,
                       yaw_to_quat)
from sim.state import BLOCK_HALF_SIZE, COLORS, PAD_HALF_SIZE, ObjectState, SceneState
from sim.tasks import FAMILIES, make_task, recolour_instruction, sample_task, task_from_instruction

H = BLOCK_HALF_SIZE
HOME = np.array([0.45, 0.0, 0.25])
PAD_SPOTS = {"red": (0.30, -0.25), "green": (0.30, 0.25), "blue": (0.62, -0.25), "yellow": (0.62, 0.25)}
BIN_SPOT = (0.62, 0.0)


# --- hand-made scene states -------------------------------------------------------------------------------

def scene(blocks: dict[str, tuple[float, float, float]], grasped=(), ee=HOME, gripper=1.0) -> SceneState:
    """Blocks at (x, y, z) centres, unrotated; pads and bin out of the way; hand open at home unless told."""
    objects = {}
    for color in COLORS:
        x, y, z = blocks.get(color, _parking(color))
        objects[f"{color}_block"] = ObjectState(f"{color}_block", "block", color, np.array([x, y, z]),
                                                yaw_to_quat(0.0), np.full(3, H))
        px, py = PAD_SPOTS[color]
        objects[f"{color}_pad"] = ObjectState(f"{color}_pad", "pad", color, np.array([px, py, -0.002]),
                                              yaw_to_quat(0.0), np.array(PAD_HALF_SIZE))
    objects["bin"] = ObjectState("bin", "bin", None, np.array([*BIN_SPOT, 0.025]), yaw_to_quat(0.0),
                                 bin_half_size())
    return SceneState(objects=objects, ee_pos=np.asarray(ee, float), ee_quat=np.array([0.0, 1.0, 0.0, 0.0]),
                      gripper_opening=gripper, grasped=frozenset(f"{c}_block" for c in grasped),
                      table_height=0.0)


def _parking(color: str) -> tuple[float, float, float]:
    """Blocks not mentioned by a test sit in a row at the back, away from everything."""
    return 0.45 + 0.07 * list(COLORS).index(color), -0.33, H


def fields(template: str) -> list[str]:
    return re.findall(r"{(\w+)}", template)


def task_for(text: str):
    return task_from_instruction(text)


# --- registry and phrasings ------------------------------------------------------------------------------

def test_at_least_twelve_families_with_three_phrasings_each():
    assert len(FAMILIES) >= 12
    required = {"pick_up", "place_on_pad", "stack", "unstack", "push_left", "push_right", "push_forward",
                "push_backward", "put_near", "put_in_bin", "put_between"}
    assert required <= set(FAMILIES)
    for name, family in FAMILIES.items():
        assert len(family.phrasings) >= 3, name
        assert len(set(family.phrasings)) == len(family.phrasings), name


def every_phrasing():
    for name, family in FAMILIES.items():
        for index, template in enumerate(family.phrasings):
            yield pytest.param(name, template, id=f"{name}-{index}")


@pytest.mark.parametrize("family, template", list(every_phrasing()))
def test_every_phrasing_round_trips_for_every_colour_assignment(family, template):
    names = fields(template)
    for colors in itertools.permutations(COLORS, len(names)):
        args = dict(zip(names, colors))
        text = template.format(**args)
        task = task_from_instruction(text)
        assert task.family == family, text
        assert task.args == args, text
        again = task_from_instruction(task.instruction)  # the task's own instruction parses back to it
        assert (again.family, again.args) == (family, args)


def test_parsing_ignores_case_punctuation_articles_and_cube_synonym():
    expected = make_task("place_on_pad", color="red", target="green")
    for text in ("Put the RED cube on the green pad!", "  put the red block on the green pad.  ",
                 "please put the red cube on the green pad", "put red block on green pad"):
        task = task_from_instruction(text)
        assert (task.family, task.args) == (expected.family, expected.args), text


@pytest.mark.parametrize("text", ["dance a little", "put the purple block on the green pad", "",
                                  "stack the red block on the red block",
                                  "pick up the red block and the blue block"])
def test_unknown_or_invalid_instruction_raises_with_examples(text):
    with pytest.raises(ValueError) as error:
        task_from_instruction(text)
    message = str(error.value)
    if "purple" in text or "dance" in text:
        assert text in message and "pick up the red block" in message  # names it, lists example phrasings


def test_make_task_validates_family_and_colours():
    with pytest.raises(ValueError, match="family"):
        make_task("juggle", color="red")
    with pytest.raises(ValueError, match="colour"):
        make_task("pick_up", color="purple")
    with pytest.raises(ValueError):
        make_task("stack", color="red", target="red")
    with pytest.raises(ValueError):
        make_task("stack", color="red")  # missing target


def test_recolour_instruction_renames_every_colour_word_at_once():
    swap = {"red": "blue", "blue": "red"}
    assert recolour_instruction("put the red block on the blue pad", swap) == \
        "put the blue block on the red pad"
    cycle = {"red": "green", "green": "yellow", "yellow": "red"}
    assert recolour_instruction("stack the yellow block on the red block", cycle) == \
        "stack the red block on the green block"
    assert recolour_instruction("pick up the bluest thing", swap) == "pick up the bluest thing"  # whole words
    with pytest.raises(ValueError, match="one-to-one"):
        recolour_instruction("pick up the red block", {"red": "blue", "green": "blue"})


def test_task_is_plain_json_data():
    rng = np.random.default_rng(0)
    for name in FAMILIES:
        task = sample_task(name, rng)
        data = json.loads(json.dumps(task.to_dict()))
        back = type(task).from_dict(data)
        assert back == task and back.family == name and back.args == task.args


def test_sample_task_covers_families_and_is_seeded():
    first = [sample_task(None, np.random.default_rng(s)) for s in range(60)]
    again = [sample_task(None, np.random.default_rng(s)) for s in range(60)]
    assert [t.to_dict() for t in first] == [t.to_dict() for t in again]
    assert len({t.family for t in first}) >= 10
    with pytest.raises(ValueError):
        sample_task("juggle", np.random.default_rng(0))


# --- arrangements ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_arrange_keeps_layout_valid_and_task_unsolved(family):
    for seed in range(8):
        rng = np.random.default_rng(seed)
        task = sample_task(family, rng)
        layout = task.arrange(sample_layout(rng), rng)
        assert_no_overlap(layout)
        assert not task.success(resting_state(layout)), (family, seed)


def assert_no_overlap(layout):
    """No two table-level footprints of blocks / bin overlap (a stacked block is at another height)."""
    items = list(layout.items())
    for (name_a, a), (name_b, b) in itertools.combinations(items, 2):
        kinds = {object_kind(name_a), object_kind(name_b)}
        if "pad" in kinds or abs(a[2] - b[2]) > H:  # pads are flat; a stacked block is at another height
            continue
        assert not rectangles_overlap(a[:2], footprint_half_size(name_a), a[3],
                                      b[:2], footprint_half_size(name_b), b[3]), (name_a, name_b)


def resting_state(layout) -> SceneState:
    objects = {}
    for name, (x, y, z, yaw) in layout.items():
        kind = object_kind(name)
        color = None if kind == "bin" else name.rsplit("_", 1)[0]
        half = {"block": np.full(3, H), "pad": np.array(PAD_HALF_SIZE)}.get(kind, bin_half_size())
        objects[name] = ObjectState(name, kind, color, np.array([x, y, z]), yaw_to_quat(yaw), half)
    return SceneState(objects=objects, ee_pos=HOME.copy(), ee_quat=np.array([0.0, 1.0, 0.0, 0.0]),
                      gripper_opening=1.0, grasped=frozenset(), table_height=0.0)


def test_unstack_starts_with_the_block_on_its_base():
    rng = np.random.default_rng(3)
    task = task_for("take the red block off the green block")
    layout = task.arrange(sample_layout(rng), rng)
    red, green = layout["red_block"], layout["green_block"]
    assert np.linalg.norm(red[:2] - green[:2]) < 0.01 and red[2] == pytest.approx(green[2] + 2 * H, abs=0.003)


# --- predicates on hand-made states ----------------------------------------------------------------------

def test_pick_up():
    task = task_for("pick up the red block")
    assert task.success(scene({"red": (0.45, 0.0, 0.15)}, grasped=["red"], ee=(0.45, 0.0, 0.15), gripper=0.4))
    assert not task.success(scene({"red": (0.45, 0.0, H)}))  # on the table
    held_low = scene({"red": (0.45, 0.0, 0.06)}, grasped=["red"], ee=(0.45, 0.0, 0.06), gripper=0.4)
    assert not task.success(held_low)  # held, but only 3.5 cm up


def test_place_on_pad():
    task = task_for("put the red block on the green pad")
    px, py = PAD_SPOTS["green"]
    assert task.success(scene({"red": (px + 0.02, py - 0.02, H)}))
    assert not task.success(scene({"red": (px + 0.10, py, H)}))  # beside the pad
    assert not task.success(scene({"red": (px, py, 0.12)}, grasped=["red"], ee=(px, py, 0.12), gripper=0.4))


def test_stack():
    task = task_for("stack the red block on the green block")
    assert task.success(scene({"green": (0.45, 0.0, H), "red": (0.455, 0.005, 3 * H)}))
    assert not task.success(scene({"green": (0.45, 0.0, H), "red": (0.45, 0.08, H)}))  # beside
    in_hand = scene({"green": (0.45, 0.0, H), "red": (0.45, 0.0, 3 * H + 0.002)}, grasped=["red"],
                    ee=(0.45, 0.0, 3 * H), gripper=0.4)
    assert not task.success(in_hand)  # still in the hand
    assert not task.success(scene({"green": (0.45, 0.0, H), "red": (0.45, 0.04, 3 * H)}))  # would topple


def test_unstack():
    task = task_for("take the red block off the green block")
    assert task.success(scene({"green": (0.45, 0.0, H), "red": (0.45, 0.12, H)}))
    assert not task.success(scene({"green": (0.45, 0.0, H), "red": (0.45, 0.0, 3 * H)}))


@pytest.mark.parametrize("family, direction", [("push_left", (0, 1)), ("push_right", (0, -1)),
                                               ("push_forward", (1, 0)), ("push_backward", (-1, 0))])
def test_push_measures_displacement_from_the_start(family, direction):
    direction = np.array([*direction, 0.0])
    start = np.array([0.45, 0.0, H])
    task = make_task(family, color="red")
    assert not task.success(scene({"red": tuple(start)}))  # first look records where the block started
    assert task.success(scene({"red": tuple(start + 0.12 * direction)}))
    other = make_task(family, color="red")
    assert not other.success(scene({"red": tuple(start)}))
    assert not other.success(scene({"red": tuple(start + 0.05 * direction)}))  # not far enough
    assert not other.success(scene({"red": tuple(start - 0.12 * direction)}))  # the wrong way


def test_put_near():
    task = task_for("put the red block near the green block")
    assert task.success(scene({"green": (0.45, 0.0, H), "red": (0.45, 0.065, H)}))
    assert not task.success(scene({"green": (0.45, 0.0, H), "red": (0.45, 0.2, H)}))
    assert not task.success(scene({"green": (0.45, 0.0, H), "red": (0.45, 0.0, 3 * H)}))  # on it, not near it


def test_put_in_bin():
    task = task_for("put the red block in the bin")
    assert task.success(scene({"red": (BIN_SPOT[0] + 0.03, BIN_SPOT[1], H + 0.004)}))
    assert not task.success(scene({"red": (BIN_SPOT[0] - 0.2, BIN_SPOT[1], H)}))
    above = scene({"red": (*BIN_SPOT, 0.15)}, grasped=["red"], ee=(*BIN_SPOT, 0.15), gripper=0.4)
    assert not task.success(above)  # still in the hand over the bin


def test_put_between():
    task = task_for("put the red block between the green block and the blue block")
    outer = {"green": (0.45, -0.1, H), "blue": (0.45, 0.1, H)}
    assert task.success(scene({**outer, "red": (0.46, 0.01, H)}))
    assert not task.success(scene({**outer, "red": (0.45, 0.2, H)}))  # beyond the blue block
    assert not task.success(scene({**outer, "red": (0.6, 0.0, H)}))  # off the line


@pytest.mark.parametrize("text, side", [("put the red block to the left of the green block", 1.0),
                                        ("put the red block to the right of the green block", -1.0)])
def test_put_left_or_right_of(text, side):
    task = task_for(text)
    assert task.success(scene({"green": (0.45, 0.0, H), "red": (0.45, side * 0.09, H)}))
    assert not task.success(scene({"green": (0.45, 0.0, H), "red": (0.45, -side * 0.09, H)}))  # other side
    assert not task.success(scene({"green": (0.45, 0.0, H), "red": (0.6, side * 0.09, H)}))  # far in front
