"""The package's own import graph, read from the source (nothing is imported or run).

Every `import songrec...` and `from songrec... import ...` counts, at the top of a module or
inside a function (songrec imports heavy modules lazily), and importing `songrec.a.b` also runs
the packages `songrec` and `songrec.a`. The stage registry derives each stage's code
dependencies in dvc.yaml from it, and a test holds the parts' allowed arrows against it.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "songrec"
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # src/, the folder holding the package


@functools.cache
def module_files(source_root: Path = SOURCE_ROOT) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its __init__.py)."""
    files = {}
    for path in sorted((source_root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(source_root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    return files


@functools.cache
def import_graph(source_root: Path = SOURCE_ROOT) -> dict[str, frozenset[str]]:
    """For each module, the package's modules it imports directly (lazy imports included)."""
    files = module_files(source_root)
    return {name: frozenset(_imports(name, path, files)) for name, path in files.items()}


def reachable(modules: Iterable[str], source_root: Path = SOURCE_ROOT) -> set[str]:
    """The modules given and every module they import, directly or through others."""
    graph = import_graph(source_root)
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        if module not in graph:
            raise KeyError(f"{module} is not a module of {PACKAGE}")
        seen.add(module)
        todo.extend(graph[module] - seen)
    return seen


def _imports(name: str, path: Path, files: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from songrec.a import b` imports songrec.a, and songrec.a.b when that is a module.
            targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                found |= {parent for parent in _with_parents(target) if parent in files}
    found.discard(name)
    return found


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]
