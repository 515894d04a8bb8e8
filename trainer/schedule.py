"""The learning-rate schedule: constant, then linear decay to zero (a pure function of the step)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pairforge.trainer.config import OptimConfig


@dataclass(frozen=True)
class Schedule:
    """Step counts of a run.

    Attributes:
        constant_steps: steps at the initial learning rate.
        decay_steps: steps of linear decay afterwards.
        steps_per_epoch: optimizer steps per pass over the train split (all ranks together).
        resume_step: when a run is extended (``--resume --steps N`` after its decay began), the
            step it was extended at; 0 otherwise.
        resume_factor: the lr factor of the last step before ``resume_step``; from there the
            factor falls linearly to zero at the new end, so the lr never rises.
        extended_steps: steps added by the extension (after ``constant_steps + decay_steps``).
    """

    constant_steps: int
    decay_steps: int
    steps_per_epoch: int
    resume_step: int = 0
    resume_factor: float = 1.0
    extended_steps: int = 0

    @property
    def total_steps(self) -> int:
        return self.constant_steps + self.decay_steps + self.extended_steps


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

    1 for the first ``constant_steps``; then decay step *k* (1-based) is 1 - k / (decay_steps + 1),
    so the last step still learns (1 / (decay_steps + 1)). The official implementation applies the
    same kind of rule once per epoch, and its last epoch runs at lr 0 (README, "where pairforge
    differs from the reference"): per step, pairforge is never below it and every step learns.
    An extended schedule (see :func:`extend_schedule`) continues from ``resume_factor``
    at ``resume_step`` linearly to zero instead.
    """
    if schedule.resume_step and step >= schedule.resume_step:
        remaining = schedule.total_steps - schedule.resume_step
        return max(0.0, schedule.resume_factor * (1.0 - (step - schedule.resume_step + 1) / (remaining + 1)))
    if step < schedule.constant_steps or schedule.decay_steps == 0:
        return 1.0
    into_decay = step - schedule.constant_steps + 1
    return max(0.0, 1.0 - into_decay / (schedule.decay_steps + 1))


def resumed_schedule(saved: dict[str, Any] | None, step: int, schedule: Schedule) -> Schedule:
    """The schedule a run resumed at ``step`` follows when its config now plans ``schedule``: the
    checkpoint's own (``saved``, as stored in its state, with any earlier extension) when
    ``schedule`` has as many steps, extended by :func:`extend_schedule` when it has more
    (``--steps``). Fewer steps is ``schedule`` itself (``train --resume`` refuses it:
    :func:`pairforge.trainer.run.refuse_shorter`).
    """
    planned = Schedule(**saved) if saved else None
    if planned is None or schedule.total_steps < planned.total_steps:
        return schedule
    if schedule.total_steps == planned.total_steps:
        return planned
    return extend_schedule(planned, step, schedule.total_steps)


def extend_schedule(old: Schedule, step: int, total_steps: int) -> Schedule:
    """The schedule of a run extended to ``total_steps`` at ``step``, continuous in the lr.

    Re-planning the whole run for the new length would re-stretch the decay and raise the lr
    of a run that had already decayed. Instead:

    - still in the constant phase: the constant phase keeps its length; the decay now ends
      at ``total_steps``;
    - already decaying (or finished): the lr continues from the last step's value and falls
      linearly to zero at ``total_steps``;
    - ``total_steps`` not beyond ``old``'s end (an interrupted run resumed as planned):
      ``old`` unchanged.
    """
    if total_steps <= old.total_steps or step >= total_steps:
        return old
    if step <= old.constant_steps and old.resume_step == 0:
        return Schedule(old.constant_steps, total_steps - old.constant_steps, old.steps_per_epoch)
    factor = lr_factor(step - 1, old) if step > 0 else 1.0
    return Schedule(old.constant_steps, old.decay_steps, old.steps_per_epoch, step, factor,
                    total_steps - old.constant_steps - old.decay_steps)


def describe_schedule(schedule: Schedule, lr: float) -> str:
    """One line for people: the lr plan in steps and epochs."""
    per_epoch = schedule.steps_per_epoch

    def span(steps: int) -> str:
        return f"{steps} steps ({steps / per_epoch:.4g} epochs)"

    if schedule.resume_step:
        return (f"lr {lr:g} for the first {schedule.constant_steps} steps, decayed, then (extended at step "
                f"{schedule.resume_step}) from {lr * schedule.resume_factor:.3g} linearly to 0 at step "
                f"{schedule.total_steps}")
    if schedule.decay_steps == 0:
        return f"lr {lr:g} constant for {span(schedule.constant_steps)}"
    return (f"lr {lr:g} constant for {span(schedule.constant_steps)}, then linear decay to 0 over "
            f"{span(schedule.decay_steps)}")
