"""DreamerV3: the pieces that are easy to get wrong (return normalisation, lambda-returns, unimix, KL
balancing with free bits), the agent's shapes for vector and image observations, checkpoints, learning on a
fixed batch and input validation. Tiny configs: the whole file runs in seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agent_stack.control.agent import load_agent
from agent_stack.control.dreamer import AGENT, DreamerAgent, DreamerConfig
from agent_stack.control.dreamer.modeling_dreamer import (
    ReturnNormalizer,
    categorical_kl,
    kl_loss,
    lambda_return,
    sample_onehot,
    unimix_logits,
)
from agent_stack.control.replay import ReplayBuffer


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run fastest on one thread, and the test machine's cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def point_mass_replay(steps: int = 400, pixels: bool = False, seed: int = 0) -> ReplayBuffer:
    """A 1-D point mass pushed by action[0]; reward -x^2; terminates when it leaves [-2, 2]; 40-step episodes."""
    rng = np.random.default_rng(seed)
    shape = (16, 16, 3) if pixels else (3,)
    replay = ReplayBuffer(steps + 100, shape, 2, np.uint8 if pixels else np.float32, seed=seed)

    def observe(x: float, v: float) -> np.ndarray:
        if not pixels:
            return np.array([x, v, 1.0], dtype=np.float32)
        image = np.zeros(shape, dtype=np.uint8)
        image[:, int(np.clip((x + 2) / 4 * 15, 0, 15))] = 255
        return image

    added = 0
    while added < steps:
        x, v = rng.uniform(-1, 1), 0.0
        replay.start_episode(observe(x, v))
        for _ in range(40):
            action = rng.uniform(-1, 1, size=2).astype(np.float32)
            v = 0.9 * v + 0.2 * float(action[0])
            x = x + 0.2 * v
            terminated = abs(x) > 2
            replay.add(action, -x * x, observe(x, v), terminated)
            added += 1
            if terminated:
                break
    return replay


# --- the paper's pieces ----------------------------------------------------------------------------------

def test_return_normalizer_tracks_the_5th_to_95th_percentile_range_with_an_ema():
    norm = ReturnNormalizer(decay=0.99, limit=1.0, low=5.0, high=95.0)
    returns = torch.linspace(0.0, 1000.0, 101)          # 5th percentile 50, 95th 950
    norm.update(returns)
    assert norm.low.item() == pytest.approx(0.5)       # 0.99 * 0 + 0.01 * 50
    assert norm.high.item() == pytest.approx(9.5)
    assert norm.scale().item() == pytest.approx(9.0)
    norm.update(returns)
    assert norm.scale().item() == pytest.approx((0.99 * 9.5 + 9.5) - (0.99 * 0.5 + 0.5))
    # Small return ranges are not scaled up: the denominator is max(1, S).
    small = ReturnNormalizer(decay=0.0, limit=1.0, low=5.0, high=95.0)
    small.update(torch.linspace(0.0, 0.1, 101))
    assert small.high.item() - small.low.item() == pytest.approx(0.09, abs=1e-6)
    assert small.scale().item() == 1.0
    assert {"low", "high"} <= set(norm.state_dict())


def test_lambda_return_matches_a_hand_computed_example_with_a_terminal_in_the_middle():
    reward = torch.tensor([[1.0], [2.0], [3.0]])            # r_1, r_2, r_3
    value = torch.tensor([[0.5], [1.0], [2.0], [4.0]])      # v(s_0) .. v(s_3)
    cont = torch.tensor([[1.0], [0.0], [1.0]])              # c_1, c_2 = 0 (episode ends at s_2), c_3
    gamma, lam = 0.9, 0.5
    # R_2 = r_3 + gamma c_3 ((1 - lam) v_3 + lam R_3), R_3 = v_3 = 4      -> 3 + 0.9 * (2 + 2) = 6.6
    # R_1 = r_2 + gamma c_2 (...) = 2                                        (nothing after the terminal)
    # R_0 = r_1 + gamma c_1 ((1 - lam) v_1 + lam R_1) = 1 + 0.9 * (0.5 + 1) = 2.35
    expected = torch.tensor([[2.35], [2.0], [6.6]])
    assert torch.allclose(lambda_return(reward, value, gamma * cont, lam), expected)
    # lambda = 0 is the one-step TD target r_{t+1} + gamma c_{t+1} v(s_{t+1}).
    assert torch.allclose(lambda_return(reward, value, gamma * cont, 0.0),
                          reward + gamma * cont * value[1:])


def test_unimix_keeps_every_class_at_least_one_percent_of_uniform():
    logits = unimix_logits(torch.randn(64, 32, 32) * 100, 0.01)
    probs = logits.exp()
    assert torch.allclose(probs.sum(-1), torch.ones(64, 32))
    assert probs.min() >= 0.01 / 32 * (1 - 1e-4)
    # The world model's own prior and posterior logits are unimixed too.
    agent = DreamerAgent(DreamerConfig.preset("test", classes=32, stoch=4), (3,), 2)
    prior = agent.world_model.rssm.initial(2).logits
    assert prior.shape == (2, 4, 32)
    assert prior.exp().min() >= 0.01 / 32 * (1 - 1e-4)


def test_latent_samples_follow_the_distribution_with_straight_through_gradients():
    probs = torch.tensor([0.05, 0.25, 0.7, 0.0])
    logits = (probs + 1e-12).log().expand(20_000, 1, 4).clone().requires_grad_(True)
    sample = sample_onehot(logits)
    onehot = sample.detach().round()
    assert torch.allclose(sample.detach(), onehot, atol=1e-6) and bool((onehot.sum(-1) == 1).all())
    frequencies = onehot.mean((0, 1))
    assert torch.allclose(frequencies, probs, atol=0.01), frequencies
    # Straight through: the value is the one-hot, the gradient that of the probabilities.
    weights = torch.randn(4)
    grad, = torch.autograd.grad((sample * weights).sum(), logits)
    probs_logits = logits.detach().clone().requires_grad_(True)
    expected, = torch.autograd.grad((probs_logits.softmax(-1) * weights).sum(), probs_logits)
    assert torch.allclose(grad, expected, atol=1e-6)


def gradients(loss: torch.Tensor, *tensors: torch.Tensor) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, tensors, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(tensors, grads)]


def test_kl_free_bits_and_stop_gradients():
    # Below one nat both losses are the constant 1 with no gradient.
    logits = torch.randn(5, 4, 4) * 0.01
    post = logits.clone().requires_grad_(True)
    prior = (logits + 0.01 * torch.randn(5, 4, 4)).requires_grad_(True)
    dyn, rep, kl = kl_loss(post, prior, free=1.0)
    assert (kl > 0).all() and (kl < 1.0).all()
    assert torch.equal(dyn, torch.ones(5)) and torch.equal(rep, torch.ones(5))
    assert all(g.abs().max() == 0 for g in gradients((dyn + rep).sum(), post, prior))

    # Above: the dynamics loss trains only the prior, the representation loss only the posterior.
    post = (torch.randn(5, 4, 4) * 5).requires_grad_(True)
    prior = (torch.randn(5, 4, 4) * 5).requires_grad_(True)
    dyn, rep, kl = kl_loss(post, prior, free=1.0)
    assert (kl > 1.0).all()
    assert torch.allclose(dyn, kl) and torch.allclose(rep, kl)
    assert torch.allclose(kl, categorical_kl(post, prior))
    post_grad, prior_grad = gradients(dyn.sum(), post, prior)
    assert post_grad.abs().max() == 0 and prior_grad.abs().max() > 0
    post_grad, prior_grad = gradients(rep.sum(), post, prior)
    assert post_grad.abs().max() > 0 and prior_grad.abs().max() == 0
    # The free-bits floor is a parameter: with 0 free nats the losses are the KL itself.
    dyn, rep, _ = kl_loss(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4), free=0.0)
    assert torch.equal(dyn, torch.zeros(2)) and torch.equal(rep, torch.zeros(2))


# --- the agent --------------------------------------------------------------------------------------------

def test_config_presets_follow_the_paper_and_the_schedule_is_the_replay_ratio():
    xs, s, xl = DreamerConfig.preset("XS"), DreamerConfig(), DreamerConfig.preset("XL")
    assert (xs.deter, xs.units, xs.mlp_layers, xs.cnn_depth) == (256, 256, 1, 24)
    assert (s.deter, s.units, s.mlp_layers, s.cnn_depth) == (512, 512, 2, 32)
    assert (xl.deter, xl.units, xl.mlp_layers, xl.cnn_depth) == (4096, 1024, 5, 96)
    assert (s.stoch, s.classes, s.batch_size, s.batch_length, s.imag_horizon) == (32, 32, 16, 64, 15)
    assert s.gamma == pytest.approx(0.997, abs=1e-4)
    agent = DreamerAgent(DreamerConfig.preset("test", batch_size=16, batch_length=64, train_ratio=512), (3,), 2)
    assert agent.sequence_length == 64
    assert agent.updates_per_step == pytest.approx(0.5)
    assert agent.seed_steps == 1024
    assert DreamerConfig.preset("XS", deter=128).deter == 128
    assert AGENT is DreamerAgent


def test_act_and_update_shapes_for_vector_observations():
    agent = DreamerAgent(DreamerConfig.preset("test", critic_lr=1e-2), (3,), 2)
    replay = point_mass_replay(200)
    agent.reset()
    first = agent.act(np.array([0.5, 0.0, 1.0]), eval=True)
    for step in range(3):
        action = agent.act(np.array([0.1 * step, 0.0, 1.0]), eval=step == 2)
        assert action.shape == (2,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
    # The recurrent state carries across calls until `reset`.
    assert not np.array_equal(agent.act(np.array([0.5, 0.0, 1.0]), eval=True), first)
    agent.reset()
    np.testing.assert_array_equal(agent.act(np.array([0.5, 0.0, 1.0]), eval=True), first)

    critic_before = [p.detach().clone() for p in agent.critic.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(critic_before, agent.slow_critic.parameters()))
    metrics = agent.update(replay.sample(4, 16))
    # The slow critic moves 2 % of the way towards the updated critic.
    moved = 0.0
    for old, new, slow in zip(critic_before, agent.critic.parameters(), agent.slow_critic.parameters()):
        assert torch.allclose(slow, old + 0.02 * (new.detach() - old), atol=1e-7)
        moved = max(moved, (slow - old).abs().max().item())
    assert moved > 1e-5
    for key in ("world_model_loss", "reconstruction_loss", "reward_loss", "continue_loss", "kl", "dyn_loss",
                "rep_loss", "actor_loss", "critic_loss", "actor_entropy", "return_scale"):
        assert np.isfinite(metrics[key]), key
    # The reward predictor and the critic start at exactly zero (zero-initialised output layers).
    fresh = DreamerAgent(DreamerConfig.preset("test"), (3,), 2)
    assert fresh.world_model.reward[-1].weight.abs().max() == 0 and fresh.critic[-1].weight.abs().max() == 0


def test_act_and_update_shapes_for_64x64_images_with_the_xs_size():
    agent = DreamerAgent(DreamerConfig.preset("XS", imag_horizon=3), (64, 64, 3), 1)
    replay = ReplayBuffer(50, (64, 64, 3), 1, np.uint8)
    rng = np.random.default_rng(0)
    replay.start_episode(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    agent.reset()
    for step in range(6):
        action = agent.act(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        assert action.shape == (1,) and np.all(np.abs(action) <= 1)
        replay.add(action, 1.0, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), False)
    batch = replay.sample(2, 4)
    assert batch["observation"].dtype == torch.uint8
    metrics = agent.update(batch)
    assert all(np.isfinite(value) for value in metrics.values())
    assert agent.world_model.encoder.out_dim == 4 * 4 * 24 * 8   # 4 stride-2 stages: 64 -> 4, 24 -> 192 channels


def test_save_load_round_trip_gives_identical_eval_actions(tmp_path):
    agent = DreamerAgent(DreamerConfig.preset("test"), (3,), 2)
    agent.update(point_mass_replay(200).sample(4, 16))   # moves the weights and the return percentiles
    agent.save(tmp_path / "agent")
    observations = [np.array([0.3, -0.1, 1.0]), np.array([0.2, 0.0, 1.0]), np.array([-0.5, 0.4, 1.0])]
    for loaded in (DreamerAgent.load(tmp_path / "agent"), load_agent(tmp_path / "agent")):
        assert isinstance(loaded, DreamerAgent)
        for name, tensor in agent.state_dict().items():
            assert torch.equal(tensor, loaded.state_dict()[name]), name
        agent.reset()
        loaded.reset()
        for obs in observations:
            np.testing.assert_array_equal(agent.act(obs, eval=True), loaded.act(obs, eval=True))


def test_world_model_loss_falls_on_a_fixed_batch():
    agent = DreamerAgent(DreamerConfig.preset("test", model_lr=3e-3), (3,), 2)
    batch = point_mass_replay(400).sample(4, 16)
    losses = [agent.update(batch)["world_model_loss"] for _ in range(30)]
    assert losses[-1] < 0.7 * losses[0], losses


def test_bad_inputs_raise_value_errors():
    agent = DreamerAgent(DreamerConfig.preset("test"), (3,), 2)
    with pytest.raises(ValueError, match="shape"):
        agent.act(np.zeros(4))
    batch = point_mass_replay(100).sample(2, 8)
    with pytest.raises(ValueError, match="observations"):
        agent.update({**batch, "observation": batch["observation"][..., :2]})
    with pytest.raises(ValueError, match="action"):
        agent.update({**batch, "action": batch["action"][..., :1]})
    with pytest.raises(ValueError, match="vector"):
        DreamerAgent(DreamerConfig.preset("test"), (8, 8), 2)
    with pytest.raises(ValueError, match="image"):
        DreamerAgent(DreamerConfig.preset("test"), (30, 30, 3), 2)


@pytest.mark.parametrize("overrides, field", [
    ({"batch_size": 0}, "batch_size"),
    ({"deter": -1}, "deter"),
    ({"classes": 2.5}, "classes"),
    ({"unimix": 1.0}, "unimix"),
    ({"model_lr": 0.0}, "model_lr"),
    ({"free_nats": -1.0}, "free_nats"),
    ({"return_lambda": 1.5}, "return_lambda"),
    ({"discount_horizon": 1.0}, "discount_horizon"),
    ({"slow_critic_fraction": 0.0}, "slow_critic_fraction"),
    ({"actor_min_std": 2.0}, "actor_max_std"),
    ({"retnorm_low": 95.0, "retnorm_high": 5.0}, "retnorm_low"),
    ({"seed_steps": -5}, "seed_steps"),
    ({"train_ratio": True}, "train_ratio"),
])
def test_config_refuses_bad_values_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        DreamerConfig(**overrides)


def test_unknown_preset_and_json_round_trip(tmp_path):
    with pytest.raises(ValueError, match="size"):
        DreamerConfig.preset("XXL")
    config = DreamerConfig.preset("XS", seed_steps=100)
    config.save(tmp_path / "config.json")
    assert DreamerConfig.load(tmp_path / "config.json") == config
    with pytest.raises(ValueError, match="unknown DreamerConfig fields"):
        DreamerConfig.from_dict({"deterministic": 3})
