"""Issue 20, the training run's lifecycle: resume continues exactly or refuses, one process owns a run
folder, `--init-from` starts a new run from a run's weights, a full disk and a damaged newest checkpoint.

The trainer twin of tests/pairforge/test_hostile.py for points 1, 2, 3 (run folders) and 10.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from pairforge.cli import cli
from pairforge.files import file_sha256
from pairforge.locks import hold
from pairforge.trainer import checkpoint, run
from pairforge.trainer.loop import train
from pairforge.trainer.run import resume_config

pytestmark = pytest.mark.slow  # subprocess and multi-run lifecycles; the fast set keeps a tiny resume (test_recipe)

REPO = Path(__file__).resolve().parents[2]
TINY = ["--crop-size", "64", "--load-size", "72", "--generator", "unet", "--generator-channels", "8",
        "--discriminator-channels", "8", "--num-workers", "0", "--batch-size", "2", "--shuffle-buffer", "8",
        "--val-every", "0", "--sample-every", "0", "--max-val-samples", "4", "--log-every", "1"]


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def _error(output: str) -> str:
    """The one error line of a failed command (progress bars may precede it)."""
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and output.rstrip().endswith(errors[0]), output
    return errors[0].removeprefix("Error: ")


def _train_rows(run_dir: Path, name: str = "metrics.jsonl") -> list[dict]:
    lines = (run_dir / name).read_text().splitlines()
    return [row for row in map(json.loads, lines) if row.get("split") != "val"]


def _weights(folder: Path, name: str = "generator") -> dict[str, torch.Tensor]:
    return load_file(str(folder / f"{name}.safetensors"))


def _assert_same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(second[key], first[key], rtol=0, atol=0, msg=key)


@dataclass(frozen=True)
class Runs:
    """Trained once per module and never written to: copy a run before resuming it."""

    shards: Path
    straight: Path
    """4 steps in one go."""
    half: Path
    """The same 4-step run stopped at step 2 (its checkpoint says step 2 of 4)."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    from tests.trainer.conftest import make_tiny_config, write_shards

    root = tmp_path_factory.mktemp("lifecycle")
    shards = write_shards(root / "shards", kind="edges")
    straight = train(make_tiny_config(shards, root / "straight", steps=4)).run_dir
    half = train(make_tiny_config(shards, root / "half", steps=4), stop_at=2).run_dir
    return Runs(shards, straight, half)


@pytest.fixture()
def half_run(runs: Runs, tmp_path: Path) -> Path:
    """A copy of :attr:`Runs.half` to resume."""
    return Path(shutil.copytree(runs.half, tmp_path / "runs" / runs.half.name))


@pytest.fixture()
def source_run(runs: Runs) -> Path:
    """A finished 4-step run to start new runs from (read only)."""
    return runs.straight


# -- 1. resume continues exactly or refuses ------------------------------------------------------------------


def test_1_resume_refuses_changed_options_naming_recorded_and_given(half_run: Path) -> None:
    before = sorted(p.name for p in half_run.rglob("*"))
    code, output = _invoke("train", "--resume", half_run, "--lr", "0.01", "--batch-size", "4", "--crop-size", "32",
                           "--no-flip", "--num-workers", "1")
    assert code != 0
    message = _error(output)  # one line, listing every difference
    for expected in ("--lr (recorded 0.0002, given 0.01)", "--batch-size (recorded 2, given 4)",
                     "--crop-size (recorded 64, given 32)", "--no-flip (recorded flip=True, given flip=False)",
                     "--num-workers (recorded 0, given 1)"):
        assert expected in message, message
    assert "--init-from" in message and "Drop them" in message  # the way out
    assert sorted(p.name for p in half_run.rglob("*")) == before  # nothing was trained or written


def test_1_resume_refuses_other_shards(half_run: Path, shard_factory) -> None:
    other = shard_factory(kind="edges", count=6, shards=3)
    recorded = resume_config(half_run).data.shards
    code, output = _invoke("train", other, "--resume", half_run)
    assert code != 0 and f"SHARDS (recorded {recorded}, given {other})" in output, output
    # the same shard set moved elsewhere is the same dataset: accepted, and the move is recorded
    moved = Path(recorded).parent / "moved"
    shutil.copytree(recorded, moved)
    code, output = _invoke("train", moved, "--resume", half_run)
    assert code == 0, output
    document = json.loads((half_run / "config.json").read_text())
    assert document["data"]["shards"] == str(moved)
    assert document["history"][-1]["changed"] == {"shards": [recorded, str(moved)]}


