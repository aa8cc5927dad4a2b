"""`agent-stack train vla` end to end: checkpoints load as policies, a killed run resumes exactly, two
DDP processes keep identical replicas, and bad invocations fail with a clear message."""

import json
import os
import signal
import subprocess
import sys
import time

from safetensors.torch import load_file

from agent_stack.checkpoint import checkpoint_steps, latest_checkpoint
from agent_stack.train.train_vla import main as train_vla_main
from agent_stack.vla import VLAPolicy
from tests.conftest import TINY_VLA_FLAGS

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def train_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "agent_stack.cli", "train", "vla", *args]


def train(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(train_command(*args), capture_output=True, text=True, env=ENV, timeout=600, check=False)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def tensors_equal(first, second) -> bool:
    a, b = load_file(str(first)), load_file(str(second))
    return a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_checkpoint_of_the_fixture_run_loads_as_a_policy(tiny_vla_checkpoint):
    policy = VLAPolicy.from_pretrained(tiny_vla_checkpoint.parent.parent)  # the run directory: latest checkpoint
    assert policy.metadata["step"] == 20 and policy.control_hz == 10
    assert policy.config.state_dim == 14 and policy.config.image_size == 64
    state = json.loads((tiny_vla_checkpoint / "training_state.json").read_text())
    assert state["batches_taken"] == 20 and len(state["parameter_digests"]) == 1


def test_a_killed_run_resumes_exactly(tiny_tabletop_dataset, tmp_path):
    flags = ["--data", str(tiny_tabletop_dataset), "--steps", "12", "--save-every", "4", "--grad-accumulation", "2",
             "--ema-decay", "0.9", *TINY_VLA_FLAGS]
    # The uninterrupted run goes alongside the one to be killed: most of each is start-up, one per core.
    whole_run = subprocess.Popen(train_command("--out", str(tmp_path / "whole"), *flags), env=ENV,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen(train_command("--out", str(killed), *flags), env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not checkpoint_steps(killed) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stopped_at = max(checkpoint_steps(killed))
    assert stopped_at < 12, "the run finished before it could be killed"
    output, _ = whole_run.communicate(timeout=600)
    assert whole_run.returncode == 0, output

    train("--out", str(killed), "--resume", "--no-progress")
    whole, resumed = latest_checkpoint(tmp_path / "whole"), latest_checkpoint(killed)
    assert resumed.name == whole.name == "step_00000012"
    for name in ("model.safetensors", "training_state.safetensors"):  # EMA policy weights; raw weights + Adam
        assert tensors_equal(whole / name, resumed / name), name


def test_two_ddp_processes_keep_identical_replicas(tiny_tabletop_dataset, tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "agent_stack.train.train_vla", "--data", str(tiny_tabletop_dataset), "--out", str(out),
               "--steps", "6", "--save-every", "3", *TINY_VLA_FLAGS, "--batch-size", "4"]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for directory in checkpoint_steps(out).values():
        state = json.loads((directory / "training_state.json").read_text())
        assert state["world_size"] == 2
        assert len(set(state["parameter_digests"])) == 1, state["parameter_digests"]
    first = load_file(str(checkpoint_steps(out)[3] / "model.safetensors"))
    last = load_file(str(checkpoint_steps(out)[6] / "model.safetensors"))
    assert any(not bool((first[k] == last[k]).all()) for k in first), "training did not change the weights"


def test_bad_invocations_fail_with_a_message(tiny_tabletop_dataset, tmp_path, capsys):
    def fails(*args: str) -> str:
        assert train_vla_main(list(args)) == 2
        return capsys.readouterr().err

    assert "no run_config.json" in fails("--out", str(tmp_path / "nothing"), "--resume")
    assert "--data is required" in fails("--out", str(tmp_path / "x"))
    assert "not divisible" in fails("--out", str(tmp_path / "x"), "--data", str(tiny_tabletop_dataset),
                                    "--batch-size", "6", "--grad-accumulation", "4")
    assert "missing" in fails("--out", str(tmp_path / "x"), "--data", str(tmp_path / "missing"))
    assert "action_head must be one of" in fails("--out", str(tmp_path / "x"), "--data", str(tiny_tabletop_dataset),
                                  "--action-head", "diffusion")
