"""Every file the core package (pairforge/, its commands and features) writes goes through
pairforge.files.write_atomic or atomic_path, as files.py's docstring says.

The package's source is parsed, not run: a call that opens a file for writing (``open``,
``Path.open``, ``os.fdopen``, ``tarfile.open`` with a name), writes a whole file
(``write_text``, ``write_bytes``, ``cv2.imwrite``, ``np.save``, ``Image.save``...) or dumps JSON
into a handle is allowed only when its target is the temporary of an ``atomic_path`` block
(``with atomic_path(p) as tmp: open(tmp, "wb")``) or a handle opened on one. Anything else is
listed with its file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pairforge

PACKAGE = Path(pairforge.__file__).parent

ALLOWED = {
    ("paths.py", "open"): "ensure_output_dir's write probe: a temporary-named file (.pairforge-write-test-*) "
                          "written and removed at once to prove the folder is writable, never an output",
    ("locks.py", "open"): "the folder lock (.pairforge.lock) is opened 'a+b' and held, never written as content",
}
"""(file relative to pairforge/, call) -> why a direct write is right there."""

WRITE_MODES = set("wax+")
WHOLE_FILE_WRITERS = {"write_text", "write_bytes", "imwrite", "save", "savez", "savez_compressed", "tofile", "dump"}


def _name(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else None


def _mode(call: ast.Call, position: int) -> str:
    """The literal mode of an open-like call ("r" when none is given or it is not a literal)."""
    node = call.args[position] if len(call.args) > position else None
    for keyword in call.keywords:
        if keyword.arg == "mode":
            node = keyword.value
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else "r"


class _Writers(ast.NodeVisitor):
    """Collects direct writes (``(line, call)``) whose target is not an atomic temporary."""

    def __init__(self) -> None:
        self.atomic: set[str] = set()
        self.found: list[tuple[int, str]] = []

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            call, target = item.context_expr, _name(item.optional_vars) if item.optional_vars else None
            if isinstance(call, ast.Call) and target:
                called = call.func.attr if isinstance(call.func, ast.Attribute) else _name(call.func)
                if called == "atomic_path" or self._on_atomic(call):
                    self.atomic.add(target)
            self.visit(item.context_expr)
        for statement in node.body:
            self.visit(statement)

    def _on_atomic(self, call: ast.Call) -> bool:
        """An open-like call whose file is an atomic temporary (``open(tmp)``, ``tmp.open()``)."""
        func = call.func
        if isinstance(func, ast.Attribute) and _name(func.value) in self.atomic:
            return True
        return bool(call.args) and _name(call.args[0]) in self.atomic

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else _name(func)
        owner = _name(func.value) if isinstance(func, ast.Attribute) else None
        writes = False
        if called == "open" and owner == "tarfile":
            writes = not any(k.arg == "fileobj" for k in node.keywords) and bool(WRITE_MODES & set(_mode(node, 1)))
        elif called == "open" and owner in (None, "io", "os", "gzip", "bz2", "lzma") or called == "fdopen":
            writes = bool(WRITE_MODES & set(_mode(node, 1)))
        elif called == "open":  # path.open(mode)
            writes = bool(WRITE_MODES & set(_mode(node, 0)))
        elif called in WHOLE_FILE_WRITERS:
            writes = called != "dump" or owner in ("json", "pickle")
        if writes and not self._on_atomic(node) and not self._into_atomic_handle(node):
            self.found.append((node.lineno, called or "?"))
        self.generic_visit(node)

    def _into_atomic_handle(self, call: ast.Call) -> bool:
        """``json.dump(data, handle)`` / ``image.save(handle)`` into a handle opened on a temporary."""
        return any(_name(arg) in self.atomic for arg in call.args[1:] + call.args[:1])


def direct_writers(root: Path) -> list[str]:
    """``file:line call`` for every direct write in the package under ``root`` that is not allowed."""
    offenders = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        visitor = _Writers()
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        offenders += [f"pairforge/{relative}:{line} {call}" for line, call in visitor.found
                      if (relative, call) not in ALLOWED]
    return offenders


def test_every_core_writer_is_atomic() -> None:
    offenders = direct_writers(PACKAGE)
    assert not offenders, (
        "these write a final path directly; use pairforge.files.write_atomic or atomic_path "
        "(or add them to ALLOWED with the reason):\n" + "\n".join(offenders))


def test_the_scan_finds_direct_writers(tmp_path: Path) -> None:
    """The scan itself: each way of writing a final path is found, the atomic forms are not."""
    (tmp_path / "bad.py").write_text(
        "import json, cv2\n"
        "def f(path, data, image):\n"
        "    path.write_text('x')\n"
        "    with open(path, 'w') as handle:\n"
        "        json.dump(data, handle)\n"
        "    cv2.imwrite(str(path), image)\n"
        "    with path.open('ab') as log:\n"
        "        log.write(b'row')\n", encoding="utf-8")
    (tmp_path / "good.py").write_text(
        "import json\n"
        "from pairforge.files import atomic_path, write_atomic\n"
        "def f(path, data):\n"
        "    write_atomic(path, json.dumps(data))\n"
        "    with atomic_path(path) as tmp, tmp.open('w') as handle:\n"
        "        json.dump(data, handle)\n"
        "    with atomic_path(path) as tmp, open(tmp, 'wb') as raw:\n"
        "        raw.write(b'x')\n"
        "    with atomic_path(path) as tmp:\n"
        "        tmp.write_bytes(b'x')\n"
        "    with open(path, 'rb') as handle:\n"
        "        handle.read()\n", encoding="utf-8")
    assert direct_writers(tmp_path) == [
        "pairforge/bad.py:3 write_text", "pairforge/bad.py:4 open", "pairforge/bad.py:5 dump",
        "pairforge/bad.py:6 imwrite", "pairforge/bad.py:7 open"]
