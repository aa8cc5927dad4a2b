"""The VLA's structure: shapes of both heads, masking of padded frames and missing cameras, block
causality, the policy's cached inference against the batched forward, and checkpoints."""

import dataclasses

import numpy as np
import pytest
import torch

from agent_stack.checkpoint import WEIGHTS_FILE
from agent_stack.control.osc import apply_ee_delta
from agent_stack.normalization import DatasetStatistics, Statistics
from agent_stack.vla import VLAConfig, VLAModel, VLAPolicy

SIZE = 32
TINY = {"image_size": SIZE, "vision_depth": 1, "hidden_dim": 32, "depth": 2, "num_heads": 2, "tokens_per_camera": 2,
        "state_dim": 14, "dropout": 0.0}


def make_batch(batch=3, history=2, chunk=1, seed=0, action_dim=7):
    g = torch.Generator().manual_seed(seed)

    def image():
        return torch.randint(0, 256, (batch, history, SIZE, SIZE, 3), dtype=torch.uint8, generator=g)

    action = torch.rand(batch, chunk, action_dim, generator=g) * 2 - 1
    action[..., -1] = (action[..., -1] > 0).float()
    return {
        "observation": {"image": image(), "wrist_image": image(), "state": torch.randn(batch, history, 14, generator=g),
                        "pad_mask": torch.ones(batch, history, dtype=torch.bool),
                        "has_wrist_image": torch.ones(batch, dtype=torch.bool)},
        "instruction_embedding": torch.randn(batch, 384, generator=g),
        "action": action, "action_pad_mask": torch.ones(batch, chunk, dtype=torch.bool),
        "terminate": torch.zeros(batch, chunk, dtype=torch.bool),
    }


@pytest.mark.parametrize("action_space,action_dim", [("delta", 7), ("target", 10)])
@pytest.mark.parametrize("head", ["discrete", "continuous"])
def test_both_heads_give_a_finite_loss_and_gradients_everywhere(head, action_space, action_dim):
    torch.manual_seed(0)
    model = VLAModel(VLAConfig(**TINY, action_head=head, action_chunk=3, action_space=action_space))
    loss, metrics = model(make_batch(chunk=3, action_dim=action_dim))
    loss.backward()
    assert torch.isfinite(loss) and set(metrics) >= {"action_loss", "terminate_loss"}
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert no_grad == [], no_grad
    action_output, terminate = model.outputs(make_batch(chunk=3, action_dim=action_dim))
    expected = (3, 3, action_dim, 256) if head == "discrete" else (3, 3, action_dim)
    assert action_output.shape == expected and terminate.shape == (3, 3)
    assert model.decode_actions(action_output).shape == (3, 3, action_dim)


def test_padded_frames_and_missing_cameras_do_not_change_the_output():
    torch.manual_seed(0)
    model = VLAModel(VLAConfig(**TINY)).eval()
    batch = make_batch()
    batch["observation"]["pad_mask"][:, 0] = False
    batch["observation"]["has_wrist_image"][:] = False
    other = make_batch(seed=1)
    changed = {**batch, "observation": dict(batch["observation"])}
    changed["observation"]["image"] = batch["observation"]["image"].clone()
    changed["observation"]["image"][:, 0] = other["observation"]["image"][:, 0]  # padded frame's content
    changed["observation"]["wrist_image"] = other["observation"]["wrist_image"]  # missing camera's content
    changed["observation"]["state"] = batch["observation"]["state"].clone()
    changed["observation"]["state"][:, 0] = 0.0
    with torch.no_grad():
        first, second = model.outputs(batch)[0], model.outputs(changed)[0]
    assert torch.allclose(first, second, atol=1e-5)
    with torch.no_grad():  # ... while a real frame's content does change it
        changed["observation"]["image"][:, 1] = other["observation"]["image"][:, 1]
        assert not torch.allclose(first, model.outputs(changed)[0], atol=1e-3)


