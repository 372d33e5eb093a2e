"""The parts of songrec and the arrows between them (docs/architecture.md draws the same picture).

Every module under src/songrec belongs to one part; a part may import only the parts listed
for it, directly or through other modules (lazy imports inside functions included). The
allowed sets are closed under "through": a part may reach what its allowed parts reach.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from songrec.orchestration.code_graph import import_graph, module_files, reachable
from tests.conftest import ROOT

# part -> the parts it may import (besides itself and the package root).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "contract": {"core"},
    "config": {"core", "contract"},
    "store": {"core"},
    "models": {"core", "contract", "config"},
    "evaluation": {"core", "contract", "config", "models"},
    "tracking": {"core", "contract", "config", "store", "models", "evaluation"},
    "stages": {"core", "contract", "config", "store", "models", "evaluation", "tracking"},
    # Offline scoring with a registered model (songrec batch): below the API and the DAGs.
    "scoring": {"core", "contract", "config", "store", "models", "evaluation", "tracking"},
    "monitoring": {"core", "contract", "config", "store", "models", "evaluation", "tracking"},
    "serving": {
        "core",
        "contract",
        "config",
        "store",
        "models",
        "evaluation",
        "tracking",
        "monitoring",
        "scoring",
    },
    "orchestration": {
        "core",
        "contract",
        "config",
        "store",
        "models",
        "evaluation",
        "tracking",
        "stages",
        "scoring",
    },
    "cli": {
        "core",
        "contract",
        "config",
        "store",
        "models",
        "evaluation",
        "tracking",
        "stages",
        "monitoring",
        "serving",
        "orchestration",
        "scoring",
    },
}
# Within an allowed part, modules a part must still never reach.
NEVER: dict[str, set[str]] = {
    # The models read their hyperparameters, never files, the environment or the registry.
    "models": {"songrec.config.manager", "songrec.config.environment", "songrec.config.rules"},
    # The contract is pure: a DataFrame and the schema in, a report out.
    "contract": {"songrec.core.io"},
}
# What the DAG files may import: the orchestration and monitoring entry points, never the API.
DAG_ALLOWED = {"core", "config", "orchestration", "monitoring", "tracking"}


def part_of(module: str) -> str:
    parts = module.split(".")
    return "root" if len(parts) == 1 else parts[1]


def test_every_module_is_in_a_named_part() -> None:
    unplaced = [m for m in module_files() if part_of(m) not in ALLOWED and part_of(m) != "root"]
    assert not unplaced, f"modules in no part: {unplaced}"


def test_the_allowed_arrows_form_layers() -> None:
    """No two parts may import each other, and what a part reaches is allowed to it."""
    for part, allowed in ALLOWED.items():
        for other in allowed:
            assert part not in ALLOWED[other], f"{part} and {other} may import each other"
            assert ALLOWED[other] <= allowed, f"{part} reaches {ALLOWED[other] - allowed} through {other}"


@pytest.mark.parametrize("module", sorted(module_files()))
def test_no_forbidden_arrow_direct_or_through_others(module: str) -> None:
    part = part_of(module)
    if part == "root":
        return
    allowed = ALLOWED[part] | {part, "root"}
    wrong = {other for other in reachable([module]) if part_of(other) not in allowed}
    assert not wrong, f"{module} ({part}) reaches {sorted(wrong)}: {_paths(module, wrong)}"
    never = NEVER.get(part, set()) & reachable([module])
    assert not never, f"{module} ({part}) reaches {sorted(never)}: {_paths(module, never)}"


def test_the_dags_import_only_entry_points() -> None:
    for path in sorted((ROOT / "dags").glob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("songrec."):
                names.add(node.module)
        wrong = {name for name in names if part_of(name) not in DAG_ALLOWED}
        assert not wrong, f"{path.name} imports {sorted(wrong)}"


def test_the_graph_sees_lazy_imports() -> None:
    """The check is only as good as the graph: an import inside a function is an arrow too."""
    graph = import_graph()
    assert "songrec.models.mlflow_model" in graph["songrec.stages.evaluate"]  # imported in log_run
    assert "songrec.serving.app" in graph["songrec.serving.server"]  # imported in run_server


def _paths(start: str, targets: set[str]) -> list[str]:
    """For each forbidden module, the chain of imports that reaches it (for the message)."""
    graph = import_graph()
    chains = []
    for target in sorted(targets):
        previous: dict[str, str] = {}
        todo = [start]
        while todo and target not in previous:
            module = todo.pop(0)
            for imported in sorted(graph[module]):
                if imported not in previous and imported != start:
                    previous[imported] = module
                    todo.append(imported)
        chain = [target]
        while chain[-1] != start and chain[-1] in previous:
            chain.append(previous[chain[-1]])
        chains.append(" -> ".join(reversed(chain)))
    return chains


def test_no_source_file_is_over_400_lines() -> None:
    """Past that, a module holds more than one job: split it along the parts (docs/architecture.md)."""
    package = Path(__file__).resolve().parents[1] / "src" / "songrec"
    long = {
        str(path.relative_to(package)): n
        for path in package.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 400
    }
    assert not long, long
