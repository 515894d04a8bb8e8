"""``pairforge check`` on datasets with planted faults, plus known-answer tests of its measures."""

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
    PALETTE,
    b_window,
    cropped,
    jpeg,
    load_corpus,
    make_a,
    resized,
    write_info,
    write_pair,
)

from pairforge.check import CheckConfig, fix_splits, judge, open_source, run_check  # noqa: E402
from pairforge.check.measures import edge_f1, phase_shift, to_gray  # noqa: E402
from pairforge.check.neardup import near_pairs, plan_index, popcount  # noqa: E402
from pairforge.cli import cli  # noqa: E402
from pairforge.runner import RunnerConfig  # noqa: E402
from pairforge.shards import ModifiedShardsError  # noqa: E402
from pairforge.splitfile import cluster_split  # noqa: E402

IN_PROCESS = RunnerConfig(workers=1)


@pytest.fixture(scope="module")
def corpus64():
    return load_corpus(size=64)


@pytest.fixture(scope="module")
def corpus80():
    return load_corpus(size=80)


def _shift(rng: np.random.Generator) -> tuple[int, int]:
    """A displacement of 2 to 10 px (Euclidean), integer components."""
    while True:
        dx, dy = (int(v) for v in rng.integers(-10, 11, 2))
        if 2 <= np.hypot(dx, dy) <= 10:
            return dx, dy


def _clean_gray_pairs(root: Path, corpus, count: int) -> Path:
    """A gray pair folder of ``count`` aligned train pairs ``p00``, ``p01``..."""
    write_info(root, "gray")
    for index, tile in enumerate(corpus.tiles[:count]):
        write_pair(root, "train", f"p{index:02d}", make_a("gray", corpus, tile.photo, tile.top, tile.left),
                   b_window(corpus, tile.photo, tile.top, tile.left))
    return root


def _flagged_keys(result) -> set[str]:
    return {row["key"] for row in result.flagged if row["key"] is not None}


# ---------------------------------------------------------------- known answers


def test_phase_shift_recovers_a_known_displacement():
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32), (0, 0), 2.0)
    moved = np.roll(image, (-2, 3), axis=(0, 1))  # content 3 px right, 2 px up
    (dx, dy), confidence, aligned = phase_shift(image, moved)
    assert dx == pytest.approx(3, abs=0.2) and dy == pytest.approx(-2, abs=0.2)
    assert confidence > 0.9 and aligned < 0.7  # smooth maps: 3.6 px off still correlate ~0.6
    (dx, dy), confidence, aligned = phase_shift(image, image)
    assert abs(dx) < 0.05 and abs(dy) < 0.05
    assert confidence == pytest.approx(1.0) and aligned == pytest.approx(1.0)
    assert phase_shift(image, np.full_like(image, 0.5)) == ((0.0, 0.0), 0.0, 0.0)  # a flat B has no structure


def test_label_alignment_recovers_a_known_displacement():
    """Blocky label map, photo = its colours + noise: variance explained is ~1 in place, and the search finds a shift."""
    from pairforge.check.measures import (
        gradient_magnitude,
        label_alignment,
        label_regions,
        region_homogeneity_surface,
    )

    rng = np.random.default_rng(0)
    ids = cv2.resize(rng.integers(0, 5, (12, 12)).astype(np.uint8), (120, 120), interpolation=cv2.INTER_NEAREST)
    palette = np.array(PALETTE[:5], np.uint8)
    photo = np.clip(palette[ids] + rng.normal(0, 4, (120, 120, 3)), 0, 255).astype(np.uint8)
    labels = palette[ids[20:100, 20:100]]
    surface = region_homogeneity_surface(label_regions(labels)[1], photo[20:100, 20:100], 12)
    assert surface[12, 12] == pytest.approx(1.0, abs=0.01) and surface.max() == surface[12, 12]
    for dx, dy in ((0, 0), (3, 0), (0, -5), (4, 4)):
        b = photo[20 + dy : 100 + dy, 20 + dx : 100 + dx]  # B's content sits (-dx, -dy) from A's
        (found_x, found_y), score, aligned = label_alignment(labels, b, gradient_magnitude(to_gray(b)))
        assert (found_x, found_y) == (-dx, -dy)
        assert (score - aligned > 3) == ((dx, dy) != (0, 0))