def test_instruction_changes_the_output_through_film_and_prefix():
    torch.manual_seed(0)
    for film, prefix in ((True, 0), (False, 1)):
        model = VLAModel(VLAConfig(**{**TINY, "film": film, "language_tokens": prefix})).eval()
        for module in model.modules():  # FiLM starts as the identity; give it a non-zero map for the check
            if module.__class__.__name__ == "FiLM":
                torch.nn.init.normal_(module.project.weight, std=0.1)
        batch = make_batch()
        other = {**batch, "instruction_embedding": make_batch(seed=3)["instruction_embedding"]}
        with torch.no_grad():
            assert not torch.allclose(model.outputs(batch)[0], model.outputs(other)[0], atol=1e-4)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="action_head"):
        VLAConfig(action_head="diffusion")
    with pytest.raises(ValueError, match="action_space"):
        VLAConfig(action_space="joint")
    with pytest.raises(ValueError, match="cameras"):
        VLAConfig(cameras=("left",))
    with pytest.raises(ValueError, match="film=True or language_tokens"):
        VLAConfig(film=False, language_tokens=0)
    with pytest.raises(ValueError, match="unknown VLAConfig fields"):
        VLAConfig.from_dict({"hidden": 3})
    config = VLAConfig(**TINY)
    assert VLAConfig.from_dict(config.to_dict()) == config


def statistics() -> DatasetStatistics:
    action = Statistics(mean=[0.0] * 7, std=[1.0] * 7, min=[-0.05] * 6 + [0.0], max=[0.05] * 6 + [1.0],
                        p01=[-0.04] * 6 + [0.0], p99=[0.04] * 6 + [1.0])
    state = Statistics(mean=[0.0] * 14, std=[1.0] * 14, min=[-1.0] * 14, max=[1.0] * 14, p01=[-1.0] * 14,
                       p99=[1.0] * 14)
    # Targets: x y z within 0.3..0.7 / -0.2..0.2 / 0.0..0.4 m, the 6-D rotation within -1..1, the gripper.
    low, high = [0.3, -0.2, 0.0] + [-1.0] * 6 + [0.0], [0.7, 0.2, 0.4] + [1.0] * 6 + [1.0]
    target = Statistics(mean=[0.0] * 10, std=[1.0] * 10, min=low, max=high, p01=low, p99=high)
    return DatasetStatistics("test", "train", "x", 1, 10, action, state, target)


def test_policy_with_cached_frames_matches_the_batched_model(tmp_path):
    torch.manual_seed(0)
    model = VLAModel(VLAConfig(**{**TINY, "history": 3}))
    VLAPolicy(model, statistics(), {"control_hz": 10.0}).save_pretrained(tmp_path)
    policy = VLAPolicy.from_pretrained(tmp_path)
    assert policy.control_hz == 10.0
    rng = np.random.default_rng(0)
    frames = [{"image": rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8),
               "wrist_image": rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8),
               "state": rng.uniform(-1, 1, 14)} for _ in range(4)]
    policy.reset("pick up the red block")
    outputs = [policy.act(frame) for frame in frames]
    language = torch.from_numpy(policy._encoder(["pick up the red block"]))
    for t in (0, 3):  # t=0 pads two frames; t=3 has slid past the first frame
        window = [frames[max(0, i)] for i in range(t - 2, t + 1)]
        batch = {"observation": {
            key: torch.from_numpy(np.stack([f[key] for f in window]))[None] for key in ("image", "wrist_image")},
            "instruction_embedding": language}
        batch["observation"]["state"] = torch.from_numpy(
            np.stack([policy.statistics.state.normalize(f["state"]) for f in window]))[None].float()
        batch["observation"]["pad_mask"] = torch.tensor([[i >= 0 for i in range(t - 2, t + 1)]])
        batch["observation"]["has_wrist_image"] = torch.tensor([True])
        with torch.no_grad():
            action_output, terminate = policy.model.outputs(batch)
        expected = policy.statistics.denormalize_action(policy.model.decode_actions(action_output)[0].numpy())
        np.testing.assert_allclose(outputs[t].chunk, expected, atol=1e-5)
        assert outputs[t].terminate == pytest.approx(float(torch.sigmoid(terminate[0, 0])), abs=1e-5)
    assert outputs[0].action.shape == (7,) and 0.0 <= outputs[0].action[6] <= 1.0
    assert np.all(np.abs(outputs[0].action[:6]) <= 0.04 + 1e-6)


