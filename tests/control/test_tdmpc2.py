"""TD-MPC2: the pieces that are easy to get wrong (symlog, two-hot, SimNorm, the Q ensemble, MPPI), the
update, checkpoints and input validation. Tiny configs: the whole file runs in seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agent_stack.control.agent import load_agent
from agent_stack.control.replay import ReplayBuffer
from agent_stack.control.symlog import TwoHot, symexp, symlog
from agent_stack.control.tdmpc2 import TDMPC2Agent, TDMPC2Config
from agent_stack.control.tdmpc2.modeling_tdmpc2 import QEnsemble, SimNorm, mppi


def tiny_config(**overrides) -> TDMPC2Config:
    sizes = dict(batch_size=32, enc_dim=32, mlp_dim=32, latent_dim=16, simnorm_dim=8, num_q=3, num_bins=21,
                 num_samples=32, num_elites=8, num_pi_trajs=4, iterations=2, seed_steps=0)
    return TDMPC2Config(**sizes | overrides)


def test_symlog_symexp_are_inverse_and_compress_large_values():
    x = torch.tensor([-1e4, -3.5, -1.0, 0.0, 0.25, 7.0, 1e4])
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5)
    assert torch.allclose(symlog(torch.tensor([np.e - 1])), torch.tensor([1.0]))
    assert symlog(torch.tensor(1e4)) < 10


def test_two_hot_round_trip_and_mass():
    two_hot = TwoHot(101, -10.0, 10.0)
    values = torch.tensor([-250.0, -3.3, -0.01, 0.0, 0.5, 12.0, 900.0])
    probs = two_hot.encode(values)
    assert torch.allclose(probs.sum(-1), torch.ones(len(values)))
    assert ((probs > 0).sum(-1) <= 2).all()
    # The expectation over bins is symlog(value) exactly; decoding the log of the encoding gives it back.
    assert torch.allclose((probs * two_hot.bins()).sum(-1), symlog(values), atol=1e-5)
    assert torch.allclose(two_hot.decode(probs.clamp_min(1e-30).log()), values, rtol=1e-4, atol=1e-4)
    # The loss is smallest at the target's own encoding.
    logits = torch.randn(1, 101, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.1)
    for _ in range(300):
        optimizer.zero_grad()
        two_hot.loss(logits, torch.tensor([4.2])).sum().backward()
        optimizer.step()
    assert abs(two_hot.decode(logits).item() - 4.2) < 0.1


def test_two_hot_rejects_bad_bins():
    with pytest.raises(ValueError):
        TwoHot(1, -1.0, 1.0)
    with pytest.raises(ValueError):
        TwoHot(11, 1.0, -1.0)


def test_simnorm_projects_each_group_onto_the_simplex():
    x = torch.randn(4, 32) * 5
    y = SimNorm(8)(x)
    groups = y.view(4, 4, 8)
    assert (groups >= 0).all()
    assert torch.allclose(groups.sum(-1), torch.ones(4, 4))
    assert torch.allclose(groups, torch.softmax(x.view(4, 4, 8), -1))


def test_q_ensemble_members_are_independent_mlps_and_subsets_match():
    torch.manual_seed(0)
    ensemble = QEnsemble(4, 6, 16, 5, dropout=0.0)
    for weight in ensemble.weights:  # the last layer starts at zero; give it values to compare
        torch.nn.init.normal_(weight)
    x = torch.randn(3, 7, 6)
    full = ensemble(x)
    assert full.shape == (4, 3, 7, 5)
    assert not torch.allclose(full[0], full[1])
    pair = torch.tensor([3, 1])
    assert torch.allclose(ensemble(x, members=pair), full[pair], atol=1e-6)
    # Detached evaluation gives the same values but no gradient to the parameters.
    out = ensemble(x.requires_grad_(), detach=True)
    out.sum().backward()
    assert all(p.grad is None for p in ensemble.parameters())
    assert x.grad is not None


def test_q_ensemble_output_layer_starts_at_zero():
    agent = TDMPC2Agent(tiny_config(), (5,), 2)
    assert torch.count_nonzero(agent.model.Qs.weights[-1]) == 0
    assert torch.count_nonzero(agent.model.reward[-1].weight) == 0


def test_mppi_finds_the_optimum_of_a_known_quadratic_cost():
    torch.manual_seed(0)
    target = torch.tensor([[0.6, -0.3], [0.2, 0.5], [-0.7, 0.1]])
    config = TDMPC2Config(num_pi_trajs=0)   # the paper's 512 samples, 64 elites, temperature 0.5

    def value(actions: torch.Tensor) -> torch.Tensor:  # (H, N, A) -> (N,): minus the squared distance
        return -((actions - target.unsqueeze(1)) ** 2).sum(dim=(0, 2))

    chosen, mean, std = mppi(value, torch.zeros(3, 2), torch.empty(3, 0, 2), config, iterations=6)
    assert torch.allclose(mean, target, atol=0.03)
    assert torch.allclose(chosen, target, atol=0.12)
    assert torch.allclose(std, torch.full_like(std, config.min_std))
    # One iteration from a zero start is measurably worse: the iterations are what converge.
    torch.manual_seed(0)
    _, early_mean, _ = mppi(value, torch.zeros(3, 2), torch.empty(3, 0, 2), config, iterations=1)
    assert (early_mean - target).abs().max() > 3 * (mean - target).abs().max()


def test_mppi_uses_policy_trajectories():
    torch.manual_seed(0)
    target = torch.full((3, 1), 0.9)
    config = tiny_config(num_samples=16, num_elites=1, num_pi_trajs=1, max_std=0.01, min_std=0.01)
    pi_actions = target.unsqueeze(1).clone()   # the only sample near the optimum comes from the policy

    def value(actions: torch.Tensor) -> torch.Tensor:
        return -((actions - target.unsqueeze(1)) ** 2).sum(dim=(0, 2))

    chosen, mean, _ = mppi(value, torch.zeros(3, 1), pi_actions, config, iterations=1)
    assert torch.allclose(chosen, target)


def random_replay(observation_shape, action_dim, episodes=3, length=40, seed=0, reward_fn=None) -> ReplayBuffer:
    rng = np.random.default_rng(seed)
    replay = ReplayBuffer(episodes * (length + 1), observation_shape, action_dim, seed=seed)
    for _ in range(episodes):
        observation = rng.normal(size=observation_shape).astype(np.float32)
        replay.start_episode(observation)
        for _ in range(length):
            action = rng.uniform(-1, 1, action_dim)
            observation = np.clip(observation + 0.1 * np.resize(action, observation_shape), -3, 3)
            reward = reward_fn(observation, action) if reward_fn else float(rng.normal())
            replay.add(action, reward, observation, False)
    return replay


def test_update_learns_a_fixed_batch():
    torch.manual_seed(0)
    agent = TDMPC2Agent(tiny_config(lr=3e-3), (4,), 2)
    replay = random_replay((4,), 2, reward_fn=lambda o, a: float(-np.abs(o).sum()))
    batch = replay.sample(32, agent.sequence_length)
    first = agent.update(batch)
    for _ in range(60):
        last = agent.update(batch)
    assert set(first) >= {"consistency_loss", "reward_loss", "value_loss", "pi_loss", "pi_scale"}
    assert last["reward_loss"] < 0.5 * first["reward_loss"]
    assert all(np.isfinite(v) for v in last.values())


def test_update_rejects_windows_of_the_wrong_length():
    agent = TDMPC2Agent(tiny_config(), (4,), 2)
    with pytest.raises(ValueError, match="horizon"):
        agent.update(random_replay((4,), 2).sample(8, agent.sequence_length + 1))


def test_target_q_moves_slowly_toward_the_online_q():
    torch.manual_seed(0)
    agent = TDMPC2Agent(tiny_config(), (4,), 2)
    before = [p.clone() for p in agent.model.target_Qs.parameters()]
    agent.update(random_replay((4,), 2).sample(16, agent.sequence_length))
    for old, target, online in zip(before, agent.model.target_Qs.parameters(), agent.model.Qs.parameters()):
        assert torch.allclose(target, old + 0.01 * (online - old), atol=1e-6)
        assert not target.requires_grad


def test_act_is_in_bounds_and_deterministic_in_eval_from_a_fresh_start(tmp_path):
    torch.manual_seed(0)
    agent = TDMPC2Agent(tiny_config(), (4,), 3)
    observation = np.array([0.1, -0.2, 0.3, 0.0], np.float32)
    action = agent.act(observation)
    assert action.shape == (3,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
    agent.save(tmp_path / "agent")
    loaded = load_agent(tmp_path / "agent")
    assert isinstance(loaded, TDMPC2Agent)
    for a, b in zip(agent.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    agent.reset(), loaded.reset()
    torch.manual_seed(1)
    first = agent.act(observation, eval=True)
    torch.manual_seed(1)
    assert np.array_equal(first, loaded.act(observation, eval=True))


def test_goal_is_appended_to_the_observation():
    agent = TDMPC2Agent(tiny_config(mpc=False), (5,), 2)
    proprio, goal = np.zeros(2, np.float32), np.ones(3, np.float32)
    torch.manual_seed(0)
    with_goal = agent.act(proprio, goal=goal, eval=True)
    torch.manual_seed(0)
    assert np.array_equal(with_goal, agent.act(np.concatenate([proprio, goal]), eval=True))


def test_pixel_observations():
    torch.manual_seed(0)
    agent = TDMPC2Agent(tiny_config(num_channels=4), (64, 64, 3), 2)
    rng = np.random.default_rng(0)
    replay = ReplayBuffer(50, (64, 64, 3), 2, np.uint8)
    replay.start_episode(rng.integers(0, 255, (64, 64, 3)))
    for _ in range(20):
        replay.add(rng.uniform(-1, 1, 2), 1.0, rng.integers(0, 255, (64, 64, 3)), False)
    metrics = agent.update(replay.sample(4, agent.sequence_length))
    assert np.isfinite(metrics["total_loss"])
    assert agent.act(replay.observation[0]).shape == (2,)


def test_bad_inputs_raise_clear_errors(tmp_path):
    agent = TDMPC2Agent(tiny_config(), (4,), 2)
    with pytest.raises(ValueError, match="shape"):
        agent.act(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        agent.act(np.array([0, np.nan, 0, 0], np.float32))
    with pytest.raises(ValueError, match="num_q"):
        TDMPC2Config(num_q=1)
    with pytest.raises(ValueError, match="latent_dim"):
        TDMPC2Config(latent_dim=100, simnorm_dim=8)
    with pytest.raises(ValueError, match="model_size"):
        TDMPC2Config.preset(7)
    with pytest.raises(ValueError, match="unknown TDMPC2Config fields"):
        TDMPC2Config.from_dict({"horizon": 3, "horizn": 5})
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        load_agent(tmp_path)


def test_presets_have_the_papers_parameter_counts():
    # Model size 5 on a walker-sized task: the paper's "5M" (trainable parameters, target Qs excluded).
    agent = TDMPC2Agent(TDMPC2Config.preset(5), (24,), 6)
    trainable = sum(p.numel() for p in agent.parameters() if p.requires_grad)
    assert 4.5e6 < trainable < 5.5e6
    assert TDMPC2Config.preset(1).num_q == 2 and TDMPC2Config.preset(317).num_q == 8


def test_discount_heuristic():
    assert TDMPC2Config(episode_length=500).gamma == pytest.approx(0.99)
    assert TDMPC2Config(episode_length=10).gamma == 0.95
    assert TDMPC2Config(episode_length=10_000).gamma == 0.995
    assert TDMPC2Config(discount=0.9).gamma == 0.9
    assert TDMPC2Config(episode_length=500).random_steps == 2500
