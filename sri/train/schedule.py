"""Data order and learning-rate schedule, both pure functions of the step (which makes resume exact)."""
from __future__ import annotations

from typing import Iterator

import torch

from sri.configs import ConfigError


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields this rank's share of the global batch for steps `start, start+1, …`.

    Epoch e is a permutation seeded by (seed, e); global batch j of an epoch is its slice
    [j*B, (j+1)*B); rank r of W takes positions [r*B/W, (r+1)*B/W) of it. The order is a pure
    function of (seed, step), which makes resume exact.
    """

    def __init__(self, num_items: int, global_batch: int, seed: int, start_step: int = 0,
                 rank: int = 0, world_size: int = 1, stop_step: int | None = None) -> None:
        if num_items < global_batch:
            raise ConfigError(f"the dataset has {num_items} items, fewer than batch_size={global_batch}")
        if global_batch % world_size:
            raise ConfigError(f"batch_size={global_batch} is not divisible by the {world_size} processes")
        self.n, self.b, self.seed = num_items, global_batch, seed
        self.start, self.stop = start_step, stop_step
        self.rank, self.world = rank, world_size
        self.per_epoch = num_items // global_batch
        self._perm_epoch, self._perm = -1, None

    def indices(self, step: int) -> list[int]:
        """This rank's item indices for a global step."""
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        local = self.b // self.world
        lo = j * self.b + self.rank * local
        return self._perm[lo:lo + local].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start
        while self.stop is None or step < self.stop:
            yield self.indices(step)
            step += 1

    def __len__(self) -> int:
        if self.stop is None:
            raise TypeError("infinite sampler")
        return max(0, self.stop - self.start)


def lr_factor(step: int, warmup: int, decay_every: int, decay_rate: float) -> float:
    """Linear warm-up over `warmup` steps, then x`decay_rate` every `decay_every` steps."""
    f = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if decay_every > 0:
        f *= decay_rate ** (step // decay_every)
    return f


class GoalSchedule:
    """A sequence of GECO goals (per element): the run's `geco_goal`, then each entry of
    `geco_goal_schedule` in turn.

    An entry is ``{"goal": g, "at_step": N}`` (switch when the step reaches N) or
    ``{"goal": g, "after_reached": H}`` (switch H steps after every GECO group's error average
    first met the current goal). It is a state machine of the step and the GECOs' error averages,
    saved in checkpoints (`state_dict`) so that resuming continues it exactly.
    """

    def __init__(self, first_goal: float, entries: list[dict] | None) -> None:
        self.goals = [float(first_goal)] + [float(e["goal"]) for e in entries or []]
        self.entries = [dict(e) for e in entries or []]
        self.index = 0              # which of `goals` is in force
        self.reached_at: int | None = None  # step at which the current goal was first met

    @property
    def goal(self) -> float:
        """The per-element goal in force."""
        return self.goals[self.index]

    def advance(self, step: int, gecos: dict) -> bool:
        """Move to the next goal if its rule says so after `step`; True when the goal changed."""
        if self.index >= len(self.entries):
            return False
        if self.reached_at is None and gecos and all(
                g.err_ema is not None and g.err_ema <= g.goal for g in gecos.values()):
            self.reached_at = step
        rule = self.entries[self.index]
        due = (step >= rule["at_step"] if "at_step" in rule
               else self.reached_at is not None and step - self.reached_at >= rule["after_reached"])
        if not due:
            return False
        self.index += 1
        self.reached_at = None
        return True

    def state_dict(self) -> dict:
        """Plain-python state for checkpoints."""
        return {"index": self.index, "reached_at": self.reached_at, "goals": list(self.goals)}

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict` (ignored when it describes another schedule)."""
        if list(state.get("goals", [])) == self.goals:
            self.index = int(state["index"])
            self.reached_at = None if state.get("reached_at") is None else int(state["reached_at"])
