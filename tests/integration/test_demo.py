"""`agent-stack demo` end to end: the command a new user runs first."""

from __future__ import annotations

import json
import subprocess
import sys

import imageio.v2 as imageio


def test_demo_succeeds_and_writes_a_video(ros_domain, tmp_path):
    video = tmp_path / "demo.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "agent_stack.cli", "demo", "--out", str(video), "--image-size", "160", "120",
         "--instruction", "Move the blue cube onto the yellow pad.", "--seed", "2"],  # not the canonical phrasing
        capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
    assert summary["success"] is True and summary["video"] == str(video.resolve())
    assert 0 < summary["sim_time_s"] < 60
    frames = [frame for frame in imageio.get_reader(video)]  # list() would ask len(): inf for MP4
    assert len(frames) > 20 and frames[0].shape == (120, 160, 3)


def test_demo_rejects_an_unknown_instruction_before_launching(ros_domain):
    result = subprocess.run([sys.executable, "-m", "agent_stack.cli", "demo", "--instruction", "fly to the moon"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "fly to the moon" in result.stderr
