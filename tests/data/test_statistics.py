"""Normalisation statistics: exact on known data, cached beside the data, invalidated when stale."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from agent_stack.control.osc import quat_to_rot6d
from agent_stack.data.rlds import open_rlds
from agent_stack.data.statistics import compute_statistics, load_or_compute_statistics, statistics_path
from agent_stack.normalization import DatasetStatistics, Statistics
from tests.data.conftest import target_pose, write_dataset

LENGTHS = [5, 7, 4, 6, 5, 8]


def _actions_states_and_targets():
    actions = np.concatenate([np.stack([[t] * 6 + [t % 2] for t in range(n)]) for n in LENGTHS]).astype(np.float64)
    states = np.concatenate([np.stack([[e + t] * 3 for t in range(n)]) for e, n in enumerate(LENGTHS)]).astype(float)
    targets = np.array([[*target_pose(e, t)[:3], *quat_to_rot6d(target_pose(e, t)[3:]), t % 2]
                        for e, n in enumerate(LENGTHS) for t in range(n)])
    return actions, states, targets


def test_statistics_match_numpy(dataset_dir):
    statistics = compute_statistics(open_rlds(str(dataset_dir)))
    actions, states, targets = _actions_states_and_targets()
    assert statistics.num_episodes == 6 and statistics.num_steps == len(actions)
    assert DatasetStatistics.from_json(json.loads(json.dumps(statistics.to_json()))) == statistics
    for stats, values in ((statistics.action, actions), (statistics.state, states), (statistics.target, targets)):
        np.testing.assert_allclose(stats.mean, values.mean(0), atol=1e-9)
        np.testing.assert_allclose(stats.std, values.std(0), atol=1e-9)
        np.testing.assert_allclose(stats.min, values.min(0))
        np.testing.assert_allclose(stats.max, values.max(0))
        np.testing.assert_allclose(stats.p01, np.percentile(values, 1, axis=0), atol=1e-5)
        np.testing.assert_allclose(stats.p99, np.percentile(values, 99, axis=0), atol=1e-5)


def test_normalisation_maps_percentiles_to_unit_range_and_keeps_the_gripper(dataset_dir):
    statistics = compute_statistics(open_rlds(str(dataset_dir)))
    low, high = np.array(statistics.action.p01), np.array(statistics.action.p99)
    action = np.stack([low, high, (low + high) / 2, high + 10]).astype(np.float32)
    action[:, 6] = [0.0, 1.0, 0.5, 1.0]
    normalized = statistics.normalize_action(action)
    np.testing.assert_allclose(normalized[:, :6], [[-1] * 6, [1] * 6, [0] * 6, [1] * 6], atol=1e-6)
    np.testing.assert_array_equal(normalized[:, 6], action[:, 6])
    np.testing.assert_allclose(statistics.denormalize_action(normalized[:3]), action[:3], atol=1e-5)


def test_constant_dimensions_pass_through():
    stats = Statistics(mean=[1.0, 0.0], std=[0.0, 1.0], min=[1.0, -1.0], max=[1.0, 1.0], p01=[1.0, -1.0],
                       p99=[1.0, 1.0])
    np.testing.assert_allclose(stats.normalize(np.array([[1.0, 0.5]], np.float32)), [[1.0, 0.5]])


def test_cache_is_reused_and_recomputed_when_stale(tmp_path, monkeypatch):
    builder_dir = write_dataset(tmp_path / "a", LENGTHS)
    source = open_rlds(str(builder_dir))
    first = load_or_compute_statistics(source)
    path = statistics_path(source, "train")
    assert path.parent == builder_dir and DatasetStatistics.load(path) == first

    calls = []
    monkeypatch.setattr("agent_stack.data.statistics.compute_statistics",
                        lambda *a: calls.append(a) or first)
    assert load_or_compute_statistics(source) == first and not calls  # read from the cache

    stale = json.loads(path.read_text())
    stale["fingerprint"] = "computed-from-other-data"
    path.write_text(json.dumps(stale))
    load_or_compute_statistics(source)
    path.write_text("{ not json")
    load_or_compute_statistics(source)
    assert len(calls) == 2


def _save_repeatedly(path: str, start, times: int) -> None:
    unit = [0.0] * 6 + [1.0]
    action = Statistics(mean=unit, std=unit, min=unit, max=unit, p01=unit, p99=unit)
    stats = DatasetStatistics(dataset="d", split="train", fingerprint="same-data", num_episodes=1,
                              num_steps=1, action=action, state=None)
    start.wait()
    for _ in range(times):
        stats.save(Path(path))


def test_processes_saving_the_same_statistics_at_once_all_succeed(tmp_path):
    # Every rank of a distributed job computes and caches the statistics of the same dataset.
    context = multiprocessing.get_context("fork")
    start = context.Barrier(4)
    path = tmp_path / "agent_stack_statistics_train.json"
    workers = [context.Process(target=_save_repeatedly, args=(str(path), start, 200)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    assert DatasetStatistics.load(path).fingerprint == "same-data"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_unwritable_data_dir_caches_in_home(tmp_path, monkeypatch):
    builder_dir = write_dataset(tmp_path / "a", LENGTHS)
    source = open_rlds(str(builder_dir))
    monkeypatch.setattr("agent_stack.data.statistics.CACHE_DIR", tmp_path / "cache")
    # A read-only download (tests run as root here, who can write anywhere, so the check is what's faked).
    monkeypatch.setattr("agent_stack.data.statistics.os.access", lambda path, mode: False)
    load_or_compute_statistics(source)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [
        f"{source.name}-1.0.0-agent_stack_statistics_train.json"]
    assert not list(builder_dir.glob("agent_stack_statistics_*"))


def test_malformed_statistics_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="disagree"):
        Statistics(mean=[0.0], std=[1.0, 1.0], min=[0.0], max=[0.0], p01=[0.0], p99=[0.0])
    with pytest.raises(ValueError, match="non-finite"):
        Statistics(mean=[float("nan")], std=[1.0], min=[0.0], max=[0.0], p01=[0.0], p99=[0.0])
    path = tmp_path / "stats.json"
    path.write_text(json.dumps({"format_version": 1, "dataset": "x"}))
    with pytest.raises(ValueError, match=str(path)):
        DatasetStatistics.load(path)
