from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pairforge.keys import assign_split, sanitize_key, unique_keys, unique_keys_per_split


def test_sanitize_removes_dots_slashes_and_non_ascii() -> None:
    assert sanitize_key("shoes/red.v2/IMG 01") == "shoes__red_v2__IMG_01"
    assert sanitize_key("café.crème") == "cafe_creme"
    assert "." not in sanitize_key("日本.jpg") and "/" not in sanitize_key("日本/画像")


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=30))
def test_unique_keys_are_unique_safe_and_order_independent(stems: list[str]) -> None:
    keys, _ = unique_keys(stems)
    assert len(set(keys)) == len(keys)
    assert all(key and "." not in key and "/" not in key for key in keys)
    reversed_keys, _ = unique_keys(stems[::-1])
    assert dict(zip(stems, keys, strict=True)) == dict(zip(stems[::-1], reversed_keys, strict=True)) or len(set(stems)) < len(stems)


def test_collisions_are_reported_and_resolved_deterministically() -> None:
    keys, collisions = unique_keys(["a.b", "a_b", "a b"])
    assert sorted(keys) == ["a_b", "a_b-2", "a_b-3"]
    assert collisions == {"a_b": ["a b", "a.b", "a_b"]}


def test_keys_unique_within_each_split() -> None:
    keys, collisions = unique_keys_per_split([("train", "1"), ("val", "1"), ("train", "1.x"), ("train", "1_x")])
    assert keys[:2] == ["1", "1"] and set(keys[2:]) == {"1_x", "1_x-2"}
    assert list(collisions) == ["train/1_x"]


def test_assign_split_is_deterministic_and_near_the_fraction() -> None:
    splits = [assign_split(f"key{i}", 0.1, 0.05) for i in range(20_000)]
    assert splits == [assign_split(f"key{i}", 0.1, 0.05) for i in range(20_000)]
    assert abs(splits.count("val") / len(splits) - 0.1) < 0.01
    assert abs(splits.count("test") / len(splits) - 0.05) < 0.01
