"""The wheel ships every package: each folder with an __init__.py is listed in pyproject.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_in_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = config["package-dir"]
    expected = set()
    for package, folder in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            expected.add(".".join([package, *relative.parts]))
    # a sub-folder mapped on its own (pipelines/ -> pairforge.pipelines) is found under both names
    assert expected - listed == set(), f"packages missing from pyproject.toml: {sorted(expected - listed)}"
    assert listed <= expected
