"""TD-MPC2 (Hansen, Su and Wang, "TD-MPC2: Scalable, Robust World Models for Continuous Control", ICLR 2024).

An implicit, decoder-free world model in a SimNorm-normalised latent space — encoder h, latent dynamics d,
reward R, an ensemble of Q-functions and a policy prior p — trained on replayed sub-trajectories with
joint-embedding prediction, reward and TD losses (eq. 3) and a max-entropy policy loss (eq. 4); acting
plans with MPPI in the latent space (Sec. 3.3), seeded by policy-prior trajectories and warm-started from
the previous step's solution. Names follow the paper: z latent, a action, H horizon, rho temporal weight.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agent_stack.control.agent import OnlineAgent
from agent_stack.control.symlog import TwoHot
from agent_stack.control.tdmpc2.configuration_tdmpc2 import TDMPC2Config

LOG_2PI_HALF = 0.5 * math.log(2 * math.pi)


# --- building blocks (Sec. 3.1, Appendix: "LayerNorm + Mish MLPs, SimNorm latent") -------------------------

class SimNorm(nn.Module):
    """Simplicial normalisation: the latent is split into groups of `dim` and each group is softmaxed."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(x.unflatten(-1, (-1, self.dim)), dim=-1).flatten(-2)


class NormedLinear(nn.Sequential):
    """Linear -> (dropout) -> LayerNorm -> activation (Mish unless given)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0, act: nn.Module | None = None) -> None:
        layers = [nn.Linear(in_dim, out_dim)] + ([nn.Dropout(dropout)] if dropout else [])
        super().__init__(*layers, nn.LayerNorm(out_dim), act or nn.Mish())


def mlp(in_dim: int, hidden: list[int], out_dim: int, act: nn.Module | None = None,
        dropout: float = 0.0) -> nn.Sequential:
    """The paper's MLP: NormedLinear hidden layers; the output layer is NormedLinear with `act` or plain."""
    dims = [in_dim, *hidden]
    layers = [NormedLinear(a, b, dropout if i == 0 else 0.0) for i, (a, b) in enumerate(zip(dims, dims[1:]))]
    layers.append(NormedLinear(dims[-1], out_dim, act=act) if act is not None else nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


class QEnsemble(nn.Module):
    """`num_q` Q-function MLPs evaluated as one batched computation (weights stacked on a leading axis).

    Each member: Linear -> Dropout -> LayerNorm -> Mish -> Linear -> LayerNorm -> Mish -> Linear(num_bins),
    the same as `mlp(in, [mlp_dim, mlp_dim], num_bins, dropout=...)`; the last layer starts at zero.
    """

    def __init__(self, num_q: int, in_dim: int, hidden_dim: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        dims = [in_dim, hidden_dim, hidden_dim, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.norms = nn.ParameterList()
        for index, (fan_in, fan_out) in enumerate(zip(dims, dims[1:])):
            layer = [nn.Linear(fan_in, fan_out) for _ in range(num_q)]
            weight = torch.stack([lin.weight.detach().T for lin in layer])
            if index == len(dims) - 2:
                weight.zero_()
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(torch.stack([lin.bias.detach() for lin in layer]).unsqueeze(1)))
            if index < len(dims) - 2:
                self.norms.append(nn.Parameter(torch.stack([torch.ones(num_q, 1, fan_out),
                                                            torch.zeros(num_q, 1, fan_out)])))
        self.dropout = dropout

    def forward(self, x: torch.Tensor, detach: bool = False, members: torch.Tensor | None = None) -> torch.Tensor:
        """(..., in_dim) -> (num_q or len(members), ..., out_dim).

        `detach` stops gradients into the Q parameters; `members` evaluates only those ensemble members
        (planning and targets use two of them, so the others need not be computed).
        """
        shape = x.shape[:-1]
        count = self.weights[0].shape[0] if members is None else len(members)
        h = x.reshape(1, -1, x.shape[-1]).expand(count, -1, -1)
        last = len(self.weights) - 1
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            norm = self.norms[index] if index < last else None
            if members is not None:
                weight, bias = weight[members], bias[members]
                norm = norm[:, members] if norm is not None else None
            if detach:
                weight, bias = weight.detach(), bias.detach()
                norm = norm.detach() if norm is not None else None
            h = torch.baddbmm(bias, h, weight)
            if norm is not None:
                if index == 0 and self.dropout and self.training:
                    h = F.dropout(h, self.dropout)
                h = F.mish(F.layer_norm(h, h.shape[-1:]) * norm[0] + norm[1])
        return h.reshape(count, *shape, h.shape[-1])


class ShiftAug(nn.Module):
    """Random shift of up to `pad` pixels (DrQ), the only augmentation of pixel observations."""

    def __init__(self, pad: int = 3) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        n, _, h, w = x.shape
        padded = F.pad(x, (self.pad,) * 4, mode="replicate")
        dx, dy = torch.randint(0, 2 * self.pad + 1, (2, n), device=x.device)
        rows = (torch.arange(h, device=x.device) + dy[:, None])[:, None, :, None].expand(n, x.shape[1], h, w + 2 * self.pad)
        shifted = padded.gather(2, rows)
        cols = (torch.arange(w, device=x.device) + dx[:, None])[:, None, None, :].expand(n, x.shape[1], h, w)
        return shifted.gather(3, cols)


def pixel_encoder(shape: tuple[int, int, int], channels: int, latent_dim: int, simnorm_dim: int) -> nn.Module:
    """The paper's 4-layer ReLU CNN over a HxWx3 uint8 image scaled to [-0.5, 0.5], then SimNorm."""
    height, width, depth = shape
    convs = nn.Sequential(
        nn.Conv2d(depth, channels, 7, stride=2), nn.ReLU(),
        nn.Conv2d(channels, channels, 5, stride=2), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, stride=2), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, stride=1), nn.Flatten())
    with torch.no_grad():
        flat = convs(torch.zeros(1, depth, height, width)).shape[-1]
    return nn.Sequential(PixelsToFloat(), ShiftAug(), convs, nn.Linear(flat, latent_dim), SimNorm(simnorm_dim))


