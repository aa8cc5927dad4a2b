"""Diffusion Policy pieces that are easy to get wrong: the config's checks, spatial softmax coordinates,
the U-Net's shapes and conditioning, its convolution against PyTorch's, the action mapping, DDPM learning
on a fixed batch, DDIM sampling with the exact noise, and the policy's receding horizon, checkpoint round
trip and input checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from agent_stack.control.diffusion import DiffusionConfig, DiffusionModel, DiffusionPolicy
from agent_stack.control.diffusion.modeling_diffusion import (
    ConditionalUnet1D,
    ImageEncoder,
    SpatialSoftmax,
    TemporalConv1d,
    from_model_actions,
    to_model_actions,
)
from agent_stack.control.osc import apply_ee_delta, orientation_error
from agent_stack.normalization import DatasetStatistics, Statistics

TINY = dict(image_size=32, crop_size=28, vision_widths=(16, 16, 16, 16), spatial_keypoints=4,
            image_feature_dim=8, down_dims=(16, 32), diffusion_step_embed_dim=16, pred_horizon=8,
            action_steps=4, state_dim=14, goal="none", goal_dim=0)


def tiny_batch(batch: int, config: DiffusionConfig, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    frames = (batch, config.obs_horizon, config.image_size, config.image_size, 3)
    return {"observation": {camera: torch.randint(0, 256, frames, dtype=torch.uint8, generator=generator)
                            for camera in config.cameras}
            | {"state": torch.randn(batch, config.obs_horizon, 14, generator=generator)},
            "action": torch.rand(batch, config.pred_horizon, 7, generator=generator) * 2 - 1}


def statistics(dim: int = 14) -> DatasetStatistics:
    def stats(n: int) -> Statistics:
        return Statistics(mean=[0.0] * n, std=[1.0] * n, min=[-2.0] * n, max=[2.0] * n, p01=[-0.05] * n,
                          p99=[0.05] * n)
    return DatasetStatistics("agent_stack_tabletop", "train", "x", 1, 10, stats(7), stats(dim))


def fit(model: DiffusionModel, make_batch, steps: int) -> None:
    """AdamW at 3e-3 on `make_batch(step)` for `steps` steps, then evaluation mode."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(steps):
        loss, _ = model(make_batch(step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


@pytest.mark.parametrize("overrides, field", [
    ({"action_steps": 20}, "action_steps"),
    ({"pred_horizon": 10}, "pred_horizon"),
    ({"cameras": ("depth",)}, "cameras"),
    ({"crop_size": 200}, "crop_size"),
    ({"goal": "speech"}, "goal"),
    ({"goal": "none"}, "goal"),
    ({"vision_widths": (8, 16, 32, 64)}, "vision_widths"),
    ({"vision_widths": (16, 32)}, "vision_widths"),
    ({"vision_backbone": "keypoint_gn", "vision_widths": (16,) * 5}, "vision_widths"),
    ({"vision_film": True, "goal": "none", "goal_dim": 0}, "vision_film"),
    ({"vision_film": True, "vision_backbone": "resnet18"}, "vision_film"),
    ({"vision_film": 1}, "vision_film"),
    ({"cameras": (), "state_dim": 0}, "observes nothing"),
    ({"position_loss_weight": -1.0}, "position_loss_weight"),
    ({"position_loss_weight": True}, "position_loss_weight"),
    ({"position_loss_weight": 1.0, "cameras": ("wrist_image",), "action_space": "target", "action_dim": 10},
     "'image' camera"),
    ({"position_loss_weight": 1.0}, "action_space 'target'"),
    ({"contact_conditioning": 1}, "contact_conditioning"),
    ({"contact_conditioning": True, "action_space": "target", "action_dim": 10}, "position_loss_weight > 0"),
    ({"num_inference_steps": 200}, "num_inference_steps"),
    ({"action_space": "joint"}, "action_space"),
    ({"action_space": "target"}, "action_dim 10"),
    ({"action_space": "target", "action_dim": 10, "goal": "ee_target", "goal_dim": 3}, "needs action_space"),
])
def test_config_refuses_bad_values_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        DiffusionConfig(**overrides)


def test_config_json_round_trip(tmp_path):
    config = DiffusionConfig.paper(cameras=("image",))
    config.save(tmp_path / "config.json")
    assert DiffusionConfig.load(tmp_path / "config.json") == config
    assert config.down_dims == (256, 512, 1024) and config.vision_widths == (64, 128, 256, 512)
    with pytest.raises(ValueError, match="unknown DiffusionConfig fields"):
        DiffusionConfig.from_dict({"obs_horizon": 2, "horizon": 3})


def test_spatial_softmax_reads_out_the_peak_position():
    pool = SpatialSoftmax(channels=1, height=5, width=9, num_keypoints=1)
    with torch.no_grad():
        pool.keypoints.weight.fill_(1.0)
        pool.keypoints.bias.zero_()
    features = torch.zeros(1, 1, 5, 9)
    features[0, 0, 1, 6] = 50.0  # row 1 of 5 -> y = -0.5, column 6 of 9 -> x = 0.5
    assert torch.allclose(pool(features), torch.tensor([[0.5, -0.5]]), atol=1e-4)


def test_keypoint_encoder_keeps_half_the_resolution_and_film_lets_the_goal_pick_features():
    config = DiffusionConfig(**{**TINY, "goal": "language", "goal_dim": 384, "cameras": ("image",),
                                "vision_backbone": "keypoint_gn", "vision_widths": (16, 32),
                                "vision_film": True})
    encoder = ImageEncoder(config).eval()
    assert encoder.pool.grid.shape[0] == (config.crop_size // 2) ** 2
    images = torch.randint(0, 256, (2, 2, 32, 32, 3), dtype=torch.uint8)
    goals = torch.randn(2, 384)
    features = encoder(images, goals)
    assert features.shape == (2, 2, config.image_feature_dim)
    assert torch.allclose(features, encoder(images, -goals))  # FiLM starts as the identity
    encoder.train()(images, goals).square().sum().backward()
    assert all(layer.weight.grad.abs().sum() > 0 for layer in encoder.film)

    with torch.no_grad():
        for layer in encoder.film:
            layer.weight.normal_(std=0.05)
    encoder.eval()
    features = encoder(images, goals)
    assert not torch.allclose(features, encoder(images, -goals))
    # both frames of a sample are modulated by that sample's goal
    assert torch.allclose(encoder(images.flip(0), goals.flip(0)), features.flip(0), atol=1e-5)
    with pytest.raises(ValueError, match="FiLM"):
        encoder(images)


def test_unet_keeps_the_chunk_shape_and_listens_to_its_condition():
    config = DiffusionConfig(**{**TINY, "cameras": ()})
    unet = ConditionalUnet1D(config).eval()
    chunk = torch.randn(3, config.pred_horizon, 7)
    steps = torch.tensor([0, 50, 99])
    cond = torch.randn(3, config.global_cond_dim)
    out = unet(chunk, steps, cond)
    assert out.shape == chunk.shape
    assert not torch.allclose(out, unet(chunk, steps, cond + 1.0))
    assert not torch.allclose(out, unet(chunk, steps.flip(0), cond))


@pytest.mark.parametrize("kernel, stride, padding, length",
                         [(5, 1, 2, 16), (3, 2, 1, 16), (3, 2, 1, 7), (1, 1, 0, 4)])
def test_temporal_conv_matches_torch_conv1d_and_its_gradients(kernel, stride, padding, length):
    ours = TemporalConv1d(6, 10, kernel, stride, padding)
    reference = torch.nn.Conv1d(6, 10, kernel, stride, padding)
    reference.load_state_dict(ours.state_dict())  # same parameters, same names: checkpoints load either way
    x = torch.randn(3, 6, length, requires_grad=True)
    out, expected = ours(x), reference(x)
    assert out.shape == expected.shape and torch.allclose(out, expected, atol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), [x, ours.weight, ours.bias])
    expected_grads = torch.autograd.grad(expected.square().sum(), [x, reference.weight, reference.bias])
    for grad, expected_grad in zip(grads, expected_grads):
        assert torch.allclose(grad, expected_grad, atol=1e-4)
    with pytest.raises(ValueError, match="groups=1"):
        TemporalConv1d(6, 10, 3, groups=2)


def test_action_mapping_round_trip_and_gripper_range():
    actions = torch.rand(4, 8, 7) * 2 - 1
    actions[..., 6] = torch.rand(4, 8)
    mapped = to_model_actions(actions)
    assert mapped[..., 6].min() >= -1 and mapped[..., 6].max() <= 1
    assert torch.allclose(from_model_actions(mapped), actions, atol=1e-6)


def test_ddpm_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    config = DiffusionConfig(**{**TINY, "cameras": ()})
    model = DiffusionModel(config)
    batch = tiny_batch(16, config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        loss, _ = model(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-20:]) < 0.8 * np.mean(losses[:10])


def test_position_loss_teaches_the_encoder_where_the_contact_point_is():
    """The episode's first frame holds one bright square, the demonstration's contact point (the current
    frames are blank). The auxiliary head, reading image features only, must learn to place it on images it
    has not seen; the paper's loss alone keeps no such head."""
    torch.manual_seed(0)
    config = DiffusionConfig(**{**TINY, "cameras": ("image",), "crop_size": 32, "state_dim": 0,
                                "vision_backbone": "keypoint_gn", "vision_widths": (16,),
                                "action_space": "target", "action_dim": 10, "position_loss_weight": 1.0})
    assert DiffusionModel(dataclasses.replace(config, position_loss_weight=0.0)).position_head is None

    def squares(batch: int, seed: int) -> dict:
        generator = torch.Generator().manual_seed(seed)
        corner = torch.randint(0, 28, (batch, 2), generator=generator)
        images = torch.zeros(batch, config.obs_horizon, 32, 32, 3, dtype=torch.uint8)
        for i, (y, x) in enumerate(corner.tolist()):
            images[i, :, y:y + 4, x:x + 4] = 255
        position = (corner.float() + 2.0) / 16.0 - 1.0  # the square's centre, in [-1, 1]
        contact = torch.cat([position, torch.zeros(batch, 1)], dim=1)
        action = torch.zeros(batch, config.pred_horizon, 10)
        observation = {"image": torch.zeros_like(images), "start_image": images[:, :1]}
        return {"observation": observation, "action": action, "contact_point": contact}

    model = DiffusionModel(config)
    fit(model, lambda step: squares(32, seed=step), steps=150)
    with torch.no_grad():
        _, held_out = model(squares(64, seed=10_000))
    # A head blind to the square scores the variance of the position, about 0.16 (x and y uniform over
    # [-0.88, 0.81], z = 0, averaged over the three).
    assert held_out["position_mse"] < 0.02


CONTACT = dict(TINY, cameras=("image",), crop_size=32, state_dim=0, vision_backbone="keypoint_gn",
               vision_widths=(16,), action_space="target", action_dim=10, position_loss_weight=1.0,
               contact_conditioning=True)


def test_contact_conditioned_denoiser_learns_to_go_where_it_is_told():
    """Every chunk holds the contact point, in x y z, at every step; the frames are blank, so only the
    condition tells where. Trained on the demonstrations' contact points (teacher forcing), the sampled
    chunks must follow new contact points; the condition's last 3 values are the contact point. The network
    regresses the clean chunk (`prediction_type="sample"`), which learns the condition's effect in a few
    hundred steps; with the paper's epsilon a model this small needs thousands."""
    torch.manual_seed(0)
    config = DiffusionConfig(**CONTACT, prediction_type="sample")
    unconditioned = DiffusionConfig(**{**CONTACT, "contact_conditioning": False})
    assert config.global_cond_dim == unconditioned.global_cond_dim + 3

    def batch(size: int, seed: int) -> dict:
        generator = torch.Generator().manual_seed(seed)
        contact = torch.rand(size, 3, generator=generator) * 1.6 - 0.8
        action = torch.zeros(size, config.pred_horizon, 10)
        action[..., :3] = contact[:, None]
        images = torch.zeros(size, config.obs_horizon, 32, 32, 3, dtype=torch.uint8)
        return {"observation": {"image": images, "start_image": images[:, :1]}, "action": action,
                "contact_point": contact}

    model = DiffusionModel(config)
    with pytest.raises(ValueError, match="contact point: pass it"):
        model.global_condition({"image": batch(1, 0)["observation"]["image"]}, None, None)
    fit(model, lambda step: batch(32, seed=step), steps=200)
    held_out = batch(32, seed=10_000)
    cond = model.batch_condition(held_out)
    assert torch.equal(cond[:, -3:], held_out["contact_point"])
    chunk = model.sample(cond, torch.Generator().manual_seed(0))
    error = (chunk[..., :3].mean(dim=1) - held_out["contact_point"]).abs().mean()
    spread = (held_out["contact_point"] - held_out["contact_point"].mean(dim=0)).abs().mean()
    assert error < 0.25 * spread, (error, spread)  # blind to the condition, it could only do the mean


def test_policy_reads_the_contact_point_from_the_episodes_first_frame():
    config = DiffusionConfig(**CONTACT)
    target = Statistics(mean=[0.0] * 10, std=[1.0] * 10, min=[-1.0] * 10, max=[1.0] * 10,
                        p01=[0.3, -0.2, 0.05] + [-1.0] * 7, p99=[0.6, 0.2, 0.3] + [1.0] * 7)
    policy = DiffusionPolicy(DiffusionModel(config), dataclasses.replace(statistics(), target=target))
    rng = np.random.default_rng(0)
    first, later = (rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2))
    assert policy.contact_point is None

    def head(frame: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return policy.model.predict_contact(torch.from_numpy(frame)[None, None], None)

    policy.reset()
    policy.observe({"image": first})
    policy.observe({"image": later})
    snapshot = policy.snapshot()
    assert torch.equal(snapshot.contact, head(first))  # held for the episode, not re-read from later frames
    expected = 0.45 + 0.15 * head(first)[0].numpy()  # p01/p99 of x: 0.3 / 0.6 m
    assert np.isclose(policy.contact_point[0], expected[0], atol=1e-6)
    policy.generator.manual_seed(1)
    chunk = policy.predict(snapshot)
    policy.generator.manual_seed(1)
    moved = policy.predict(dataclasses.replace(snapshot, contact=snapshot.contact + 0.5))
    assert not np.allclose(chunk, moved)  # the denoiser reads it
    policy.reset()
    assert policy.contact_point is None
    policy.observe({"image": later})
    assert torch.equal(policy.snapshot().contact, head(later))


def test_ddim_with_the_exact_noise_recovers_the_chunk():
    """The sampling loop is right when, given the true noise of every step, it lands on the clean chunk."""
    model = DiffusionModel(DiffusionConfig(**{**TINY, "cameras": ()})).eval()
    clean = torch.rand(3, 8, 7) * 1.6 - 0.8
    alphas_cumprod = model.train_scheduler.alphas_cumprod

    class ExactNoise(torch.nn.Module):
        def forward(self, chunk, steps, cond):
            alpha = alphas_cumprod[steps].view(-1, 1, 1)
            return (chunk - alpha.sqrt() * clean) / (1 - alpha).sqrt()

    model.unet = ExactNoise()
    sample = model.sample(torch.zeros(3, model.config.global_cond_dim), torch.Generator().manual_seed(0))
    assert len(model.inference_scheduler.timesteps) == model.config.num_inference_steps
    assert torch.allclose(sample, clean, atol=1e-5)


def test_policy_round_trip_receding_horizon_and_bad_input(tmp_path):
    config = DiffusionConfig(**TINY)
    policy = DiffusionPolicy(DiffusionModel(config), statistics(), {"dataset": "agent_stack_tabletop"}, seed=3)
    policy.save_pretrained(tmp_path)
    loaded = DiffusionPolicy.from_pretrained(tmp_path, seed=3)
    rng = np.random.default_rng(0)
    observations = [{"image": rng.integers(0, 256, (48, 48, 3), dtype=np.uint8),
                     "wrist_image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
                     "state": rng.normal(size=14).astype(np.float32) * 0.01} for _ in range(9)]
    calls = []
    predict = loaded.predict
    loaded.predict = lambda snapshot: calls.append(1) or predict(snapshot)
    policy.reset()
    loaded.reset()
    actions = [policy.act(o) for o in observations]
    assert np.array_equal(np.stack(actions), np.stack([loaded.act(o) for o in observations]))
    assert len(calls) == 3  # a new chunk at steps 0, 4 and 8 (action_steps = 4)
    assert all(a.shape == (7,) and 0.0 <= a[6] <= 1.0 and np.all(np.abs(a[:6]) <= 0.05 + 1e-6) for a in actions)
    with pytest.raises(ValueError, match="must be uint8"):
        policy.act({**observations[0], "image": np.zeros((32, 32, 3), np.float32)})
    with pytest.raises(ValueError, match="14 finite numbers"):
        policy.act({**observations[0], "state": np.full(14, np.nan)})
    (tmp_path / "metadata.json").write_text('{"policy": "vla"}')
    with pytest.raises(ValueError, match="not a diffusion policy"):
        DiffusionPolicy.from_pretrained(tmp_path)


def test_target_policy_predicts_poses_and_acts_with_deltas_onto_them(tmp_path):
    config = DiffusionConfig(**{**TINY, "cameras": (), "action_space": "target", "action_dim": 10})
    with pytest.raises(ValueError, match="no target statistics"):
        DiffusionPolicy(DiffusionModel(config), statistics())
    target = Statistics(mean=[0.0] * 10, std=[1.0] * 10, min=[-1.0] * 10, max=[1.0] * 10,
                        p01=[0.3, -0.2, 0.05] + [-1.0] * 7, p99=[0.6, 0.2, 0.3] + [1.0] * 7)
    with_targets = dataclasses.replace(statistics(), target=target)
    DiffusionPolicy(DiffusionModel(config), with_targets).save_pretrained(tmp_path)
    policy = DiffusionPolicy.from_pretrained(tmp_path)
    assert policy.statistics.target == target

    state = np.random.default_rng(0).normal(size=14).astype(np.float32) * 0.01
    policy.observe({"state": state})
    poses = policy.predict(policy.snapshot())
    assert poses.shape == (config.pred_horizon, 8)
    assert np.all((poses[:, :3] >= [0.3, -0.2, 0.05]) & (poses[:, :3] <= [0.6, 0.2, 0.3]))
    np.testing.assert_allclose(np.linalg.norm(poses[:, 3:7], axis=1), 1.0, atol=1e-6)
    assert np.all((poses[:, 7] >= 0) & (poses[:, 7] <= 1))

    policy.reset()
    policy.generator.manual_seed(5)
    reference = np.array([0.4, 0.0, 0.2, 0.0, 1.0, 0.0, 0.0])  # top-down, as the tabletop hand starts
    action = policy.act({"state": state, "ee_target": reference})
    policy.reset()
    policy.generator.manual_seed(5)
    policy.observe({"state": state})
    first = policy.predict(policy.snapshot())[0]
    moved = apply_ee_delta(reference[:3], reference[3:], action, 1.0, np.pi, [-1.0] * 3, [1.0] * 3)
    np.testing.assert_allclose(moved[0], first[:3], atol=1e-5)
    assert np.linalg.norm(orientation_error(moved[1], first[3:7])) < 1e-5
    assert action.shape == (7,) and action[6] == first[7]
    with pytest.raises(ValueError, match="ee_target"):
        policy.act({"state": state})


@pytest.mark.parametrize("encoder", [{}, {"vision_backbone": "keypoint_gn", "vision_widths": (16,),
                                          "vision_film": True}])
def test_language_policy_needs_an_instruction(encoder):
    config = DiffusionConfig(**{**TINY, "goal": "language", "goal_dim": 384, "cameras": ("image",),
                                **encoder})
    policy = DiffusionPolicy(DiffusionModel(config), statistics())
    with pytest.raises(ValueError, match="conditioned on language"):
        policy.reset()
    policy.reset("pick up the red block")
    action = policy.act({"image": np.zeros((32, 32, 3), np.uint8), "state": np.zeros(14, np.float32)})
    assert action.shape == (7,)


def test_ee_target_goal_is_the_normalised_mean_step_in_training_and_at_run_time():
    config = DiffusionConfig(**{**TINY, "cameras": (), "goal": "ee_target", "goal_dim": 3})
    model = DiffusionModel(config)
    batch = tiny_batch(2, config)
    expected = batch["action"][..., :3].mean(dim=1)
    assert torch.allclose(model.batch_condition(batch)[:, -3:], expected)

    policy = DiffusionPolicy(model, statistics())  # translation p01/p99 = -/+0.05 m per step
    policy.reset()
    state = np.zeros(14, np.float32)
    state[:3] = [0.5, 0.0, 0.2]
    policy.observe({"state": state})
    with pytest.raises(RuntimeError, match="set_target"):
        policy.snapshot()
    policy.set_target([0.5 + 0.2 * config.pred_horizon / 8, 0.0, 1.0])
    goal = policy.snapshot().goal.numpy()[0]
    # x: 0.025 m a step -> 0.5 normalised; y: no motion -> 0; z: 0.1 m a step is past p99 -> clipped to 1
    assert np.allclose(goal, [0.5, 0.0, 1.0], atol=1e-6)
    with pytest.raises(ValueError, match="3 finite numbers"):
        policy.set_target([0.5, np.nan, 0.1])
    with pytest.raises(RuntimeError, match="not an end-effector target"):
        DiffusionPolicy(DiffusionModel(DiffusionConfig(**TINY)), statistics()).set_target([0, 0, 0])