def test_information_surface_hand_computed(monkeypatch):
    """Two regions (left | right) over a dark | bright photo: MI is ln 2 in place, and hand-computed one px off.

    Moving the map 1 px right puts one bright column (of the 8 centre columns) in the left region:
    H(bin | region) = 5/8 H(4/5, 1/5), so I = ln 2 - 5/8 (-0.8 ln 0.8 - 0.2 ln 0.2). Vertical shifts change
    nothing. The same with every other row and column sampled (a larger image).
    """
    from pairforge.check import measures
    from pairforge.check.measures import information_surface

    ids = np.zeros((12, 12), np.int32)
    ids[:, 6:] = 1
    lightness = np.where(ids == 1, 250.0, 5.0).astype(np.float32)
    surface = information_surface(ids, 2, lightness, 2)
    one_off = np.log(2) - 5 / 8 * (-0.8 * np.log(0.8) - 0.2 * np.log(0.2))
    assert surface[2, 2] == pytest.approx(np.log(2))
    assert surface[2, 3] == pytest.approx(one_off)  # dx = +1
    assert surface[2, 1] == pytest.approx(one_off)  # dx = -1, by symmetry
    assert surface[0, 2] == pytest.approx(np.log(2)) and surface[4, 2] == pytest.approx(np.log(2))
    assert surface[2, 4] < surface[2, 3]
    # B's content 2 px right of the map's: the peak moves to dx = +2
    shifted = np.roll(lightness, 2, axis=1)
    shifted[:, :2] = 5.0
    assert np.unravel_index(np.argmax(information_surface(ids, 2, shifted, 2)[2]), (5,))[0] == 4
    monkeypatch.setattr(measures, "INFORMATION_MAX_SAMPLES", 10)
    sampled = information_surface(ids, 2, lightness, 2)  # 8 x 8 centre -> columns 2, 4 | 6, 8 sampled
    assert sampled[2, 2] == pytest.approx(np.log(2))
    assert sampled[2, 3] < np.log(2)


def test_snap_labels_undoes_jpeg_with_and_without_palette():
    """A 3-class map saved as JPEG (q75) has hundreds of colours; snapped, it has the classes' colours again."""
    from pairforge.check.measures import snap_labels

    ids = np.zeros((96, 96), np.uint8)
    ids[:, 40:] = 1
    ids[60:, :] = 2
    colours = np.array(PALETTE[:3], np.uint8)
    clean = colours[ids]
    saved = jpeg(clean, 75)
    assert len(np.unique(saved.reshape(-1, 3), axis=0)) > 100
    with_palette = snap_labels(saved, PALETTE)
    assert {tuple(c) for c in np.unique(with_palette.reshape(-1, 3), axis=0)} <= set(PALETTE)
    assert (with_palette == clean).all(axis=2).mean() > 0.97
    without = snap_labels(saved)  # no palette: the map's own main colours (within a few levels of the true ones)
    found = np.unique(without.reshape(-1, 3), axis=0).astype(int)
    assert len(found) == 3
    assert all(np.abs(found - np.array(colour)).sum(axis=1).min() <= 12 for colour in PALETTE[:3])
    assert snap_labels(clean) is clean and snap_labels(clean, PALETTE) is clean  # true colours only: untouched


