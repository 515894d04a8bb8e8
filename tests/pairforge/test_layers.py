"""The layers of ARCHITECTURE.md hold: every import of every module points down (or sideways within its package).

```
 cli        pairforge/cli.py, pairforge/__main__.py, pairforge/commands/   anything below
 features   pairforge/check/, pairforge/serve/                           core, pipelines, trainer
 engines    pipelines/ (pairforge.pipelines), trainer/ (pairforge.trainer) core; never each other
 core       every other pairforge/*.py                                    stdlib + CORE_LIBRARIES
```
Imports are read from the source (``ast``), deferred ones (inside a function or an
``if TYPE_CHECKING:`` block) included: a lazy import still ties the layers together.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = {"pairforge": ROOT / "pairforge", "pairforge.pipelines": ROOT / "pipelines",
                "pairforge.trainer": ROOT / "trainer"}
"""Package name -> source folder, as pyproject.toml's package-dir maps them into the wheel."""

LAYERS = ("core", "pipelines", "trainer", "check", "serve", "cli")
MAY_IMPORT = {
    "core": {"core"},
    "pipelines": {"core", "pipelines"},
    "trainer": {"core", "trainer"},
    "check": {"core", "pipelines", "trainer", "check"},
    "serve": {"core", "pipelines", "trainer", "serve"},
    "cli": set(LAYERS),
}
"""Which layers a module of each layer may import: arrows only point down, and the two engines,
like the two features, never import each other."""

CORE_LIBRARIES = {"numpy", "PIL", "cv2", "dask", "distributed", "webdataset", "fsspec"}
"""Third-party libraries the core may import. The feature libraries (aiohttp, scipy, scikit-image,
imagehash) live in check/ and serve/, torch and kornia in the engines."""
CORE_DEFERRED_LIBRARIES = {"torch"}
"""May be imported by the core only when a function runs (or for type checking): ``pairforge.device``
resolves ``--device`` for both engines without loading torch for ``pairforge --help``."""
CLI_LIBRARIES = {"click", "tqdm"}
"""User interface: only the CLI layer parses options, prints and draws progress bars."""


@dataclass(frozen=True)
class Import:
    module: str
    """The importing module, e.g. ``pairforge.check.measures``."""
    target: str
    """The imported module, absolute."""
    line: int
    deferred: bool
    """Inside a function body or an ``if TYPE_CHECKING:`` block."""


def layer_of(module: str) -> str | None:
    """The layer of a pairforge module name; None outside pairforge."""
    parts = module.split(".")
    if parts[0] != "pairforge":
        return None
    if len(parts) == 1:
        return "core"
    if parts[1] in ("cli", "__main__", "commands"):
        return "cli"
    if parts[1] in ("pipelines", "trainer", "check", "serve"):
        return parts[1]
    return "core"


def module_name(package: str, folder: Path, path: Path) -> str:
    parts = list(path.relative_to(folder).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def imports_of(module: str, source: str, is_package: bool = False) -> list[Import]:
    """Every import statement of one module's source, with relative imports made absolute."""
    found: list[Import] = []

    def visit(node: ast.AST, deferred: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(module, alias.name, child.lineno, deferred) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".")
                    base = base[: len(base) - child.level + (1 if is_package else 0)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target == "pairforge":  # `from pairforge import check`: the layer is the name's
                    found.extend(Import(module, f"pairforge.{alias.name}", child.lineno, deferred)
                                 for alias in child.names)
                else:
                    found.append(Import(module, target, child.lineno, deferred))
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, True)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, True)
            else:
                visit(child, deferred)

    visit(ast.parse(source), False)
    return found


