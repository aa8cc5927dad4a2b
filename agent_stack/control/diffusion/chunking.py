"""Executing action chunks without waiting on inference: the next chunk is denoised on a worker thread while
the current one runs.

At each policy step the controller asks `ChunkExecutor.step()` for the action to execute now. When
`lookahead` actions of the current chunk's executed part (its first Ta) remain, the executor snapshots the
observation history and starts denoising the next chunk in the background. The new chunk was predicted
from an observation that is `n` steps old by the time it arrives, so its first `n` actions are skipped
(they belong to steps already executed with the previous chunk). If inference is slower than the chunk,
the old chunk keeps running up to its full prediction horizon Tp before the executor has nothing to give.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from agent_stack.control.diffusion.policy import Snapshot


class ChunkExecutor:
    def __init__(self, predict: Callable[[Snapshot], np.ndarray], action_steps: int, lookahead: int) -> None:
        if not 0 <= lookahead < action_steps:
            raise ValueError(f"lookahead must be in [0, action_steps={action_steps}), got {lookahead}")
        self.predict, self.action_steps, self.lookahead = predict, action_steps, lookahead
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="denoise")
        self._pending: Future | None = None
        self._steps_since_request = 0
        self._chunk: np.ndarray | None = None
        self._index = 0
        self.chunks_received = 0
        self.skipped_actions = 0

    def step(self, snapshot: Callable[[], Snapshot]) -> np.ndarray | None:
        """The action to execute now, or None while no chunk has arrived (or the last one ran out). Never
        waits for inference; an exception raised by `predict` comes out of here."""
        if self._pending is not None and self._pending.done():
            chunk = self._pending.result()
            self._pending = None
            self._chunk, self._index = chunk, min(self._steps_since_request, len(chunk))
            self.skipped_actions += self._index
            self.chunks_received += 1
        remaining = self.action_steps - self._index
        if self._pending is None and (self._chunk is None or remaining <= self.lookahead):
            self._pending = self._pool.submit(self.predict, snapshot())
            self._steps_since_request = 0
        if self._chunk is None or self._index >= len(self._chunk):
            return None
        action = self._chunk[self._index]
        self._index += 1
        self._steps_since_request += 1
        return action

    def reset(self) -> None:
        """Drop the current chunk; a denoising run in flight is left to finish and then ignored."""
        if self._pending is not None:
            self._pending.cancel()
        self._pending, self._chunk, self._index = None, None, 0

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
