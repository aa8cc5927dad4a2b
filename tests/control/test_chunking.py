"""ChunkExecutor: denoising runs ahead on a worker thread, `step` never waits for it, and a chunk that
arrives late skips the actions whose steps already passed."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from agent_stack.control.diffusion.chunking import ChunkExecutor


class GatedPredictor:
    """Chunk r holds rows (r, i) for i in 0..Tp-1; each prediction waits until the test releases it."""

    def __init__(self, horizon: int) -> None:
        self.horizon, self.requests, self.snapshots = horizon, 0, []
        self.release = threading.Semaphore(0)

    def __call__(self, snapshot) -> np.ndarray:
        request = self.requests
        self.requests += 1
        self.snapshots.append(snapshot)
        assert self.release.acquire(timeout=10)
        return np.array([[request, i] for i in range(self.horizon)], dtype=np.float32)


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert predicate()


def test_inference_runs_ahead_and_late_chunks_skip_executed_steps():
    predictor = GatedPredictor(horizon=16)
    executor = ChunkExecutor(predictor, action_steps=8, lookahead=3)
    observation = iter(range(1000))

    assert executor.step(lambda: next(observation)) is None  # first request in flight, nothing to execute
    assert executor.step(lambda: next(observation)) is None
    wait_until(lambda: predictor.requests == 1)
    predictor.release.release()
    wait_until(lambda: executor._pending.done())
    executed = []
    for _ in range(6):  # chunk 0, actions 0..5; with 3 of its first 8 left (at action 5) chunk 1 is requested
        executed.append(tuple(executor.step(lambda: next(observation))))
    assert executed == [(0, i) for i in range(6)]
    wait_until(lambda: predictor.requests == 2)
    assert predictor.snapshots == [0, 1]  # the snapshot is taken when the request starts

    started = time.perf_counter()
    for _ in range(4):  # inference is still gated: the old chunk keeps running past its first 8
        executed.append(tuple(executor.step(lambda: next(observation))))
    assert time.perf_counter() - started < 0.5, "step waited for inference"
    assert executed[6:] == [(0, 6), (0, 7), (0, 8), (0, 9)]

    predictor.release.release()
    wait_until(lambda: executor._pending.done())
    # Requested as chunk-0 action 5 ran; 5 actions ran since the snapshot: chunk 1 starts at its action 5.
    assert tuple(executor.step(lambda: next(observation))) == (1, 5)
    assert executor.skipped_actions == 5 and executor.chunks_received == 2
    executor.close()


def test_exhausted_chunk_gives_nothing_until_the_next_arrives():
    predictor = GatedPredictor(horizon=4)
    executor = ChunkExecutor(predictor, action_steps=2, lookahead=0)
    predictor.release.release()
    assert executor.step(lambda: "obs") is None
    wait_until(lambda: executor._pending.done())
    actions = [executor.step(lambda: "obs") for _ in range(6)]
    assert [tuple(a) for a in actions[:4]] == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert actions[4:] == [None, None]  # the whole horizon ran; the robot holds
    predictor.release.release()
    wait_until(lambda: executor._pending.done())
    # Requested when chunk-0 action 2 ran; actions 2 and 3 ran since: chunk 1 starts at its action 2.
    assert tuple(executor.step(lambda: "obs")) == (1, 2)
    executor.close()


def test_errors_of_the_predictor_surface_in_step():
    def failing(snapshot):
        raise FloatingPointError("denoiser produced NaN")

    executor = ChunkExecutor(failing, action_steps=4, lookahead=1)
    executor.step(lambda: None)
    wait_until(lambda: executor._pending.done())
    with pytest.raises(FloatingPointError, match="NaN"):
        executor.step(lambda: None)
    with pytest.raises(ValueError, match="lookahead"):
        ChunkExecutor(failing, action_steps=4, lookahead=4)
    executor.close()