def test_label_regions_keeps_the_largest_and_pools_specks(monkeypatch):
    """4-connected regions numbered once; past LABEL_MAX_REGIONS the smallest are pooled into one id."""
    from pairforge.check import measures
    from pairforge.check.measures import label_regions

    labels = np.zeros((10, 10), np.int32)
    labels[:, 5:] = 1  # two big regions (50 px each)
    labels[2, 2] = labels[7, 7] = 2  # two 1-px specks of one label, not connected
    labels[4:6, 1:3] = 3  # a 4-px region
    ids, regions = label_regions(labels)
    assert ids.max() + 1 == len(regions) == 5
    assert sorted(int(mask.sum()) for _, _, mask in regions) == [1, 1, 4, 45, 49]
    for index, (top, left, mask) in enumerate(regions):
        rows, columns = mask.shape
        assert ((ids[top : top + rows, left : left + columns] == index) == (mask > 0)).all()
    monkeypatch.setattr(measures, "LABEL_MAX_REGIONS", 3)
    ids, regions = label_regions(labels)
    assert len(regions) == 3 and ids.max() == 3  # 3 kept, id 3 = the pooled specks
    assert sorted(int(mask.sum()) for _, _, mask in regions) == [4, 45, 49]
    assert (ids == 3).sum() == 2 and ids[2, 2] == ids[7, 7] == 3
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # not a label map at all
    ids, regions = label_regions(noise)
    assert len(regions) == 3 and ids.max() == 3


def test_edge_f1_with_tolerance_hand_computed():
    a = np.zeros((20, 20), bool)
    b = np.zeros((20, 20), bool)
    a[5, 2:12] = True  # 10 px line
    b[6, 2:12] = True  # same line 1 px lower
    b[15, 2:7] = True  # 5 px of extra edges far away
    assert edge_f1(a, b, tolerance=0) == 0.0
    # tolerance 1: precision 10/10, recall 10/15 -> F1 = 2 * 1 * 2/3 / (5/3) = 0.8
    assert edge_f1(a, b, tolerance=1) == pytest.approx(0.8)
    assert edge_f1(a, a, tolerance=0) == 1.0


def test_near_pairs_equals_brute_force_and_is_not_quadratic():
    rng = np.random.default_rng(1)
    count, views_per = 1500, 3
    views = rng.integers(0, 2**63, size=(count, views_per), dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, size=(count, views_per), dtype=np.uint64)
    queries = views[:, 0].copy()
    # plant near-duplicates: image i + 1 gets a query d bits away from a view of image i
    for index, distance in zip(range(0, 600, 2), np.tile(np.arange(0, 13), 50), strict=False):
        bits = rng.choice(64, size=distance, replace=False)
        flipped = views[index, rng.integers(views_per)]
        for bit in bits:
            flipped ^= np.uint64(1) << np.uint64(int(bit))
        queries[index + 1] = flipped
        views[index + 1, 0] = flipped
    owners = np.repeat(np.arange(count), views_per)
    flat = views.ravel()
    for threshold in (0, 4, 10):
        stats: dict[str, int] = {}
        first, second, distance = near_pairs(queries, flat, owners, threshold, stats=stats)
        assert stats["candidates"] < 0.05 * count * len(flat)  # a small share of all pairs
        got = {(int(i), int(j)): int(d) for i, j, d in zip(first, second, distance, strict=True)}
        full = popcount(queries[:, None] ^ flat[None, :]).reshape(count, count * views_per)
        expected: dict[tuple[int, int], int] = {}
        for i, v in zip(*np.nonzero(full <= threshold), strict=True):
            j = int(owners[v])
            if i != j:
                pair = (min(int(i), j), max(int(i), j))
                expected[pair] = min(expected.get(pair, 99), int(full[i, v]))
        assert got == expected
        assert len(expected) > 0
    views_10m = 17 * 10_000_000
    plan = plan_index(views_10m, 10)
    assert plan.chunks > 1 and plan.probes_per_query + plan.expected_candidates < 0.005 * views_10m


def test_cluster_split_keeps_majority_and_prefers_train_on_ties():
    assert cluster_split(["val", "val", "train"]) == "val"
    assert cluster_split(["val", "train"]) == "train"
    assert cluster_split(["test", "val"]) == "val"


