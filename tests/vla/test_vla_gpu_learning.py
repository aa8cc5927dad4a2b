"""benchmarks/vla_gpu_learning.py: the windows it gathers on the GPU machine are the pipeline's, and its
three phases (export here, train without TensorFlow, unpack here) give a checkpoint the policy loads."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from agent_stack.data.pipeline import DataConfig, Mixture
from agent_stack.data.rlds import iterate_numpy
from agent_stack.vla.policy import VLAPolicy
from tests.data.conftest import IMAGE_SIZE, write_dataset

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "vla_gpu_learning.py"
LENGTHS = [5, 7, 4, 6]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("vla_gpu_learning_bench", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.parametrize("action_space", ["delta", "target"])
def test_exported_samples_rebuild_the_pipeline_windows(tmp_path, action_space):
    bench = _load_benchmark()
    builder = write_dataset(tmp_path / "data", LENGTHS)
    exported = tmp_path / "samples.safetensors"
    bench.main(["export", "--data", str(builder), "--image-size", str(IMAGE_SIZE),
                "--action-space", action_space, "--out", str(exported)])
    samples = bench.Samples.load(exported, torch.device("cpu"))
    assert len(samples) == sum(LENGTHS)

    history, chunk = 3, 4
    config = DataConfig(datasets=[str(builder)], image_size=IMAGE_SIZE, history=history, action_chunk=chunk,
                        repeat=False, shuffle_buffer=0, action_space=action_space)
    mixture = Mixture(config)
    expected = list(iterate_numpy(mixture.dataset(train=False), mixture.sources))
    batch = samples.batch(torch.arange(len(samples)), history, chunk)
    for index, sample in enumerate(expected):
        observation = batch["observation"]
        for key in ("state", "pad_mask"):
            np.testing.assert_allclose(observation[key][index].numpy(), sample["observation"][key])
        for camera in ("image", "wrist_image"):  # JPEG keeps flat colours to within a level or two
            difference = observation[camera][index].int() - torch.tensor(sample["observation"][camera]).int()
            assert difference.abs().max() <= 2
        for key in ("action", "action_pad_mask", "terminate"):
            np.testing.assert_allclose(batch[key][index].numpy(), sample[key])
    first_episode = batch["instruction_embedding"][: LENGTHS[0]]
    assert torch.equal(first_episode, first_episode[:1].expand_as(first_episode))
    assert not torch.equal(batch["instruction_embedding"][0], batch["instruction_embedding"][-1])


@pytest.mark.parametrize("cameras,action_space", [("image,wrist_image", "delta"), ("image", "target")])
def test_training_without_tensorflow_gives_a_checkpoint_the_policy_loads(tmp_path, cameras, action_space):
    bench = _load_benchmark()
    builder = write_dataset(tmp_path / "data", LENGTHS)
    exported = tmp_path / "samples.safetensors"
    bench.main(["export", "--data", str(builder), "--image-size", str(IMAGE_SIZE), "--cameras", cameras,
                "--action-space", action_space, "--out", str(exported)])
    tiny = ("tiny:action_head=continuous,action_chunk=2,vision_depth=1,hidden_dim=32,depth=1,num_heads=2,"
            "tokens_per_camera=2")
    # The GPU machine has neither TensorFlow nor MuJoCo: no process of the training phase may import them.
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nsys.modules.update(tensorflow=None, tensorflow_datasets=None, mujoco=None)\n")
    command = [sys.executable, str(SCRIPT), "train", "--samples", str(exported), "--out", str(tmp_path),
               "--run", tiny, "--max-steps", "3", "--batch-size", "4", "--warmup-steps", "1",
               "--log-every", "1"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=SCRIPT.parents[1],
                            env={"PYTHONPATH": f"{blocker}:{SCRIPT.parents[1]}", "PATH": "/usr/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    log = (tmp_path / "tiny.log").read_text()
    assert "3 steps x 4" in log and "tensorflow" not in log.lower()

    checkpoint = tmp_path / "checkpoint"
    bench.main(["unpack", "--file", str(tmp_path / "tiny.safetensors"), "--out", str(checkpoint)])
    policy = VLAPolicy.from_pretrained(checkpoint)
    assert policy.config.action_chunk == 2 and policy.metadata["step"] == 3
    assert policy.config.cameras == tuple(cameras.split(",")) and policy.config.action_space == action_space
    metadata = json.loads((checkpoint / "metadata.json").read_text())
    assert metadata["train"]["script"] == "benchmarks/vla_gpu_learning.py"
    report = tmp_path / "diagnosis.json"
    bench.main(["diagnose", "--samples", str(exported), "--checkpoint", str(checkpoint),
                "--json", str(report)])
    errors = json.loads(report.read_text())["checkpoints"][str(checkpoint)]
    dims = 7 if action_space == "delta" else 10
    assert all(len(errors[part][kind]) == dims and np.isfinite(errors[part][kind]).all()
               for part in ("all steps", "first 8") for kind in ("error", "mean_baseline"))
    policy.reset("episode 1")
    frame = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    output = policy.act({"image": frame, "wrist_image": frame, "state": np.zeros(3, np.float32),
                         "ee_target": np.array([0.5, 0.0, 0.2, 1.0, 0.0, 0.0, 0.0])})
    assert output.chunk.shape == (2, 7 if action_space == "delta" else 8) and np.isfinite(output.chunk).all()
    assert output.action.shape == (7,) and np.isfinite(output.action).all()
