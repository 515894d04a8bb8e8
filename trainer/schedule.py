"""The learning-rate schedule: constant, then linear decay to zero (a pure function of the step)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pairforge.trainer.config import OptimConfig


@dataclass(frozen=True)
class Schedule:
    """Step counts of a run.

    Attributes:
        constant_steps: steps at the initial learning rate.
        decay_steps: steps of linear decay afterwards.
        steps_per_epoch: optimizer steps per pass over the train split (all ranks together).
    """

    constant_steps: int
    decay_steps: int
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return self.constant_steps + self.decay_steps


def make_schedule(config: OptimConfig, train_count: int, batch_size: int, world_size: int = 1) -> Schedule:
    """Resolve epochs (or ``config.steps``) into step counts.

    With ``steps`` set, the run is ``steps`` long and keeps the epochs : decay_epochs ratio
    (all constant when both are 0).
    """
    steps_per_epoch = max(1, math.ceil(max(train_count, 1) / (batch_size * world_size)))
    if config.steps is not None:
        epochs_total = config.epochs + config.decay_epochs
        decay = round(config.steps * config.decay_epochs / epochs_total) if epochs_total else 0
        return Schedule(config.steps - decay, decay, steps_per_epoch)
    return Schedule(config.epochs * steps_per_epoch, config.decay_epochs * steps_per_epoch, steps_per_epoch)


def lr_factor(step: int, schedule: Schedule) -> float:
    """Multiplier of the initial learning rate for optimizer step ``step`` (0-based).

    1 for the first ``constant_steps``; then falls linearly so that the last step still
    learns (1 / (decay_steps + 1)), as in the official implementation's per-epoch rule.
    """
    if step < schedule.constant_steps or schedule.decay_steps == 0:
        return 1.0
    into_decay = step - schedule.constant_steps + 1
    return max(0.0, 1.0 - into_decay / (schedule.decay_steps + 1))