def test_policy_rejects_bad_observations_and_resizes_other_sizes(tmp_path):
    torch.manual_seed(0)
    policy = VLAPolicy(VLAModel(VLAConfig(**TINY)), statistics())
    with pytest.raises(RuntimeError, match="reset"):
        policy.act({})
    policy.reset("pick up the red block")
    good = {"image": np.zeros((SIZE, SIZE, 3), np.uint8), "state": np.zeros(14)}
    with pytest.raises(ValueError, match="uint8"):
        policy.act({**good, "image": np.zeros((SIZE, SIZE, 3), np.float32)})
    with pytest.raises(ValueError, match="state"):
        policy.act({"image": good["image"]})
    with pytest.raises(ValueError, match="14 finite"):
        policy.act({**good, "state": np.full(14, np.nan)})
    out = policy.act({**good, "image": np.zeros((48, 64, 3), np.uint8)})  # no wrist camera: masked
    assert out.action.shape == (7,)
    with pytest.raises(ValueError, match="instruction"):
        policy.reset("  ")


def test_a_target_policy_moves_the_controller_target_onto_its_predicted_pose(tmp_path):
    torch.manual_seed(0)
    model = VLAModel(VLAConfig(**TINY, action_space="target", action_chunk=2))
    VLAPolicy(model, statistics()).save_pretrained(tmp_path)
    policy = VLAPolicy.from_pretrained(tmp_path)
    policy.reset("pick up the red block")
    observation = {"image": np.zeros((SIZE, SIZE, 3), np.uint8), "state": np.zeros(14)}
    with pytest.raises(ValueError, match="ee_target"):
        policy.act(observation)
    reference = np.array([0.5, 0.0, 0.2, 1.0, 0.0, 0.0, 0.0])
    out = policy.act({**observation, "ee_target": reference})
    assert out.chunk.shape == (2, 8)  # x y z, quaternion, gripper
    first = out.chunk[0]
    assert np.all(first[:3] >= [0.3, -0.2, 0.0]) and np.all(first[:3] <= [0.7, 0.2, 0.4])
    np.testing.assert_allclose(np.linalg.norm(first[3:7]), 1.0, atol=1e-5)
    # The delta, applied to the reference as the controller applies it (unclipped), lands on the pose.
    position, quat = apply_ee_delta(reference[:3], reference[3:], out.action[:6], np.inf, np.inf,
                                    np.full(3, -np.inf), np.full(3, np.inf))
    np.testing.assert_allclose(position, first[:3], atol=1e-5)
    assert abs(float(np.dot(quat, first[3:7]))) == pytest.approx(1.0, abs=1e-5)
    assert out.action[6] == first[7]


def test_checkpoint_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a checkpoint"):
        VLAPolicy.from_pretrained(tmp_path)
    model = VLAModel(VLAConfig(**TINY))
    VLAPolicy(model, statistics()).save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(
        __import__("json").dumps(VLAConfig(**{**TINY, "hidden_dim": 64}).to_dict()))
    with pytest.raises(ValueError, match="do not fit the model"):
        VLAPolicy.from_pretrained(tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="cannot read weights"):
        VLAPolicy.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ValueError, match="cannot read VLAConfig"):
        VLAPolicy.from_pretrained(tmp_path)


def test_vit_base_preset_builds_the_rtx_size():
    config = VLAConfig.vit_base()
    assert (config.image_size, config.history, config.hidden_dim) == (224, 6, 768)
    assert dataclasses.replace(config, depth=1).depth == 1
