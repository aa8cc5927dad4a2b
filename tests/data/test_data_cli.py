"""`agent-stack data stats | show | list` on a dataset the test writes."""

from __future__ import annotations

import json

import imageio.v3 as iio
import pytest

from agent_stack.data.cli import main
from tests.data.conftest import WITH_WRIST


def test_stats_prints_caches_and_emits_json(dataset_dir, capsys):
    assert main(["stats", "--dataset", str(dataset_dir)]) == 0
    out = capsys.readouterr().out
    assert "6 episodes, 35 steps" in out and "gripper" in out and "cached in" in out
    assert "target action" in out and "r11" in out
    assert (dataset_dir / "agent_stack_statistics_train.json").is_file()
    assert main(["stats", "--dataset", WITH_WRIST, "--data-dir", str(dataset_dir.parent.parent), "--json"]) == 0
    statistics = json.loads(capsys.readouterr().out)
    assert statistics["num_steps"] == 35 and statistics["action"]["max"][0] == 7.0
    assert statistics["target"]["max"][:3] == pytest.approx([7.0, 5.0, 0.2])  # conftest.target_pose


def test_show_writes_a_video_of_both_cameras(dataset_dir, tmp_path, capsys):
    out = tmp_path / "episode.mp4"
    assert main(["show", "--dataset", str(dataset_dir), "--episode", "1", "--size", "32", "--out", str(out)]) == 0
    frames = iio.imread(out)
    assert frames.shape == (7, 32, 64, 3)  # 7 steps, primary | wrist side by side
    assert "['episode 1']" in capsys.readouterr().out


def test_list_names_the_supported_datasets(capsys):
    assert main(["list"]) == 0
    names = capsys.readouterr().out.split()
    assert "fractal20220817_data" in names and "agent_stack_tabletop" in names


def test_errors_exit_2_with_a_message(dataset_dir, tmp_path, capsys):
    assert main(["stats", "--dataset", "no_such_dataset", "--data-dir", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["show", "--dataset", str(dataset_dir), "--episode", "9", "--out", str(tmp_path / "x.mp4")]) == 2
    assert "has 6 episodes" in capsys.readouterr().err
    assert main(["stats", "--dataset", str(dataset_dir), "--split", "test"]) == 2
    assert "no split 'test'" in capsys.readouterr().err
