"""Issue 10, training side: damaged runs, truncated shards, misfit flags, Ctrl-C, resuming from elsewhere."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.errors import ConfigError
from pairforge.trainer import checkpoint
from pairforge.trainer.loop import resolve_config, train
from pairforge.trainer.run import resume_config

pytestmark = pytest.mark.slow  # subprocess and multi-run lifecycles; the fast set keeps a tiny resume (test_recipe)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture()
def trained_run(edge_shards: Path, tmp_path: Path, tiny_config) -> Path:
    return train(tiny_config(edge_shards, tmp_path / "runs", steps=2)).run_dir


def _resume(run_dir: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["train", "--resume", str(run_dir), "--steps", "3"])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


# -- 3. train --resume on a damaged run -----------------------------------------------------------


def test_3_resume_refuses_a_malicious_state_like_predict(trained_run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    state = checkpoint.list_checkpoints(trained_run)[-1] / "state.pt"
    state.write_bytes(pickle.dumps({"step": _Evil(str(marker))}))
    code, output = _resume(trained_run)
    assert code != 0 and "refused" in output and "could run code" in output, output
    assert "False" not in output and "likely succeed" not in output and not marker.exists()  # never torch's advice
    predict = CliRunner().invoke(cli, ["predict", str(trained_run), str(tmp_path), "-o", str(tmp_path / "out")])
    assert predict.exit_code != 0 and f"{state}: refused" in predict.output and f"{state}: refused" in output


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_3_resume_refuses_damaged_safetensors(trained_run: Path, damage: str) -> None:
    weights = checkpoint.list_checkpoints(trained_run)[-1] / "generator.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00" * 64)
    code, output = _resume(trained_run)
    assert code != 0 and "generator.safetensors: cannot load" in output, output


def test_3_resume_of_a_run_without_config(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    code, output = _resume(tmp_path / "run")
    assert code != 0 and "config.json: missing" in output


# -- 5. truncated shards are counted and reported ----------------------------------------------------


def _complete_samples(path: Path) -> int:
    """Samples webdataset can read whole from a (truncated) shard: A, B and the sample's json."""
    import webdataset as wds

    samples = wds.tarfile_to_samples(handler=wds.ignore_and_continue)(iter([{"url": str(path)}]))
    return sum(1 for sample in samples if {"a.png", "b.png", "json"} <= set(sample))


def test_5_truncated_shard_counts_lost_samples_everywhere(shard_factory, tmp_path: Path, tiny_config, caplog) -> None:
    from pairforge.shards import ModifiedShardsError

    shards = shard_factory(kind="edges", count=8, shards=2)
    victim = shards / "train-000001.tar"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    lost = 4 - _complete_samples(victim)
    assert 0 < lost < 4
    with pytest.raises(ModifiedShardsError, match=f"train-000001.tar: {len(data) // 2} bytes, dataset.json records"):
        train(tiny_config(shards, tmp_path / "runs", steps=3))  # issue 20, point 5: refused unless allowed
    with caplog.at_level("WARNING"):  # 6 samples: the train set is read once
        result = train(tiny_config(shards, tmp_path / "runs", steps=3, data__allow_modified_shards=True))
    assert (f"shard {victim} differs from dataset.json ({len(data) // 2} bytes, dataset.json records {len(data)}"
            in caplog.text) and "used as it is (--allow-modified-shards)" in caplog.text
    assert "unreadable part is skipped" not in caplog.text
    assert result.skipped_samples >= lost and result.skipped_shards == 1 and result.skipped_bytes == len(data) - len(data) // 2
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["skipped_samples"] == result.skipped_samples and summary["skipped_shards"] == 1
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [row for row in rows if "split" not in row]
    assert rows[-1]["skipped_samples"] >= lost and rows[-1]["skipped_shards"] == 1
    assert json.loads((result.run_dir / "config.json").read_text())["data"]["allow_modified_shards"] is True


def test_5_verify_reports_a_changed_shard_with_the_same_size(edge_shards: Path) -> None:
    from pairforge.shards import ModifiedShardsError
    from pairforge.trainer.data import load_dataset_info, verify_shards

    victim = edge_shards / "train-000000.tar"
    data = bytearray(victim.read_bytes())
    data[700] ^= 0xFF
    victim.write_bytes(bytes(data))
    info = load_dataset_info(str(edge_shards))
    assert verify_shards(info, info.splits["train"]) == []  # size, count and stats cannot see it
    with pytest.raises(ModifiedShardsError, match="train-000000.tar: sha256 differs from dataset.json"):
        verify_shards(info, info.splits["train"], full=True)
    problems = verify_shards(info, info.splits["train"], full=True, allow_modified=True)
    assert [(Path(p.url).name, p.reason) for p in problems] == [("train-000000.tar", "sha256 differs from dataset.json")]
    result = CliRunner().invoke(cli, ["train", str(edge_shards), "--verify", "--dry-run"])
    assert result.exit_code == 0