def test_1_resume_refuses_a_shard_set_rebuilt_in_place(edge_shards: Path, tmp_path: Path, tiny_config) -> None:
    from tests.trainer.conftest import write_shards

    half_run = train(tiny_config(edge_shards, tmp_path / "runs", steps=4), stop_at=1).run_dir
    shutil.rmtree(edge_shards)
    write_shards(edge_shards, kind="edges", count=10, shards=2)
    code, output = _invoke("train", "--resume", half_run)
    assert code != 0 and "its dataset.json changed since the run started" in output, output
    assert "(train 8, val 2)" in output and "(train 10, val 2;" in output


def test_1_resume_on_a_modified_shard_set_follows_the_refusal_s_own_advice(half_run: Path) -> None:
    """The refusal names --allow-modified-shards; given on resume, it is accepted and recorded, not refused."""
    shards = Path(resume_config(half_run).data.shards)
    modified = shards.parent / "modified"
    shutil.copytree(shards, modified)
    tar = sorted(modified.glob("train-*.tar"))[0]
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    code, output = _invoke("train", modified, "--resume", half_run)
    assert code != 0 and "--allow-modified-shards" in _error(output), output
    code, output = _invoke("train", modified, "--resume", half_run, "--allow-modified-shards")
    assert code == 0, output
    changed = json.loads((half_run / "config.json").read_text())["history"][-1]["changed"]
    assert changed["allow_modified_shards"] == [False, True], changed


def test_1_steps_below_the_plan_are_refused(half_run: Path) -> None:
    code, output = _invoke("train", "--resume", half_run, "--steps", "1")
    assert code != 0 and "--steps 1 is below step 2" in output and "of 4 planned" in output, output
    code, output = _invoke("train", "--resume", half_run, "--steps", "3")
    assert code != 0 and "--steps 3 would shorten" in output and "above 4 to extend" in output, output
    assert checkpoint.step_of(checkpoint.list_checkpoints(half_run)[-1]) == 2  # nothing ran


def test_1_only_options_actually_given_count(half_run: Path) -> None:
    """The run has batch size 2 and lr 2e-4: the defaults (1, 2e-4) are not "given"; repeating a value is fine."""
    code, output = _invoke("train", "--resume", half_run, "--lr", "0.0002", "--steps", "4")
    assert code == 0, output
    assert "steps      4 / 4" in output


def test_1_allowed_options_are_applied_recorded_and_change_nothing(runs: Runs, half_run: Path) -> None:
    """--device, --val-every, --log-every, ... on resume: recorded in history; the weights are the straight run's."""
    split = half_run
    code, output = _invoke("train", "--resume", split, "--device", "cpu", "--val-every", "1", "--log-every", "2",
                           "--keep-checkpoints", "5", "--checkpoint-every", "1", "--deterministic")
    assert code == 0, output
    history = json.loads((split / "config.json").read_text())["history"]
    assert history[-1]["step"] == 2 and history[-1]["checkpoint"] == "step-000000002"
    assert history[-1]["changed"] == {"device": ["auto", "cpu"], "deterministic": [False, True],
                                      "log_every": [1, 2], "val_every": [0, 1], "checkpoint_every": [0, 1],
                                      "keep_checkpoints": [3, 5]}
    assert [row["step"] for row in _train_rows(split)] == [1, 2, 4]  # logged every 2 after the resume
    assert any(row.get("split") == "val" and row["step"] == 3 for row in map(json.loads, (
        split / "metrics.jsonl").read_text().splitlines()))  # validated every step
    _assert_same_weights(_weights(checkpoint.list_checkpoints(runs.straight)[-1]),
                         _weights(checkpoint.list_checkpoints(split)[-1]))
    assert "resumed" in (split / "report.html").read_text()


def test_1_library_resume_with_another_config_is_refused(half_run: Path, runs: Runs, tiny_config) -> None:
    config = tiny_config(runs.shards, half_run.parent, steps=4, lr=0.01)
    with pytest.raises(run.ResumeError, match=r"--lr \(recorded 0.0002, given 0.01\)"):
        train(config, resume=half_run)


