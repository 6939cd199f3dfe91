"""The whole run's batch order, fixed up front from the seed.

Because step ``k``'s batch is a pure function of (seed, data sizes, settings),
resuming after a crash only needs the step number: no sampler state to save, and
an interrupted run sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xstilts.data.featurize.batching import length_grouped_batches


@dataclass(frozen=True)
class Step:
    source: int  # index of the training set (task or MLM stream)
    units: tuple[int, ...]  # indices of that set's units (examples) in this batch


def _epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, source: int, epoch: int) -> list[list[int]]:
    return length_grouped_batches(lengths, batch_size, seed=int(np.random.SeedSequence([seed, source, epoch])
                                                                  .generate_state(1)[0]))


def build_schedule(lengths: Sequence[Sequence[int]], *, batch_size: int, epochs: float, max_steps: int,
                   seed: int, mixture: str = "proportional", temperature: float = 2.0,
                   weights: Sequence[float] | None = None) -> list[Step]:
    """Steps for several training sets (one per task, plus MLM).

    ``proportional``: each set contributes its batches once per epoch; the sets'
    batches are interleaved in a seeded random order. ``temperature``: each step
    draws a set with probability proportional to ``(n_i * w_i) ** (1 / T)`` (T=1
    is proportional, large T approaches uniform), and each set walks through its
    own epochs. The step budget is ``epochs`` passes over all sets unless
    ``max_steps`` > 0.
    """
    arrays = [np.asarray(x, dtype=np.int64) for x in lengths]
    sizes = np.array([len(a) for a in arrays], dtype=float)
    if not len(arrays) or sizes.min() <= 0:
        raise ValueError(f"every training set needs examples, sizes: {sizes.tolist()}")
    weights = np.ones(len(arrays)) if weights is None else np.asarray(weights, dtype=float)
    per_epoch = int(sum(math.ceil(n / batch_size) for n in sizes))
    total = max_steps if max_steps > 0 else max(1, int(round(per_epoch * epochs)))
    rng = np.random.default_rng([seed, 99])

    streams = [_Stream(a, batch_size, seed, i) for i, a in enumerate(arrays)]
    steps: list[Step] = []
    if mixture == "proportional" and np.allclose(weights, 1.0):
        epoch = 0
        while len(steps) < total:
            order = [(i, b) for i, s in enumerate(streams) for b in s.epoch(epoch)]
            for j in rng.permutation(len(order)):
                steps.append(Step(order[j][0], tuple(order[j][1])))
            epoch += 1
        return steps[:total]
    t = 1.0 if mixture == "proportional" else temperature
    p = (sizes * weights) ** (1.0 / t)
    p = p / p.sum()
    for source in rng.choice(len(streams), size=total, p=p):
        steps.append(Step(int(source), tuple(streams[source].next())))
    return steps


class _Stream:
    """One set's batches, epoch after epoch."""

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, source: int) -> None:
        self.lengths, self.batch_size, self.seed, self.source = lengths, batch_size, seed, source
        self._epoch, self._queue = -1, []

    def epoch(self, e: int) -> list[list[int]]:
        return _epoch_batches(self.lengths, self.batch_size, self.seed, self.source, e)

    def next(self) -> list[int]:
        if not self._queue:
            self._epoch += 1
            self._queue = self.epoch(self._epoch)[::-1]
        return self._queue.pop()
