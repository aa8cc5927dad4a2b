"""`agent-stack sim tasks` lists the task suite through the top-level CLI dispatcher."""

from __future__ import annotations

from agent_stack.cli import main
from sim.tasks import FAMILIES, list_tasks


def test_sim_tasks_lists_every_family(capsys):
    assert main(["sim", "tasks"]) == 0
    out = capsys.readouterr().out
    assert all(f"{family} (" in out for family in FAMILIES)
    assert out.strip().endswith(f"{len(FAMILIES)} families, {len(list_tasks())} tasks")


def test_sim_tasks_family_and_unknown_family(capsys):
    assert main(["sim", "tasks", "--family", "place_on_pad"]) == 0
    assert "put the red block on the green pad" in capsys.readouterr().out
    assert main(["sim", "tasks", "--family", "juggle"]) == 2
    assert "unknown task family 'juggle'" in capsys.readouterr().err