# ---------------------------------------------------------------- planted faults


@pytest.mark.parametrize("kind", ["edges", "gray", "generic"])
def test_shifted_pairs_flagged_clean_pairs_not(tmp_path, corpus64, kind):
    """>= 95% of pairs shifted by 2-10 px flagged, <= 2% of clean pairs flagged."""
    rng = np.random.default_rng(7)
    root = tmp_path / "pairs"
    write_info(root, kind)
    tiles = corpus64.tiles
    clean_tiles, shifted_tiles = tiles[:90], tiles[90:130]
    for index, tile in enumerate(clean_tiles):
        split = "val" if index % 6 == 0 else "train"
        write_pair(root, split, f"clean{index:03d}", make_a(kind, corpus64, tile.photo, tile.top, tile.left),
                   b_window(corpus64, tile.photo, tile.top, tile.left))
    for index, tile in enumerate(shifted_tiles):
        dx, dy = _shift(rng)
        write_pair(root, "train", f"shifted{index:03d}", make_a(kind, corpus64, tile.photo, tile.top, tile.left),
                   b_window(corpus64, tile.photo, tile.top + dy, tile.left + dx))
    config = CheckConfig(out_dir=str(tmp_path / "check"))
    result = run_check(open_source(root, config), config, IN_PROCESS)
    flagged = _flagged_keys(result)
    shifted_found = sum(1 for index in range(len(shifted_tiles)) if f"shifted{index:03d}" in flagged)
    clean_found = sum(1 for index in range(len(clean_tiles)) if f"clean{index:03d}" in flagged)
    assert result.checked == 130 and result.unreadable_count == 0
    assert shifted_found >= 0.95 * len(shifted_tiles), f"{shifted_found}/{len(shifted_tiles)} shifted pairs flagged"
    assert clean_found <= 0.02 * len(clean_tiles), f"{clean_found} clean pairs flagged: {sorted(flagged)}"
    misaligned = {row["key"] for row in result.flagged if row["problem"] == "misaligned"}
    assert sum(1 for key in misaligned if key.startswith("shifted")) >= 0.95 * len(shifted_tiles)


@pytest.fixture(scope="module")
def corpus128():
    return load_corpus(size=128, short_side=640, margin=16)


@pytest.mark.slow
def test_labels_shift_detection(tmp_path, corpus128):
    """>= 95% of label maps shifted by 2-10 px against their photo flagged, <= 2% of clean pairs flagged.

    Every tile of the corpus once clean and three times shifted (112 + 336 pairs), so that the rates
    are measured on enough pairs to mean something (one draw of 112 shifts gives 94-97 %, see
    benchmarks/RESULTS.md). 128 px tiles: label datasets are 256 px, measured at up to 256 px.
    """
    root = tmp_path / "pairs"
    write_info(root, "labels")
    tiles = corpus128.tiles
    for index, tile in enumerate(tiles):
        write_pair(root, "train", f"clean{index:03d}", make_a("labels", corpus128, tile.photo, tile.top, tile.left),
                   b_window(corpus128, tile.photo, tile.top, tile.left))
    shifted = []
    for seed in (51, 52, 53):
        rng = np.random.default_rng(seed)
        for index, tile in enumerate(tiles):
            dx, dy = _shift(rng)
            shifted.append(f"shifted{seed}-{index:03d}")
            write_pair(root, "train", shifted[-1], make_a("labels", corpus128, tile.photo, tile.top, tile.left),
                       b_window(corpus128, tile.photo, tile.top + dy, tile.left + dx))
    config = CheckConfig(out_dir=str(tmp_path / "check"))
    result = run_check(open_source(root, config), config, IN_PROCESS)
    # a tile's clean and shifted B's are near-duplicates of each other: count the alignment flags only
    flagged = {row["key"] for row in result.flagged if row["problem"] == "misaligned"}
    shifted_found = sum(1 for key in shifted if key in flagged)
    clean_found = sum(1 for index in range(len(tiles)) if f"clean{index:03d}" in flagged)
    assert len(tiles) >= 100
    assert shifted_found >= 0.95 * len(shifted), (shifted_found, len(shifted))
    assert clean_found <= 0.02 * len(tiles), (clean_found, len(tiles))
    assert result.class_stats["classes"] == [f"class{index}" for index in range(len(PALETTE))]