def test_issue20_5_a_shard_from_another_set_is_refused_by_train_and_evaluate(
        shard_factory, tmp_path: Path, tiny_config, caplog) -> None:
    """Issue 20, point 5: a 64 px set whose second train shard and val shard come from a 128 px set."""
    from pairforge.shards import ModifiedShardsError

    shards = shard_factory(kind="edges", count=8, shards=2, size=64, val=4)
    other = shard_factory(kind="edges", count=8, shards=2, size=128, val=4)
    shutil.copyfile(other / "train-000001.tar", shards / "train-000001.tar")
    shutil.copyfile(other / "val-000000.tar", shards / "val-000000.tar")
    replaced = (shards / "train-000001.tar").stat().st_size
    with pytest.raises(ModifiedShardsError, match=f"train-000001.tar: {replaced} bytes, dataset.json records"):
        train(tiny_config(shards, tmp_path / "runs", steps=1))
    with caplog.at_level("WARNING"):
        result = train(tiny_config(shards, tmp_path / "runs", steps=1, data__allow_modified_shards=True))
    assert "differs from dataset.json" in caplog.text and "used as it is (--allow-modified-shards)" in caplog.text
    assert "unreadable part is skipped" not in caplog.text  # it was fully readable, and trained on
    assert result.skipped_samples == 0
    evaluate = ["evaluate", str(result.run_dir), str(shards), "-o", str(tmp_path / "eval"), "--device", "cpu"]
    refused = CliRunner().invoke(cli, evaluate)
    assert refused.exit_code == 1 and "Traceback" not in refused.output, refused.output
    assert "val-000000.tar" in refused.output and "--allow-modified-shards" in refused.output
    allowed = CliRunner().invoke(cli, [*evaluate, "--allow-modified-shards"])
    assert allowed.exit_code == 0, allowed.output
    data = json.loads((tmp_path / "eval" / "metrics.json").read_text())["data"]
    assert data["allow_modified_shards"] is True and [m["name"] for m in data["modified_shards"]] == ["val-000000.tar"]


def test_issue20_12_evaluate_names_and_counts_what_a_truncated_shard_lost(
        shard_factory, tmp_path: Path, tiny_config) -> None:
    import warnings

    shards = shard_factory(kind="edges", count=4, shards=1, size=64, val=6)
    run_dir = train(tiny_config(shards, tmp_path / "runs", steps=1)).run_dir
    victim = shards / "val-000000.tar"
    held = _complete_samples(victim)  # the writer may spread the 6 val samples over more than one shard
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    lost = held - _complete_samples(victim)
    assert 0 < lost < held
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(cli, ["evaluate", str(run_dir), str(shards), "-o", str(tmp_path / "eval"),
                                          "--device", "cpu", "--allow-modified-shards"])
    assert result.exit_code == 0, result.output
    assert not [w for w in caught if str(victim) in str(w.message)], [str(w.message) for w in caught]
    lines = [line for line in result.output.splitlines() if f"shard {victim}: " in line]
    assert len(lines) == 1 and f"{lost} of {held} samples could not be read" in lines[0], result.output
    assert f"{6 - lost} pairs ({lost} unreadable samples not scored)" in result.output
    document = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert document["count"] == 6 - lost and document["data"]["unreadable_samples"] == lost


# -- 9. resume from another folder ------------------------------------------------------------------


def test_9_resume_from_another_folder(edge_shards: Path, tmp_path: Path, tiny_config, monkeypatch) -> None:
    monkeypatch.chdir(edge_shards.parent)
    result = train(tiny_config(Path(edge_shards.name), Path("runs"), steps=1, checkpoint_every=1))
    document = json.loads((result.run_dir / "config.json").read_text())
    assert document["data"]["shards"] == str(edge_shards) and document["output"] == str(edge_shards.parent / "runs")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run_dir = edge_shards.parent / result.run_dir
    assert train(resume_config(run_dir, steps=2), resume=run_dir).steps == 2
    # a run written before paths were stored absolute: relative to where training started
    document["data"]["shards"], document["output"] = edge_shards.name, "runs"
    (run_dir / "config.json").write_text(json.dumps(document))
    assert resume_config(run_dir).data.shards == str(edge_shards)