def violations(imports: list[Import]) -> list[str]:
    """Each import that points up or sideways across the layers, or pulls a library into the wrong layer."""
    problems = []
    for item in imports:
        layer = layer_of(item.module)
        assert layer is not None, item.module
        top = item.target.split(".")[0]
        where = f"{item.module}:{item.line} imports {item.target}"
        target_layer = layer_of(item.target)
        if target_layer is not None:
            if target_layer not in MAY_IMPORT[layer]:
                problems.append(f"{where}: the {layer} layer may not import the {target_layer} layer")
        elif top in sys.stdlib_module_names or top == "__future__":
            continue
        elif top in CLI_LIBRARIES and layer != "cli":
            problems.append(f"{where}: {top} is user interface, only pairforge/cli.py and pairforge/commands/")
        elif layer == "core" and top not in CORE_LIBRARIES:
            if not (top in CORE_DEFERRED_LIBRARIES and item.deferred):
                problems.append(f"{where}: the core may import only {sorted(CORE_LIBRARIES)} "
                                f"(and {sorted(CORE_DEFERRED_LIBRARIES)} inside a function)")
    return problems


def project_modules() -> list[tuple[str, Path]]:
    modules = []
    for package, folder in PACKAGE_DIRS.items():
        for path in sorted(folder.rglob("*.py")):
            relative = path.relative_to(folder)
            if package == "pairforge" and relative.parts[0] in ("pipelines", "trainer"):
                continue  # not there; guards against a stray copy shadowing the mapping
            modules.append((module_name(package, folder, path), path))
    return modules


def test_every_module_imports_only_layers_below_it() -> None:
    modules = project_modules()
    assert len(modules) > 80 and {layer_of(name) for name, _ in modules} == set(LAYERS)
    problems = []
    for name, path in modules:
        problems += violations(imports_of(name, path.read_text("utf-8"), path.name == "__init__.py"))
    assert not problems, "imports against ARCHITECTURE.md's layers:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("pairforge.shards", "import scipy.ndimage", "pairforge.shards:1 imports scipy.ndimage: the core may import"),
        ("pairforge.shards", "from pairforge.check import run_check", "the core layer may not import the check layer"),
        ("pairforge.files", "def f():\n    from aiohttp import web", "pairforge.files:2 imports aiohttp: the core"),
        ("pairforge.device", "import torch", "pairforge.device:1 imports torch: the core may import"),
        ("pairforge.pipelines.edges", "from pairforge.trainer import loop",
         "the pipelines layer may not import the trainer layer"),
        ("pairforge.trainer.loop", "from ..pipelines.edges import EdgesStage",
         "pairforge.trainer.loop:1 imports pairforge.pipelines.edges: the trainer layer may not import the pipelines"),
        ("pairforge.trainer.report", "from pairforge.serve import Job", "the trainer layer may not import the serve"),
        ("pairforge.check.measures", "from pairforge.commands.common import progress",
         "the check layer may not import the cli layer"),
        ("pairforge.serve.server", "from pairforge.check import judge", "the serve layer may not import the check"),
        ("pairforge.serve.server", "import click", "click is user interface"),
        ("pairforge.pairs", "from pairforge import __version__, serve", "the core layer may not import the serve"),
        ("pairforge.trainer.loop", "from tqdm import tqdm", "tqdm is user interface"),
        ("pairforge.check", "from .measures import canny_mask\nfrom ..commands import check",
         "pairforge.check:2 imports pairforge.commands: the check layer may not import the cli layer"),
    ],
)
def test_an_import_pointing_up_is_named(module: str, source: str, expected: str) -> None:
    is_package = module == "pairforge.check"
    problems = violations(imports_of(module, source, is_package))
    assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("pairforge.device", "def resolve():\n    import torch"),
        ("pairforge.device", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch"),
        ("pairforge.check.measures", "from pairforge.pipelines.canny import canny_mask\nimport scipy\nimport imagehash"),
        ("pairforge.serve.model", "from pairforge.trainer.inference import Predictor\nfrom aiohttp import web"),
        ("pairforge.commands.check", "import click\nfrom pairforge.check import run_check"),
        ("pairforge.pipelines.edges", "from .canny import canny_edges\nfrom pairforge.device import DEVICES"),
    ],
)
def test_an_import_pointing_down_passes(module: str, source: str) -> None:
    assert violations(imports_of(module, source)) == []
