"""The page helper every HTML page is built from: escaping, tables, image tags, one style sheet, atomic writes."""

from __future__ import annotations

from pathlib import Path

from pairforge.page import STYLE, Cell, document, img_html, table_html, write_page


def test_table_escapes_text_aligns_numbers_and_passes_cells_through() -> None:
    rows = [{"name": "<script>x</script>", "value": 0.123456, "count": 3, "flag": True},
            {"name": "b & c", "value": Cell("<b>1.0000</b>", numeric=True)}]
    table = table_html("scores <1>", ["name", "value", "count", "flag"], rows, headings=["Name", "L1 \u2193", "n", "ok"],
                       row_classes=["", "bound"])
    assert "<script>" not in table and "&lt;script&gt;x&lt;/script&gt;" in table
    assert "<caption>scores &lt;1&gt;</caption>" in table
    assert "<th>L1 \u2193</th>" in table and "<th>value</th>" not in table  # headings replace the column names
    assert "<td class='n'>0.1235</td>" in table and "<td class='n'>3</td>" in table
    assert "<td>True</td>" in table  # a bool is not a number
    assert "<td class='n'><b>1.0000</b></td>" in table  # a Cell is HTML, not text
    assert "<tr class='bound'><td>b &amp; c</td>" in table and table.count("<td></td>") == 2  # missing values empty
    assert table.startswith("<table><caption>")


def test_image_tags_escape_sources_and_link_when_asked() -> None:
    assert img_html('a"b.png', alt="<x>") == '<img src="a&quot;b.png" alt="&lt;x&gt;">'
    linked = img_html("thumbs/k.jpg", href="full/k&1.png", css_class="thumb", lazy=True, width=192)
    assert linked == ('<a href="full/k&amp;1.png"><img src="thumbs/k.jpg" class="thumb" loading="lazy" '
                      'decoding="async" width="192" alt=""></a>')


def test_document_has_one_head_and_style_and_write_page_is_atomic(tmp_path: Path) -> None:
    page = document("run </title><script>", "<p>body</p>", narrow=True)
    assert page.startswith("<!doctype html>") and page.count("<style>") == 1 and STYLE in page
    assert "<title>run &lt;/title&gt;&lt;script&gt;</title>" in page and "<body class=narrow>" in page
    path = write_page(tmp_path / "sub" / "index.html", "t", "<p>x</p>")
    assert path.read_text(encoding="utf-8") == document("t", "<p>x</p>")
    assert sorted(p.name for p in path.parent.iterdir()) == ["index.html"]  # no temporary left