class PixelsToFloat(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2).float().div(255.0).sub(0.5)


class RunningScale(nn.Module):
    """Running estimate of the Q-value scale S (5th-95th percentile range, at least 1) for the policy loss."""

    def __init__(self, tau: float) -> None:
        super().__init__()
        self.tau = tau
        self.register_buffer("value", torch.ones(()))

    def update(self, x: torch.Tensor) -> None:
        low, high = torch.quantile(x.detach().flatten().float(), torch.tensor([0.05, 0.95], device=x.device))
        self.value.lerp_(torch.clamp(high - low, min=1.0), self.tau)


# --- the world model (Sec. 3.1, eq. 2) ---------------------------------------------------------------------

class WorldModel(nn.Module):
    def __init__(self, config: TDMPC2Config, observation_shape: tuple[int, ...], action_dim: int) -> None:
        super().__init__()
        c, latent, act = config, config.latent_dim, action_dim
        if len(observation_shape) == 3:
            self.encoder = pixel_encoder(observation_shape, c.num_channels, latent, c.simnorm_dim)
        else:
            self.encoder = mlp(observation_shape[0], max(c.num_enc_layers - 1, 1) * [c.enc_dim], latent,
                               act=SimNorm(c.simnorm_dim))
        self.dynamics = mlp(latent + act, 2 * [c.mlp_dim], latent, act=SimNorm(c.simnorm_dim))
        self.reward = mlp(latent + act, 2 * [c.mlp_dim], c.num_bins)
        self.pi = mlp(latent, 2 * [c.mlp_dim], 2 * act)
        self.Qs = QEnsemble(c.num_q, latent + act, c.mlp_dim, c.num_bins, c.dropout)
        self.apply(_truncated_normal_init)
        nn.init.zeros_(self.reward[-1].weight)
        self.target_Qs = copy.deepcopy(self.Qs).requires_grad_(False)
        self.config = config
        self.two_hot = TwoHot(c.num_bins, c.vmin, c.vmax)

    def train(self, mode: bool = True) -> WorldModel:
        super().train(mode)
        self.target_Qs.train(False)
        return self

    def encode(self, observation: torch.Tensor) -> torch.Tensor:
        return self.encoder(observation)

    def next(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.dynamics(torch.cat([z, a], dim=-1))

    def reward_logits(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.reward(torch.cat([z, a], dim=-1))

    def policy(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Policy prior p(a|z): a tanh-squashed Gaussian. Returns (mean action, sampled action, log prob)."""
        mu, log_std = self.pi(z).chunk(2, dim=-1)
        c = self.config
        log_std = c.log_std_min + 0.5 * (c.log_std_max - c.log_std_min) * (torch.tanh(log_std) + 1)
        eps = torch.randn_like(mu)
        log_prob = (-0.5 * eps.pow(2) - log_std - LOG_2PI_HALF).sum(-1)
        action = torch.tanh(mu + eps * log_std.exp())
        log_prob = log_prob - torch.log(F.relu(1 - action.pow(2)) + 1e-6).sum(-1)
        return torch.tanh(mu), action, log_prob

    def Q(self, z: torch.Tensor, a: torch.Tensor, reduce: str, target: bool = False,
          detach: bool = False) -> torch.Tensor:
        """Q-values from two randomly chosen ensemble members: their min ('min', TD targets) or mean ('avg')."""
        pair = torch.randperm(self.config.num_q, device=z.device)[:2]
        logits = (self.target_Qs if target else self.Qs)(torch.cat([z, a], dim=-1), detach=detach, members=pair)
        values = self.two_hot.decode(logits)
        return values.min(0).values if reduce == "min" else values.mean(0)

    @torch.no_grad()
    def soft_update_target_Q(self) -> None:
        for target, online in zip(self.target_Qs.parameters(), self.Qs.parameters()):
            target.lerp_(online, self.config.tau)


def _truncated_normal_init(module: nn.Module) -> None:
    # The official initialisation: truncated normal weights (std 0.02), zero biases.
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, QEnsemble):
        for index, weight in enumerate(module.weights):
            if index < len(module.weights) - 1:
                nn.init.trunc_normal_(weight, std=0.02)
        for bias in module.biases:
            nn.init.zeros_(bias)


def mppi(estimate_value: Callable[[torch.Tensor], torch.Tensor], mean: torch.Tensor, pi_actions: torch.Tensor,
         config: TDMPC2Config, iterations: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Model predictive path integral control (Algorithm 1 of the paper).

    Each iteration samples `num_samples - num_pi_trajs` action sequences from N(mean, std) (clipped to
    [-1, 1]), adds the policy trajectories `pi_actions` (H, num_pi_trajs, A), scores all with
    `estimate_value` ((H, N, A) -> (N,)), keeps the `num_elites` best and refits mean and std to them with
    weights exp(temperature * (value - max)). Returns one elite sequence drawn by those weights, and the
    final mean and std (H, A).
    """
    c = config
    horizon, action_dim = mean.shape
    std = torch.full_like(mean, c.max_std)
    actions = torch.empty(horizon, c.num_samples, action_dim, device=mean.device)
    actions[:, :c.num_pi_trajs] = pi_actions
    for _ in range(iterations):
        noise = torch.randn(horizon, c.num_samples - c.num_pi_trajs, action_dim, device=mean.device)
        actions[:, c.num_pi_trajs:] = (mean.unsqueeze(1) + std.unsqueeze(1) * noise).clamp(-1, 1)
        value = estimate_value(actions).nan_to_num(0.0)
        elite_index = torch.topk(value, c.num_elites).indices
        elite_value, elite_actions = value[elite_index], actions[:, elite_index]
        score = torch.exp(c.temperature * (elite_value - elite_value.max()))
        score = score / score.sum()
        mean = (score[None, :, None] * elite_actions).sum(1)
        std = (score[None, :, None] * (elite_actions - mean.unsqueeze(1)).pow(2)).sum(1).sqrt()
        std = std.clamp(c.min_std, c.max_std)
    chosen = elite_actions[:, torch.multinomial(score, 1)[0]]
    return chosen, mean, std


# --- the agent -----------------------------------------------------------------------------------------------

class TDMPC2Agent(OnlineAgent):
    algo = "tdmpc2"
    config_class = TDMPC2Config

    def __init__(self, config: TDMPC2Config, observation_shape: tuple[int, ...], action_dim: int) -> None:
        super().__init__(config, observation_shape, action_dim)
        self.model = WorldModel(config, self.observation_shape, self.action_dim)
        self.scale = RunningScale(config.tau)
        self.register_buffer("previous_mean", torch.zeros(config.horizon, self.action_dim))
        self.iterations = config.iterations + 2 * int(self.action_dim >= 20)  # the paper's large-action heuristic
        m = self.model
        self.optimizers = {
            "model": torch.optim.Adam([
                {"params": m.encoder.parameters(), "lr": config.lr * config.enc_lr_scale},
                {"params": [*m.dynamics.parameters(), *m.reward.parameters(), *m.Qs.parameters()]},
            ], lr=config.lr),
            "pi": torch.optim.Adam(m.pi.parameters(), lr=config.lr, eps=1e-5),
        }
        self._t0 = True
        self.model.eval()

    @property
    def sequence_length(self) -> int:
        return self.config.horizon + 1

    @property
    def pretrain_updates(self) -> int:
        return self.config.random_steps

    def reset(self) -> None:
        self._t0 = True

    # --- acting: MPPI in latent space (Sec. 3.3) ---------------------------------------------------------

    @torch.no_grad()
    def act(self, observation: np.ndarray, goal: np.ndarray | None = None, eval: bool = False) -> np.ndarray:
        z = self.model.encode(self.network_input(observation, goal))
        if self.config.mpc:
            action = self.plan(z, t0=self._t0, eval=eval)
        else:
            mean, sample, _ = self.model.policy(z)
            action = (mean if eval else sample)[0]
        self._t0 = False
        return action.cpu().numpy().astype(np.float32)

    def estimate_value(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Return of each action sequence: discounted model rewards over H, plus the bootstrapped Q."""
        G, discount = 0.0, 1.0
        for a in actions.unbind(0):
            G = G + discount * self.model.two_hot.decode(self.model.reward_logits(z, a))
            z = self.model.next(z, a)
            discount = discount * self.config.gamma
        _, a, _ = self.model.policy(z)
        return G + discount * self.model.Q(z, a, "avg")

    @torch.no_grad()
    def plan(self, z: torch.Tensor, t0: bool = False, eval: bool = False) -> torch.Tensor:
        """MPPI from latent z, seeded with policy-prior trajectories, warm-started from the last solution."""
        c, A = self.config, self.action_dim
        pi_actions = torch.empty(c.horizon, c.num_pi_trajs, A, device=z.device)
        if c.num_pi_trajs:
            _z = z.expand(c.num_pi_trajs, -1)
            for t in range(c.horizon):
                pi_actions[t] = self.model.policy(_z)[1]
                if t < c.horizon - 1:
                    _z = self.model.next(_z, pi_actions[t])
        mean = torch.zeros(c.horizon, A, device=z.device)
        if not t0:
            mean[:-1] = self.previous_mean[1:]  # warm start: last step's solution shifted by one
        z = z.expand(c.num_samples, -1)
        actions, mean, std = mppi(lambda sampled: self.estimate_value(z, sampled), mean, pi_actions, c,
                                  self.iterations)
        self.previous_mean.copy_(mean)
        action = actions[0]
        if not eval:
            action = action + std[0] * torch.randn(A, device=z.device)
        return action.clamp(-1, 1)

    # --- learning (Sec. 3.2) ---------------------------------------------------------------------------------

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One update on windows of H + 1 steps: world model by eq. 3, then the policy prior by eq. 4."""
        c, m = self.config, self.model
        device = self.device
        obs = batch["observation"].to(device)
        action = batch["action"][1:].to(device)           # a_t taken at o_t, t = 0..H-1
        reward = batch["reward"][1:].to(device)
        alive = 1.0 - batch["terminated"][1:].to(device)
        H = action.shape[0]
        if obs.shape[0] != H + 1 or H != c.horizon:
            raise ValueError(f"TD-MPC2 update needs windows of horizon + 1 = {c.horizon + 1} steps, got {obs.shape[0]}")

        with torch.no_grad():
            next_z = m.encode(obs[1:].flatten(0, 1)).unflatten(0, (H, -1))
            _, next_a, _ = m.policy(next_z)
            td_target = reward + c.gamma * alive * m.Q(next_z, next_a, "min", target=True)

        m.train()
        z = m.encode(obs[0])
        zs = [z]
        consistency_loss = 0.0
        for t in range(H):
            z = m.next(z, action[t])
            consistency_loss = consistency_loss + c.rho ** t * F.mse_loss(z, next_z[t])
            zs.append(z)
        zs_pred = torch.stack(zs[:-1])
        q_logits = m.Qs(torch.cat([zs_pred, action], dim=-1))                   # (num_q, H, B, bins)
        reward_logits = m.reward_logits(zs_pred, action)
        weights = c.rho ** torch.arange(H, device=device, dtype=torch.float32)
        reward_loss = (m.two_hot.loss(reward_logits, reward).mean(-1) * weights).sum()
        value_loss = (m.two_hot.loss(q_logits, td_target.expand(c.num_q, -1, -1)).mean(-1) * weights).sum()
        consistency_loss = consistency_loss / H
        reward_loss = reward_loss / H
        value_loss = value_loss / (H * c.num_q)
        total_loss = (c.consistency_coef * consistency_loss + c.reward_coef * reward_loss
                      + c.value_coef * value_loss)
        total_loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(m.parameters(), c.grad_clip_norm)
        self.optimizers["model"].step()
        self.optimizers["model"].zero_grad(set_to_none=True)

        pi_metrics = self.update_pi(torch.stack(zs).detach())
        m.soft_update_target_Q()
        m.eval()
        losses = {"consistency_loss": consistency_loss, "reward_loss": reward_loss, "value_loss": value_loss,
                  "total_loss": total_loss, "grad_norm": grad_norm}
        return {name: float(value.detach()) for name, value in losses.items()} | pi_metrics

    def update_pi(self, zs: torch.Tensor) -> dict[str, float]:
        """Eq. 4: maximise rho-weighted Q (scaled by the running scale S) plus beta * entropy over the rollout."""
        c, m = self.config, self.model
        _, action, log_prob = m.policy(zs)
        q = m.Q(zs, action, "avg", detach=True)
        self.scale.update(q[0])
        q = q / self.scale.value
        weights = c.rho ** torch.arange(zs.shape[0], device=zs.device, dtype=torch.float32)
        pi_loss = ((-(c.entropy_coef * -log_prob + q)).mean(-1) * weights).mean()
        pi_loss_value = float(pi_loss.detach())
        pi_loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(m.pi.parameters(), c.grad_clip_norm)
        self.optimizers["pi"].step()
        self.optimizers["pi"].zero_grad(set_to_none=True)
        return {"pi_loss": pi_loss_value, "pi_grad_norm": float(grad_norm),
                "pi_entropy": float(-log_prob.detach().mean()),
                "pi_scale": float(self.scale.value)}
