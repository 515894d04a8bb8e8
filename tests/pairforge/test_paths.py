"""Path rules: an output folder never lies inside its input (nor the reverse)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pairforge.paths import OutputError, refuse_nested


def test_output_inside_or_equal_to_input_is_refused(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    with pytest.raises(OutputError, match="is inside the input folder"):
        refuse_nested(photos, photos / "pairs")
    with pytest.raises(OutputError, match="is the input folder"):
        refuse_nested(photos, tmp_path / "photos" / ".." / "photos")
    with pytest.raises(OutputError, match="input folder .* is inside the output folder"):
        refuse_nested(photos / "sub", photos)


def test_links_are_resolved_and_siblings_pass(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (tmp_path / "link").symlink_to(photos)
    with pytest.raises(OutputError, match="is inside"):
        refuse_nested(photos, tmp_path / "link" / "pairs")
    refuse_nested(photos, tmp_path / "photos-pairs")  # a shared prefix is not nesting
    refuse_nested(photos, tmp_path / "pairs")
    with pytest.raises(OutputError, match="is inside"):  # URLs are compared too (pairforge/storage.py)
        refuse_nested("s3://bucket/photos", "s3://bucket/photos/pairs")
    refuse_nested("s3://bucket/photos", "/data/photos/pairs")  # a URL and a local path never nest