def _faulty_dataset(root: Path, corpus) -> dict[str, list[str]]:
    """A gray dataset: clean pairs, B's from other photos, empty A's, cross-split near-duplicates, a corrupt file."""
    kind = "gray"
    rng = np.random.default_rng(11)
    write_info(root, kind)
    tiles = corpus.tiles
    planted: dict[str, list[str]] = {"swapped": [], "empty": [], "leak": []}
    for index, tile in enumerate(tiles[:60]):
        split = "val" if index % 5 == 0 else "train"
        write_pair(root, split, f"clean{index:03d}", make_a(kind, corpus, tile.photo, tile.top, tile.left),
                   b_window(corpus, tile.photo, tile.top, tile.left))
    for index, (tile, other) in enumerate(zip(tiles[60:66], tiles[100:106], strict=True)):
        write_pair(root, "train", f"swapped{index}", make_a(kind, corpus, tile.photo, tile.top, tile.left),
                   b_window(corpus, other.photo, other.top, other.left))
        planted["swapped"].append(f"swapped{index}")
    for index, tile in enumerate(tiles[66:69]):
        a = make_a(kind, corpus, tile.photo, tile.top, tile.left)
        write_pair(root, "train", f"empty{index}", np.full_like(a, 255), b_window(corpus, tile.photo, tile.top, tile.left))
        planted["empty"].append(f"empty{index}")
    copies = {"jpeg": lambda b: jpeg(b, 60), "resize": lambda b: resized(b, 0.9), "crop": lambda b: cropped(b, 0.1, rng),
              "exact": lambda b: b.copy()}
    for index, (name, transform) in enumerate(copies.items()):
        for repeat in range(3):
            tile = tiles[70 + index * 3 + repeat]
            original = b_window(corpus, tile.photo, tile.top, tile.left)
            write_pair(root, "train", f"orig_{name}{repeat}", make_a(kind, corpus, tile.photo, tile.top, tile.left), original)
            copy = transform(original)
            write_pair(root, "val", f"copy_{name}{repeat}", np.clip(np.rint(to_gray(copy)), 0, 255).astype(np.uint8), copy)
            planted["leak"].append(f"{name}{repeat}")
    (root / "train" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return planted


def test_planted_faults_found_and_fix_splits_removes_leakage(tmp_path, corpus80):
    root = tmp_path / "pairs"
    planted = _faulty_dataset(root, corpus80)
    runner = CliRunner()
    out = tmp_path / "check"
    outcome = runner.invoke(cli, ["check", str(root), "-o", str(out), "-j", "1", "--fix-splits", "--strict"])
    assert outcome.exit_code == 1, outcome.output  # --strict: faults were flagged
    summary = json.loads((out / "check.json").read_text())
    flagged = [json.loads(line) for line in (out / "flagged.jsonl").read_text().splitlines()]
    assert summary["counts"]["seen"] == summary["counts"]["checked"] + summary["counts"]["unreadable"]
    assert summary["counts"]["unreadable"] == 1
    assert any(row["problem"] == "unreadable" and row["path"].endswith("corrupt.png") for row in flagged)
    assert all({"key", "split", "problem", "value", "threshold"} <= set(row) for row in flagged)
    by_key: dict[str, set[str]] = {}
    for row in flagged:
        by_key.setdefault(row["key"], set()).add(row["problem"])
    for key in planted["swapped"]:
        assert "low agreement" in by_key.get(key, set()), key
    for key in planted["empty"]:
        assert "near-constant A" in by_key.get(key, set()), key
    leaking = [cluster for cluster in summary["clusters"] if cluster["leakage"]]
    for name in planted["leak"]:
        members = {f"orig_{name}", f"copy_{name}"}
        assert any(members <= {member["key"] for member in cluster["members"]} for cluster in leaking), name
    clean_flagged = {key for key in by_key if key and key.startswith("clean")}
    assert len(clean_flagged) <= 1, clean_flagged
    report = (out / "report.html").read_text()
    assert "leaking clusters" in report and "<svg" in report and "gallery/" in report
    assert list((out / "gallery").glob("*.jpg"))

    # apply the split file, shard, check again: no leakage left
    splits = json.loads((out / "splits.json").read_text())
    assert splits["moved"] >= len(planted["leak"])
    shards = tmp_path / "shards"
    outcome = runner.invoke(cli, ["shard", str(root), "-o", str(shards), "-j", "1", "--lossless",
                                  "--splits", str(out / "splits.json")])
    assert outcome.exit_code == 0, outcome.output
    dataset = json.loads((shards / "dataset.json").read_text())
    assert dataset["split_assignment"]["moved"] == splits["moved"]
    second = tmp_path / "check2"
    outcome = runner.invoke(cli, ["check", str(shards), "-o", str(second), "-j", "1"])
    assert outcome.exit_code == 0, outcome.output
    again = json.loads((second / "check.json").read_text())
    assert again["counts"]["checked"] == summary["counts"]["checked"]
    assert not [cluster for cluster in again["clusters"] if cluster["leakage"]]
    assert sum(1 for cluster in again["clusters"]) >= len(planted["leak"])  # still duplicates, now in one split


def test_unreadable_shard_is_a_problem_not_a_crash(tmp_path, corpus64):
    root = _clean_gray_pairs(tmp_path / "pairs", corpus64, 12)
    shards = tmp_path / "shards"
    runner = CliRunner()
    assert runner.invoke(cli, ["shard", str(root), "-o", str(shards), "-j", "1", "--samples-per-shard", "4",
                               "--val-fraction", "0"]).exit_code == 0
    (shards / "train-000001.tar").write_bytes(b"not a tar at all" * 10)
    data = (shards / "train-000002.tar").read_bytes()
    (shards / "train-000002.tar").write_bytes(data[: len(data) // 2])
    config = CheckConfig(out_dir=str(tmp_path / "check"))
    with pytest.raises(ModifiedShardsError, match="train-000001.tar: 160 bytes, dataset.json records"):
        open_source(shards, config)  # a modified set is refused unless allowed (issue 20, point 5)
    result = run_check(open_source(shards, config, allow_modified=True), config, IN_PROCESS)
    assert result.seen == 12
    assert result.checked + result.unreadable_count == 12
    assert 4 <= result.checked < 12
    reasons = [row["value"] for row in result.flagged if row["problem"] == "unreadable"]
    assert any("unreadable shard" in reason for reason in reasons)
    assert any("samples" in reason for reason in reasons if "unreadable shard" in reason)  # the detail is kept


def test_labels_palette_and_missing_val_class(tmp_path, corpus80):
    root = tmp_path / "pairs"
    write_info(root, "labels")
    tiles = corpus80.tiles
    for index, tile in enumerate(tiles[:30]):
        a = make_a("labels", corpus80, tile.photo, tile.top, tile.left)
        split = "val" if index % 3 == 0 else "train"
        if split == "val":
            a[np.all(a == PALETTE[5], axis=2)] = PALETTE[0]  # class5 never in val
        if index == 4:
            a[:5, :5] = (1, 2, 3)  # a colour outside the palette
        write_pair(root, split, f"p{index:02d}", a, b_window(corpus80, tile.photo, tile.top, tile.left))
    config = CheckConfig(out_dir=str(tmp_path / "check"))
    result = run_check(open_source(root, config), config, IN_PROCESS)
    outside = [row for row in result.flagged if row["problem"] == "outside palette"]
    assert [(row["key"], row["value"]) for row in outside] == [("p04", 25)]
    assert result.class_stats["missing_from_val"] == ["class5"]
    assert any(row["problem"] == "class missing from val" and row["value"] == "class5" for row in result.flagged)
    train = result.class_stats["splits"]["train"]
    assert sum(entry["pixels"] for entry in train.values()) + 25 == 20 * 80 * 80


def test_judge_size_outliers_and_fix_splits_rule(tmp_path):
    rows = []
    for index in range(20):
        width = 256 if index != 3 else 512
        height = 256 if index != 7 else 32
        rows.append({"key": f"k{index}", "split": "val" if index in (1, 2) else "train", "path": f"k{index}.png",
                     "height": height, "width": width, "shift_x": 0.0, "shift_y": 0.0, "shift": 0.0, "confidence": 1.0,
                     "aligned_confidence": 1.0, "evidence": 0.0, "agreement": None, "edge_density": 0.1, "std_a": 30.0, "std_b": 5.0,
                     "pixel_hash": "same" if index in (1, 5) else f"h{index}", "phashes": [index * 2**40],
                     "dhashes": [index], "class_pixels": None})
    (tmp_path / "pairs").mkdir()
    source = open_source(tmp_path / "pairs", CheckConfig())
    result = judge(source, CheckConfig(), rows, [])
    problems = {(row["key"], row["problem"]) for row in result.flagged}
    assert ("k3", "aspect outlier") in problems and ("k7", "aspect outlier") in problems
    assert ("k7", "size outlier") in problems
    assert ("k1", "leakage") in problems and ("k5", "leakage") in problems
    assignment, moved = fix_splits(result)
    assert moved == 1 and {row["key"]: row["split"] for row in assignment}["k1"] == "train"


def test_exact_duplicate_means_same_pixels_not_phash_distance_zero(tmp_path):
    """k0 and k1 share their pixels; k2 is a resize of them (pHash distance 0, other pixels): a near duplicate."""
    far = np.random.default_rng(0).integers(0, 2**63, 8, dtype=np.int64)  # unrelated images: ~32 bits apart

    def row(index: int, pixel_hash: str) -> dict:
        return {"key": f"k{index}", "split": "train", "path": f"k{index}.png", "height": 256, "width": 256,
                "shift_x": 0.0, "shift_y": 0.0, "shift": 0.0, "confidence": 1.0, "aligned_confidence": 1.0, "evidence": 0.0,
                "agreement": None, "edge_density": 0.1, "std_a": 30.0, "std_b": 30.0, "pixel_hash": pixel_hash,
                "phashes": [2**40 if index < 3 else int(far[index])], "dhashes": [7 if index < 3 else int(far[index])],
                "class_pixels": None}

    rows = [row(0, "same"), row(1, "same"), row(2, "resized")] + [row(index, f"h{index}") for index in range(3, 8)]
    (tmp_path / "pairs").mkdir()
    result = judge(open_source(tmp_path / "pairs", CheckConfig()), CheckConfig(), rows, [])
    problems = {row["key"]: row["problem"] for row in result.flagged}
    assert problems == {"k0": "exact duplicate", "k1": "exact duplicate", "k2": "near duplicate"}
    assert [cluster["exact"] for cluster in result.clusters] == [False]


def test_report_with_thousands_of_rows_stays_small(tmp_path):
    """Rows travel as JSON and are rendered 100 at a time: the page grows ~100 bytes per flagged row."""
    from pairforge.check.report import render_report

    rows = [{"key": f"k{index:05d}", "split": "train", "path": f"k{index}.png", "height": 64, "width": 64,
             "shift_x": 3.0, "shift_y": 0.0, "shift": 3.0, "confidence": 0.9, "aligned_confidence": 0.5,
             "evidence": 0.8, "agreement": None, "edge_density": 0.1, "std_a": 30.0, "std_b": 5.0, "pixel_hash": f"h{index}",
             "phashes": [0], "dhashes": [0], "class_pixels": None} for index in range(5000)]
    (tmp_path / "pairs").mkdir()
    result = judge(open_source(tmp_path / "pairs", CheckConfig()), CheckConfig(), rows, [])
    page = render_report(result, {})
    assert len(result.flagged) == 5000
    assert '<tbody id="rows"></tbody>' in page and page.count("k0") >= 5000
    assert len(page) < 60_000 + 200 * 5000


def test_large_edges_pair_measured_at_reduced_size():
    """Pairs above 512 px are measured downscaled: thin edge lines must survive, the shift comes back in full pixels."""
    from skimage import data

    from pairforge.check.measures import MeasureConfig, PairMeasurer
    from pairforge.pipelines.canny import canny_edges

    photo = np.ascontiguousarray(data.astronaut()[:, :, :3])
    photo = cv2.resize(photo, (1024, 1024), interpolation=cv2.INTER_LINEAR)
    edges = canny_edges(photo)  # make-edges' A
    measurer = PairMeasurer(MeasureConfig(kind="edges"))
    aligned = measurer.measure(edges, photo)
    assert aligned.shift < 1.5 and aligned.agreement > 0.5 and aligned.edge_density > 0.02
    moved = np.roll(photo, 8, axis=1)
    shifted = measurer.measure(edges, moved)
    assert shifted.shift_x == pytest.approx(8, abs=1.5)


def test_an_empty_folder_is_an_error_not_an_empty_report(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pairforge.cli import cli

    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["check", str(tmp_path / "empty"), "-o", str(tmp_path / "check")])
    assert result.exit_code == 1 and "no pairs to check" in result.output, result.output
    assert not (tmp_path / "check" / "report.html").exists()


def test_hostile_inputs_are_reported_and_output_inside_the_input_is_refused(tmp_path, corpus64):
    """Odd names, a 1x1 pair and a text file are rows of the report; a report inside the folder is refused."""
    root = _clean_gray_pairs(tmp_path / "pairs", corpus64, 6)
    tile = corpus64.tiles[10]
    for name in ("with space", "dots.in.name", "<script>x<"):
        write_pair(root, "val", name, make_a("gray", corpus64, tile.photo, tile.top, tile.left),
                   b_window(corpus64, tile.photo, tile.top, tile.left))
    cv2.imwrite(str(root / "train" / "tiny.png"), np.zeros((1, 2, 3), np.uint8))
    (root / "train" / "text.png").write_text("hello")
    inside = CliRunner().invoke(cli, ["check", str(root), "-o", str(root / "check"), "-j", "1"])
    assert inside.exit_code == 1 and "is inside the dataset folder" in inside.output  # would be read back as a split
    assert not (root / "check").exists()
    out = tmp_path / "check"
    for _ in range(2):
        outcome = CliRunner().invoke(cli, ["check", str(root), "-o", str(out), "-j", "1"])
        assert outcome.exit_code == 0 and "Traceback" not in outcome.output, outcome.output
        summary = json.loads((out / "check.json").read_text())
        assert summary["counts"] == {"seen": 11, "checked": 9, "unreadable": 2, "flagged_pairs": 5,
                                     "splits": {"train": 6, "val": 3}}
    flagged = [json.loads(line) for line in (out / "flagged.jsonl").read_text().splitlines()]
    reasons = {row["key"]: row["value"] for row in flagged if row["problem"] == "unreadable"}
    assert reasons["tiny"].startswith("too small to check: 1x1 px")
    assert reasons["text"].startswith("not an image")
    assert "<script>" not in (out / "report.html").read_text().replace("<script>\n", "").replace(
        '<script id="data" type="application/json">', "")