def test_1_resuming_an_extended_run_keeps_its_extension(edge_shards: Path, tmp_path: Path, tiny_config) -> None:
    """A run extended with --steps and interrupted resumes on the extended lr schedule (it was re-planned)."""
    straight = train(tiny_config(edge_shards, tmp_path / "straight", steps=2)).run_dir
    train(resume_config(straight, steps=4), resume=straight)
    split = train(tiny_config(edge_shards, tmp_path / "split", steps=2)).run_dir
    train(resume_config(split, steps=4), resume=split, stop_at=3)
    train(resume_config(split), resume=split)  # no --steps: the recorded 4, on the recorded plan
    lrs = {row["step"]: row["lr"] for row in _train_rows(split)}
    assert lrs == {row["step"]: row["lr"] for row in _train_rows(straight)}
    assert json.loads((split / "config.json").read_text())["schedule"]["resume_step"] == 2


# -- 3. one process owns a run folder ------------------------------------------------------------------------


def _start_resume(run_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "pairforge", "train", "--resume", str(run_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_3_a_second_resume_of_a_running_run_is_refused(half_run: Path) -> None:
    first = _start_resume(half_run, "--steps", "100000")
    try:
        deadline = time.monotonic() + 120
        while not (half_run / ".pairforge.lock").is_file() or str(first.pid) not in (
                half_run / ".pairforge.lock").read_text():
            assert first.poll() is None, first.communicate()[0]
            assert time.monotonic() < deadline, "the first resume never took the run folder"
            time.sleep(0.1)
        second = subprocess.run([sys.executable, "-m", "pairforge", "train", "--resume", str(half_run), "--steps",
                                 "100000"], capture_output=True, text=True, timeout=120,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        assert second.returncode != 0
        assert f"run folder {half_run} is in use by process {first.pid}" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        assert first.poll() is None  # the owner goes on
    finally:
        first.send_signal(signal.SIGTERM)
        output = first.communicate(timeout=120)[0]
    assert "interrupted by SIGTERM" in output, output
    steps = [row["step"] for row in _train_rows(half_run)]
    assert len(steps) == len(set(steps)) and steps[:2] == [1, 2], steps  # one writer: no step twice
    history = json.loads((half_run / "config.json").read_text())["history"]
    assert len(history) == 1  # only the owner resumed
    assert not (half_run / ".pairforge.lock").exists()  # released on exit
    assert train(resume_config(half_run), resume=half_run, stop_at=steps[-1] + 1).steps == steps[-1] + 1


def test_3_run_numbers_are_taken_one_at_a_time(tmp_path: Path) -> None:
    """Two `train`s starting at once in one output folder never share a run number (even with other names)."""
    output = tmp_path / "runs"
    output.mkdir()
    made: list[Path] = []
    with hold(output, "runs folder"):  # another train picking its number
        picker = threading.Thread(target=lambda: made.append(checkpoint.new_run_folder(output, "b")))
        picker.start()
        time.sleep(0.5)
        assert not made  # it waits for its turn
        (output / "00001-a").mkdir()  # what the other train creates before letting go
    picker.join(timeout=30)
    assert made == [output / "00002-b"]


# -- 2. --init-from ---------------------------------------------------------------------------------------------


def test_2_init_from_starts_with_the_source_weights(source_run: Path, shard_factory, tmp_path: Path,
                                                     tiny_config) -> None:
    shards = shard_factory(kind="edges", count=6, shards=2)
    result = train(tiny_config(shards, tmp_path / "new", steps=5, init_from=str(source_run)), stop_at=0)
    source = checkpoint.list_checkpoints(source_run)[-1]
    start = checkpoint.list_checkpoints(result.run_dir)[-1]
    assert start.name == "step-000000000"
    for name in ("generator", "discriminator"):  # known answer: step 0 is the source's weights
        _assert_same_weights(_weights(source, name), _weights(start, name))
    recorded = json.loads((result.run_dir / "config.json").read_text())["init_source"]
    assert recorded["step"] == 4 and recorded["checkpoint"] == str(source)
    assert recorded["generator"]["sha256"] == file_sha256(source / "generator.safetensors")
    assert recorded["discriminator"]["sha256"] == file_sha256(source / "discriminator.safetensors")
    assert "initialised from" in (result.run_dir / "report.html").read_text()


def test_2_init_from_uses_fresh_optimizers_and_the_new_options(source_run: Path, edge_shards: Path,
                                                                tmp_path: Path, tiny_config) -> None:
    result = train(tiny_config(edge_shards, tmp_path / "new", steps=2, lr=1e-3, init_from=str(source_run)))
    document = json.loads((result.run_dir / "config.json").read_text())
    assert document["optim"]["lr"] == 1e-3 and document["schedule"]["constant_steps"] + document["schedule"][
        "decay_steps"] == 2
    state = checkpoint.load_state(checkpoint.list_checkpoints(result.run_dir)[-1])
    for optimizer in ("optimizer_g", "optimizer_d"):  # Adam counts this run's 2 steps, not 4 + 2
        assert {float(s["step"]) for s in state[optimizer]["state"].values()} == {2.0}
        assert state[optimizer]["param_groups"][0]["lr"] == pytest.approx(1e-3 / 2)  # the new run's own decay
    assert [row["step"] for row in _train_rows(result.run_dir)] == [1, 2]


def test_2_init_from_refuses_another_architecture_in_one_line(source_run: Path, edge_shards: Path,
                                                              tmp_path: Path, tiny_config) -> None:
    code, output = _invoke("train", edge_shards, "-o", tmp_path / "new", "--init-from", source_run, "--steps", "2",
                           *TINY, "--generator-channels", "16")
    assert code != 0
    message = _error(output)
    assert "its generator does not fit" in message and "layer model.model.0.weight is (8, 1, 4, 4) in the source " \
           "and (16, 1, 4, 4) here" in message and "--generator-channels 8" in message, message
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())  # no run folder left behind
    with pytest.raises(run.InitFromError, match="--norm batch"):
        train(tiny_config(edge_shards, tmp_path / "new", steps=2, norm="instance", init_from=str(source_run)))


def test_2_init_from_a_discriminator_that_does_not_fit_starts_it_fresh(source_run: Path, edge_shards: Path,
                                                                       tmp_path: Path, tiny_config) -> None:
    result = train(tiny_config(edge_shards, tmp_path / "new", steps=2, n_layers=2, init_from=str(source_run)),
                   stop_at=0)
    recorded = json.loads((result.run_dir / "config.json").read_text())["init_source"]
    assert "sha256" in recorded["generator"] and "does not fit" in recorded["discriminator"]["fresh"]


def test_2_init_from_and_resume_together_is_an_error(source_run: Path) -> None:
    code, output = _invoke("train", "--resume", source_run, "--init-from", source_run)
    assert code != 0 and "give one of them" in output


def test_2_fine_tune_an_imported_reference_generator(edge_shards: Path, tmp_path: Path, tiny_config) -> None:
    """The README's recipe: the reference's generator (3-channel edges in) fine-tuned on 1-channel edge shards."""
    from pairforge.trainer.config import ModelConfig
    from pairforge.trainer.networks import build_generator

    torch.manual_seed(3)
    reference = build_generator(ModelConfig(generator="unet", generator_channels=8, crop_size=64, in_channels=3))
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)  # not the seed-0 initialisation of the new run
    weights = tmp_path / "latest_net_G.pth"
    torch.save(reference.state_dict(), weights)  # U-Net keys are the reference's own
    code, output = _invoke("import", weights, "-o", tmp_path / "edges2shoes", "--kind", "edges")
    assert code == 0, output
    config = tiny_config(edge_shards, tmp_path / "runs", steps=2, init_from=str(tmp_path / "edges2shoes"))
    result = train(config, stop_at=0)
    start = _weights(checkpoint.list_checkpoints(result.run_dir)[-1])
    expected = {k: v for k, v in reference.state_dict().items()}
    expected["model.model.0.weight"] = expected["model.model.0.weight"].sum(1, keepdim=True)  # gray = RGB summed
    _assert_same_weights(expected, start)
    recorded = json.loads((result.run_dir / "config.json").read_text())["init_source"]
    assert "summed into 1" in recorded["generator"]["adapted"] and "no discriminator" in recorded["discriminator"][
        "fresh"]
    # and it computes what the reference computes on the edge map repeated as RGB
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    from pairforge.trainer.networks import build_generator as build

    tuned = build(ModelConfig(generator="unet", generator_channels=8, crop_size=64, in_channels=1)).eval()
    tuned.load_state_dict(start)
    torch.testing.assert_close(tuned(x), reference.eval()(x.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-5)
    code, output = _invoke("train", edge_shards, "-o", tmp_path / "cli", "--init-from", tmp_path / "edges2shoes",
                           "--steps", "1", *TINY)
    assert code == 0, output
    assert "initialised from" in next((tmp_path / "cli").iterdir()).joinpath("report.html").read_text()


# -- 10. a full disk, a damaged newest checkpoint ----------------------------------------------------------------


class _FillingFile:
    """A file whose write stores half the bytes and then fails as a full disk does."""

    def __init__(self, path: Path) -> None:
        self.handle = open(path, "wb")  # noqa: SIM115 - closed in __exit__

    def write(self, data: bytes) -> int:
        self.handle.write(bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self) -> _FillingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def test_10_disk_full_while_saving_a_checkpoint(runs: Runs, tmp_path: Path, monkeypatch) -> None:
    saves = []

    def filling_open(path, mode="r", *args, **kwargs):  # the second checkpoint finds the disk full
        if "w" in mode and Path(path).name == "state.pt":
            saves.append(path)
            if len(saves) == 2:
                return _FillingFile(Path(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "open", filling_open, raising=False)
    code, output = _invoke("train", runs.shards, "-o", tmp_path / "runs", "--steps", "4", "--checkpoint-every", "2",
                           *TINY)
    run_dir = tmp_path / "runs" / "00001-pix2pix"
    assert code != 0
    message = _error(output)
    assert f"no space left on the device while writing {run_dir}/checkpoints/step-000000004/state.pt" in message
    assert "needed for the checkpoint" in message and "free in" in message
    assert f"the last good checkpoint, {run_dir}/checkpoints/step-000000002 (step 2), is untouched" in message
    assert f"pairforge train --resume {run_dir}" in message and "training stopped at step 4 of 4" in message
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000000002"]  # no temporaries
    assert checkpoint.damage(run_dir / "checkpoints" / "step-000000002", ["generator", "discriminator"]) is None
    monkeypatch.undo()
    code, output = _invoke("train", "--resume", run_dir)
    assert code == 0, output
    steps = [row["step"] for row in _train_rows(run_dir)]
    assert steps == [1, 2, 3, 4], steps  # rows 3-4 of the failed attempt were set aside, then redone
    _assert_same_weights(_weights(checkpoint.list_checkpoints(runs.straight)[-1]),  # the run it was meant to be
                         _weights(checkpoint.list_checkpoints(run_dir)[-1]))


def test_10_a_checkpoint_bigger_than_the_free_space_is_refused_before_writing(
    edge_shards: Path, tmp_path: Path, tiny_config, monkeypatch
) -> None:
    monkeypatch.setattr(checkpoint, "free_bytes", lambda folder: 1000)
    expected = (r"step-000000002/generator.safetensors \(1000 B free in .*checkpoints, about 5\.8 MiB needed for the "
                r"checkpoint\); nothing of this checkpoint was kept")
    with pytest.raises(run.TrainingStopped, match=expected) as caught:
        train(tiny_config(edge_shards, tmp_path / "runs", steps=2))
    assert "no checkpoint was saved yet" in str(caught.value)
    run_dir = next((tmp_path / "runs").iterdir())
    assert list((run_dir / "checkpoints").iterdir()) == []


def _tmpfs(folder: Path, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


@pytest.mark.skipif(sys.platform != "linux" or shutil.which("mount") is None, reason="needs Linux mount")
def test_10_a_real_full_disk(edge_shards: Path, tmp_path: Path) -> None:
    """A 9 MiB tmpfs holds one 6 MiB checkpoint of this run, not two: the second save fails, then the resume works."""
    disk = tmp_path / "disk"
    _tmpfs(disk, 9 << 20)
    try:
        options = ["--steps", "3", "--checkpoint-every", "1", "--keep-checkpoints", "1", *TINY]
        code, output = _invoke("train", edge_shards, "-o", disk, *options)
        assert code != 0
        message = _error(output)
        assert "no space left on the device while writing" in message, output
        run_dir = disk / "00001-pix2pix"
        assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000000001"]
        assert checkpoint.damage(run_dir / "checkpoints" / "step-000000001", ["generator", "discriminator"]) is None
        assert "step-000000001 (step 1), is untouched" in message
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        code, output = _invoke("train", "--resume", run_dir)
        assert code == 0, output
        assert [row["step"] for row in _train_rows(run_dir)] == [1, 2, 3]
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)  # even if a file is left open


@pytest.mark.parametrize("damage", ["truncated weights", "missing state"])
def test_10_resume_names_the_newest_intact_checkpoint(runs: Runs, tmp_path: Path, tiny_config, damage: str) -> None:
    run_dir = train(tiny_config(runs.shards, tmp_path / "runs", steps=4, checkpoint_every=2)).run_dir
    newest = run_dir / "checkpoints" / "step-000000004"
    if damage == "truncated weights":
        weights = newest / "generator.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        (newest / "state.pt").unlink()
    code, output = _invoke("train", "--resume", run_dir, "--steps", "6")
    assert code != 0
    message = _error(output)
    intact = run_dir / "checkpoints" / "step-000000002"
    assert f"The newest intact checkpoint of {run_dir} is step-000000002 (step 2)" in message, message
    assert f"pairforge train --resume {intact}" in message
    code, output = _invoke("train", "--resume", intact)  # the way out it names
    assert code == 0, output
    assert (run_dir / "checkpoints" / "step-000000004.abandoned").is_dir()  # kept, but no longer the newest
    assert [row["step"] for row in _train_rows(run_dir)] == [1, 2, 3, 4]
    assert [row["step"] for row in _train_rows(run_dir, "metrics-abandoned.jsonl")] == [3, 4]
    # and it is the run it was: the weights of the run never interrupted
    _assert_same_weights(_weights(checkpoint.list_checkpoints(runs.straight)[-1]),
                         _weights(checkpoint.list_checkpoints(run_dir)[-1]))


def test_2_resuming_an_imported_run_points_to_init_from(tmp_path: Path) -> None:
    from pairforge.trainer.config import ModelConfig
    from pairforge.trainer.networks import build_generator

    weights = tmp_path / "latest_net_G.pth"
    torch.save(build_generator(ModelConfig(generator="unet", generator_channels=8, crop_size=64)).state_dict(), weights)
    assert _invoke("import", weights, "-o", tmp_path / "imported", "--kind", "edges")[0] == 0
    code, output = _invoke("train", tmp_path, "--resume", tmp_path / "imported")
    assert code != 0 and f"--init-from {tmp_path / 'imported'}" in _error(output) and "no training to continue" in output


def test_1_a_run_resumes_with_the_process_count_it_was_trained_with(half_run: Path) -> None:
    """A checkpoint of a 2-process (torchrun) run: one process would read another data order; refused."""
    state_file = checkpoint.list_checkpoints(half_run)[-1] / "state.pt"
    state = checkpoint.load_state(state_file.parent)
    state["data"], state["rng"] = state["data"] * 2, state["rng"] * 2
    torch.save(state, state_file)
    code, output = _invoke("train", "--resume", half_run)
    assert code != 0 and "trained by 2 process(es) and this resume has 1" in output
    assert "torchrun --nproc_per_node 2" in _error(output)


def test_10_disk_full_while_logging_names_metrics_jsonl(runs: Runs, tmp_path: Path, tiny_config, monkeypatch) -> None:
    rows = []

    class FullAfterTwoRows:
        def __init__(self, handle) -> None:
            self.handle = handle

        def write(self, text: str) -> int:
            rows.append(text)
            if len(rows) == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(text)

        def __getattr__(self, name: str):
            return getattr(self.handle, name)

    def filling_open(path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        return FullAfterTwoRows(handle) if Path(path).name == "metrics.jsonl" and "a" in mode else handle

    monkeypatch.setattr(run, "open", filling_open, raising=False)
    with pytest.raises(run.TrainingStopped) as caught:
        train(tiny_config(runs.shards, tmp_path / "runs", steps=4, checkpoint_every=1))
    run_dir = next((tmp_path / "runs").iterdir())
    assert str(caught.value).startswith(f"no space left on the device while writing {run_dir}/metrics.jsonl (")
    assert f"training stopped at step 3 of 4, and the last good checkpoint, {run_dir}/checkpoints/step-000000002 " \
           "(step 2), is untouched" in str(caught.value)
