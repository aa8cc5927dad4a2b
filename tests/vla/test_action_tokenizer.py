import pytest
import torch

from agent_stack.normalization import GRIPPER_INDEX
from agent_stack.vla import ActionTokenizer


@pytest.mark.parametrize("action_dim", [7, 10])  # deltas, targets
def test_every_bin_decodes_to_a_value_that_encodes_back_to_it(action_dim):
    tokenizer = ActionTokenizer(256, action_dim=action_dim)
    bins = torch.arange(256)[:, None].expand(-1, action_dim)
    assert torch.equal(tokenizer.encode(tokenizer.decode(bins)), bins)
    assert tokenizer.low[-1] == 0.0 and bool((tokenizer.low[:-1] == -1.0).all())  # the gripper is last


def test_decode_of_encode_is_within_half_a_bin():
    tokenizer = ActionTokenizer(256)
    actions = torch.rand(10_000, 7) * 2 - 1
    actions[:, GRIPPER_INDEX] = torch.rand(10_000)
    error = (tokenizer.decode(tokenizer.encode(actions)) - actions).abs()
    widths = (tokenizer.high - tokenizer.low).float() / 256
    assert bool((error <= widths / 2 + 1e-6).all())


def test_range_ends_and_outside_values_land_in_the_end_bins():
    tokenizer = ActionTokenizer(256)
    low = torch.tensor([[-1.0] * 6 + [0.0], [-5.0] * 7])
    high = torch.tensor([[1.0] * 7, [5.0] * 7])
    assert torch.equal(tokenizer.encode(low), torch.zeros(2, 7, dtype=torch.long))
    assert torch.equal(tokenizer.encode(high), torch.full((2, 7), 255))


def test_gripper_bins_cover_the_opening_range():
    tokenizer = ActionTokenizer(256)
    decoded = tokenizer.decode(torch.tensor([[0] * 7, [255] * 7]))
    assert decoded[0, GRIPPER_INDEX] == pytest.approx(0.5 / 256)
    assert decoded[1, GRIPPER_INDEX] == pytest.approx(1 - 0.5 / 256)
    assert decoded[0, 0] == pytest.approx(-1 + 1 / 256)


def test_unit_mapping_round_trips():
    tokenizer = ActionTokenizer(256)
    actions = torch.rand(100, 7) * 2 - 1
    actions[:, GRIPPER_INDEX] = torch.rand(100)
    assert torch.allclose(tokenizer.from_unit(tokenizer.to_unit(actions)), actions, atol=1e-6)


def test_bad_tokens_and_bounds_are_refused():
    tokenizer = ActionTokenizer(256)
    with pytest.raises(ValueError, match="action tokens"):
        tokenizer.decode(torch.full((1, 7), 256))
    with pytest.raises(ValueError, match="low < high"):
        ActionTokenizer(256, low=torch.ones(7), high=torch.ones(7))
    with pytest.raises(ValueError, match="num_bins"):
        ActionTokenizer(1)
