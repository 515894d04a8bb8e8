"""Every file the trainer writes (JSON, JSONL, CSV, text) goes through pairforge.files' atomic writers.

A reader (report.html, a resumed run, a second process) never sees a half-written config.json,
summary.json, predict.json or export sidecar. Exceptions: the append-only streams written row by
row (metrics.jsonl, keys.jsonl, metrics-abandoned.jsonl: :func:`pairforge.trainer.run.append_lines`
and :class:`~pairforge.trainer.run.MetricsWriter`), checkpoint files written inside a temporary
folder that is renamed into place as a whole, and the HTML page modules (their own helper).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TRAINER = Path(__file__).resolve().parents[2] / "trainer"
PAGE_MODULES = {"report.py", "gallery.py", "compare.py", "demo.py"}
"""HTML page writers (kept with the page helper)."""
DIRECT_WRITERS = {"write_text", "write_bytes", "dump", "save_text"}


def _direct_writes(source: str) -> list[tuple[int, str]]:
    """(line, call) of every write that bypasses the atomic helpers: ``.write_text``/``.write_bytes``,
    ``json.dump`` to a handle, and ``open(..., "w"/"x")`` (appends, "a", are allowed)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name in DIRECT_WRITERS:
            receiver = ast.unparse(node.func.value) if isinstance(node.func, ast.Attribute) else ""
            if "html" not in receiver and "page" not in receiver:  # an HTML page: the page helper's
                found.append((node.lineno, name))
        elif name == "open":
            mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
            text = mode.value if isinstance(mode, ast.Constant) and isinstance(mode.value, str) else "r"
            first = ast.unparse(node.args[0]) if node.args else ""
            if ("w" in text or "x" in text) and first not in ("tmp", "temporary", "temporary / name"):
                found.append((node.lineno, f"open({first}, {text!r})"))
    return found


@pytest.mark.parametrize("module", sorted(p.name for p in TRAINER.glob("*.py") if p.name not in PAGE_MODULES))
def test_trainer_writes_files_atomically(module: str) -> None:
    assert _direct_writes((TRAINER / module).read_text()) == []


def test_the_scan_finds_a_direct_writer() -> None:
    source = ('import json\nfrom pathlib import Path\nPath("a.json").write_text("{}")\n'
              'with open("b.csv", "w") as handle:\n    json.dump({}, handle)\nopen("m.jsonl", "a")\n'
              'paths["html"].write_text("<html>")\n')
    assert _direct_writes(source) == [(3, "write_text"), (4, "open('b.csv', 'w')"), (5, "dump")]
