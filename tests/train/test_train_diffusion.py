"""`agent-stack train control --algo diffusion` and `agent-stack eval control --algo diffusion` end to end on
a tiny dataset: checkpoints load as policies, a run continued from a mid-run checkpoint ends with exactly
the weights of the uninterrupted run, evaluation writes its summary, bad invocations fail clearly."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from agent_stack.checkpoint import checkpoint_steps
from agent_stack.control.diffusion import DiffusionPolicy
from agent_stack.train import train_control
from sim.evaluate import main as evaluate
from tests.conftest import run_agent_stack
from tests.train.test_train_vla import ENV, tensors_equal

TINY = ("--image-size", "64", "--crop-size", "56", "--vision-widths", "16,16,32,32", "--down-dims", "16,32",
        "--pred-horizon", "8", "--action-steps", "4", "--diffusion-step-embed-dim", "16", "--batch-size", "4",
        "--shuffle-buffer", "32", "--warmup-steps", "2", "--no-progress")
REPOSITORY = Path(__file__).resolve().parents[2]
CONTACT_HEAD_BENCHMARK = REPOSITORY / "benchmarks" / "diffusion_contact_head.py"


def test_train_resume_and_evaluate(tiny_tabletop_dataset, tmp_path):
    whole = tmp_path / "whole"
    run_agent_stack("train", "control", "--algo", "diffusion", "--data", str(tiny_tabletop_dataset),
                    "--out", str(whole), "--steps", "6", "--save-every", "3", *TINY)
    steps = checkpoint_steps(whole)
    assert sorted(steps) == [3, 6]
    policy = DiffusionPolicy.from_pretrained(whole)
    assert policy.metadata["step"] == 6 and policy.metadata["policy"] == "diffusion"
    assert policy.config.goal == "language" and policy.config.state_dim == 14
    assert policy.config.cameras == ("image", "wrist_image") and policy.control_hz == 10

    # As if killed after step 3: the copy continues from that checkpoint.
    resumed = tmp_path / "resumed"
    shutil.copytree(whole, resumed)
    shutil.rmtree(resumed / "checkpoints" / steps[6].name)
    run_agent_stack("train", "control", "--algo", "diffusion", "--out", str(resumed), "--resume", "--no-progress")
    assert tensors_equal(steps[6] / "model.safetensors", checkpoint_steps(resumed)[6] / "model.safetensors")
    assert tensors_equal(steps[6] / "training_state.safetensors",
                         checkpoint_steps(resumed)[6] / "training_state.safetensors")

    evaluation = tmp_path / "eval"
    assert evaluate(["control", "--algo", "diffusion", "--checkpoint", str(whole), "--tasks", "pick_up",
                     "--episodes", "1", "--max-steps", "6", "--videos", "1", "--out", str(evaluation)]) == 0
    summary = json.loads((evaluation / "summary.json").read_text())
    assert summary["policy"] == "diffusion" and summary["step"] == 6 and summary["image_size"] == 64
    assert summary["families"]["pick_up"]["episodes"] == 1 and summary["episodes"][0]["steps"] == 6
    assert len(list((evaluation / "videos").glob("*.mp4"))) == 1


def test_target_action_space_film_keypoint_encoder_no_state_and_contact_conditioning_train_and_evaluate(
        tiny_tabletop_dataset, tmp_path):
    out = tmp_path / "target"
    assert train_control.main(["--algo", "diffusion", "--data", str(tiny_tabletop_dataset), "--out", str(out),
                               "--steps", "2", "--save-every", "2", "--action-space", "target", "--cameras",
                               "image", *TINY, "--vision-backbone", "keypoint_gn", "--vision-widths", "16",
                               "--vision-film", "--no-state", "--position-loss-weight", "1",
                               "--contact-conditioning"]) == 0
    policy = DiffusionPolicy.from_pretrained(out)
    assert policy.config.action_space == "target" and policy.config.action_dim == 10
    assert policy.config.vision_backbone == "keypoint_gn" and policy.config.vision_film
    assert policy.config.state_dim == 0 and policy.config.position_loss_weight == 1.0
    assert policy.config.contact_conditioning
    assert policy.statistics.target is not None and policy.statistics.target.dim == 10
    # The evaluation hands the policy the env's end-effector target, to turn its targets into deltas.
    evaluation = tmp_path / "eval"
    assert evaluate(["control", "--algo", "diffusion", "--checkpoint", str(out), "--tasks", "pick_up",
                     "--episodes", "1", "--max-steps", "6", "--videos", "0", "--out", str(evaluation)]) == 0
    assert json.loads((evaluation / "summary.json").read_text())["episodes"][0]["steps"] == 6
    # The benchmark that checks the head on the evaluation episodes' first frames reads this checkpoint.
    result = tmp_path / "contact_head.json"
    completed = subprocess.run([sys.executable, str(CONTACT_HEAD_BENCHMARK), "--checkpoint", str(out),
                                "--episodes", "2", "--out", str(result)], capture_output=True, text=True,
                               cwd=REPOSITORY, timeout=300)
    assert completed.returncode == 0, completed.stderr
    written = json.loads(result.read_text())
    (head,) = written["heads"]
    assert written["episodes"] == 2 and head["step"] == 2 and head["median_error_cm"] >= 0


def test_bad_invocations_fail_with_one_line(tiny_tabletop_dataset, tmp_path, capsys):
    """The configuration errors in-process (the command's exit code and stderr; a subprocess each would
    spend most of a minute importing); the missing checkpoint as a user meets it, with no traceback."""
    for args, message in [
        (("--algo", "ppo"), "invalid choice: 'ppo'"),
        (("--algo", "diffusion", "--out", str(tmp_path / "a")), "--data is required"),
        (("--algo", "diffusion", "--out", str(tmp_path / "b"), "--data", str(tiny_tabletop_dataset),
          "--pred-horizon", "10"), "pred_horizon (10) must be divisible by 4"),
        (("--algo", "diffusion", "--out", str(tmp_path / "c"), "--data", str(tiny_tabletop_dataset),
          "--down-dims", "16,x"), "--down-dims '16,x': expected comma-separated int values"),
        (("--algo", "diffusion", "--out", str(tmp_path / "d"), "--resume"), "has no run_config.json"),
    ]:
        try:
            code = train_control.main(list(args))
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
        stderr = capsys.readouterr().err
        assert code == 2 and message in stderr, (args, stderr[-2000:])
    result = subprocess.run([sys.executable, "-m", "agent_stack.cli", "eval", "control", "--algo", "diffusion",
                             "--checkpoint", str(tmp_path / "none"), "--tasks", "pick_up", "--episodes", "1"],
                            capture_output=True, text=True, env=ENV, timeout=300, check=False)
    assert result.returncode == 2 and "cannot load a diffusion checkpoint" in result.stderr
    assert "Traceback" not in result.stderr
