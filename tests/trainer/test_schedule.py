"""The lr schedule: the paper's constant-then-linear rule, and extending a run without raising the lr."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.trainer.schedule import (
    Schedule,
    describe_schedule,
    extend_schedule,
    lr_factor,
    resumed_schedule,
)

TINY = ["--crop-size", "32", "--load-size", "36", "--generator", "unet", "--generator-channels", "8",
        "--discriminator-channels", "8", "--num-workers", "0", "--log-every", "1", "--max-val-samples", "0"]


def test_lr_factor_known_values() -> None:
    schedule = Schedule(constant_steps=2, decay_steps=3, steps_per_epoch=1)
    assert [lr_factor(step, schedule) for step in range(5)] == [1.0, 1.0, 0.75, 0.5, 0.25]


def test_extending_a_decayed_run_continues_from_the_last_lr() -> None:
    old = Schedule(constant_steps=2, decay_steps=3, steps_per_epoch=1)  # finished at step 5, last factor 0.25
    extended = extend_schedule(old, step=5, total_steps=8)
    factors = [lr_factor(step, extended) for step in range(8)]
    assert factors[:5] == [lr_factor(step, old) for step in range(5)]  # the past is unchanged
    assert factors[5:] == pytest.approx([0.25 * 3 / 4, 0.25 * 2 / 4, 0.25 * 1 / 4])
    assert all(later <= earlier for earlier, later in zip(factors, factors[1:], strict=False))  # never rises
    # re-planning the whole run for 8 steps (the old behaviour) would have raised it
    replanned = Schedule(constant_steps=3, decay_steps=5, steps_per_epoch=1)
    assert lr_factor(5, replanned) > factors[4]
    assert "extended at step 5" in describe_schedule(extended, 2e-4)


def test_extending_in_the_constant_phase_keeps_it_and_stretches_the_decay() -> None:
    old = Schedule(constant_steps=4, decay_steps=4, steps_per_epoch=2)
    extended = extend_schedule(old, step=3, total_steps=12)
    assert extended == Schedule(4, 8, 2)
    assert [lr_factor(step, extended) for step in range(4)] == [1.0] * 4


def test_resuming_as_planned_keeps_the_schedule() -> None:
    old = Schedule(constant_steps=4, decay_steps=4, steps_per_epoch=2)
    assert extend_schedule(old, step=5, total_steps=8) is old
    assert extend_schedule(old, step=5, total_steps=6) is old


@pytest.mark.slow
def test_resume_steps_keeps_lr_continuous_and_nothing_left_says_so(shard_factory, tmp_path: Path) -> None:
    root = shard_factory(kind="edges", count=4, shards=1, size=40)
    runs = tmp_path / "runs"
    runner = CliRunner()
    first = runner.invoke(cli, ["train", str(root), "-o", str(runs), "--steps", "4", "--epochs", "1",
                                "--decay-epochs", "1", "-q", *TINY])
    assert first.exit_code == 0, first.output
    run = runs / "00001-pix2pix"
    again = runner.invoke(cli, ["train", "--resume", str(run), "--steps", "4"])
    assert again.exit_code == 0, again.output
    assert "0.0 images/s" not in again.output and "nothing left to do" in again.output
    dry = runner.invoke(cli, ["train", "--resume", str(run), "--steps", "8", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    resolved = json.loads(dry.stdout)["resolved"]
    assert resolved["steps_done"] == 4 and resolved["schedule"]["resume_step"] == 4
    extended = runner.invoke(cli, ["train", "--resume", str(run), "--steps", "8"])
    assert extended.exit_code == 0, extended.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    lrs = [row["lr"] for row in rows if "lr" in row]
    assert len(lrs) == 8
    assert all(later <= earlier + 1e-12 for earlier, later in zip(lrs, lrs[1:], strict=False)), lrs
    assert json.loads((run / "config.json").read_text())["schedule"]["resume_step"] == 4
    assert "%|" in extended.stderr and "%|" not in first.stderr  # -q hides the training progress bar
    assert "extending the run from 4 to 8 steps" in extended.stderr  # says exactly what it does


def test_resumed_schedule_extends_only_a_longer_plan() -> None:
    """train --resume and train --dry-run --resume follow the checkpoint's schedule, stretched only for more steps."""
    saved = Schedule(constant_steps=100, decay_steps=100, steps_per_epoch=10)
    longer = Schedule(constant_steps=150, decay_steps=150, steps_per_epoch=10)
    shorter = Schedule(constant_steps=50, decay_steps=50, steps_per_epoch=10)
    stored = dataclasses.asdict(saved)
    assert resumed_schedule(stored, 120, longer) == extend_schedule(saved, 120, 300)
    assert resumed_schedule(stored, 120, longer).total_steps == 300
    assert resumed_schedule(stored, 120, shorter) is shorter and resumed_schedule(None, 120, longer) is longer