# -- 12. flags that do not fit the dataset's kind ---------------------------------------------------


def test_12_lab_is_refused_on_a_dataset_that_is_not_gray(shard_factory, tmp_path: Path, tiny_config) -> None:
    edges = shard_factory(kind="edges")
    with pytest.raises(ConfigError, match="lab feeds the network the lightness L of B"):
        resolve_config(tiny_config(edges, tmp_path / "runs", data__colorspace="lab"))
    result = CliRunner().invoke(cli, ["train", str(edges), "--colorspace", "lab", "--dry-run"])
    assert result.exit_code != 0 and "only fits gray" in result.output
    with pytest.raises(ConfigError, match="only applies to labels datasets"):
        resolve_config(tiny_config(edges, tmp_path / "runs", data__label_input="color"))
    gray = shard_factory(kind="gray")
    resolve_config(tiny_config(gray, tmp_path / "runs", data__colorspace="lab"))
    resolve_config(tiny_config(shard_factory(kind="labels"), tmp_path / "runs", data__label_input="color"))


# -- 13. training says when there is no validation split ---------------------------------------------


def test_13_training_warns_without_val_split(shard_factory, tmp_path: Path, tiny_config, caplog) -> None:
    shards = shard_factory(kind="edges", val=0)
    with caplog.at_level("WARNING"):
        train(tiny_config(shards, tmp_path / "runs", steps=1))
    assert "no val samples" in caplog.text


# -- 14. Ctrl-C saves the run -----------------------------------------------------------------------------


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_14_signal_saves_a_checkpoint_and_says_how_to_resume(edge_shards: Path, tmp_path: Path, tiny_config,
                                                             number: int) -> None:
    from pairforge.trainer.run import TrainingInterrupted

    def interrupt(step: int, total: int, row: dict) -> None:
        if step == 2:
            os.kill(os.getpid(), number)

    config = tiny_config(edge_shards, tmp_path / "runs", steps=50)
    with pytest.raises(TrainingInterrupted, match="pairforge train --resume") as caught:
        train(config, progress=interrupt)
    run_dir = next((tmp_path / "runs").iterdir())
    assert [p.name for p in checkpoint.list_checkpoints(run_dir)] == ["step-000000002"]
    assert "at step 2 of 50" in str(caught.value) and signal.Signals(number).name in str(caught.value)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    assert train(resume_config(run_dir), resume=run_dir, stop_at=3).steps == 3


def test_5_end_of_run_summary_names_damaged_shards(shard_factory, tmp_path: Path) -> None:
    shards = shard_factory(kind="edges", count=4, shards=2)
    victim = shards / "train-000001.tar"
    victim.write_bytes(victim.read_bytes()[:3000])
    options = [
        "train", str(shards), "-o", str(tmp_path / "runs"), "--steps", "2", "--batch-size", "2", "--num-workers", "0",
        "--generator", "unet", "--generator-channels", "8", "--discriminator-channels", "8", "--crop-size", "64",
        "--load-size", "72", "--val-every", "0", "--sample-every", "0", "--checkpoint-every", "0", "--shuffle-buffer", "4",
    ]
    refused = CliRunner().invoke(cli, options)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert f"{shards} changed after it was written: train-000001.tar: 3000 bytes" in refused.output
    assert "--allow-modified-shards" in refused.output and "pairforge shard" in refused.output
    assert not (tmp_path / "runs").exists()  # refused before a run folder was made
    result = CliRunner().invoke(cli, [*options, "--allow-modified-shards"])
    assert result.exit_code == 0, result.output
    assert "1 damaged shards (" in result.output and "corrupt or missing samples" in result.output


def test_a_run_recorded_with_the_old_image_discriminator_still_predicts(trained_run: Path, tmp_path: Path) -> None:
    """Runs made before `image` became the 286x286 PatchGAN say "image" at small crops: the generator still loads."""
    import shutil

    run = tmp_path / "old-run"
    shutil.copytree(trained_run, run)
    for path in [run / "config.json", *run.glob("checkpoints/*/config.json")]:
        document = json.loads(path.read_text())
        document["model"]["discriminator"] = "image"
        assert document["model"]["crop_size"] < 96
        path.write_text(json.dumps(document))
    generator, config = checkpoint.load_generator(run)
    assert config["model"]["discriminator"] == "image" and sum(p.numel() for p in generator.parameters()) > 0
