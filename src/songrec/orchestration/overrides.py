"""Params overrides for one run: dotted params.yaml keys set the way `dvc exp run --set-param` does."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from songrec.config.manager import ConfigurationManager
from songrec.config.rules import PARAMS_FILE
from songrec.core.errors import ConfigError
from songrec.core.io import atomic_path
from songrec.orchestration.dvc_runner import project_root

log = logging.getLogger(__name__)


def apply_params_overrides(
    overrides: Mapping[str, Any], root: Path | None = None, *, write: bool = True
) -> dict[str, Any]:
    """Set dotted params.yaml keys for an experiment run, as `dvc exp run --set-param` does.

    The new file is checked by the ConfigurationManager before it replaces params.yaml, so a
    bad value fails here, naming the key, and params.yaml stays as it was. Comments are kept.
    With `write` off, only the check: params.yaml is never replaced.
    Returns {key: [old, new]} for the keys that changed.
    """
    root = root or project_root()
    if not overrides:
        return {}
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    path = root / PARAMS_FILE
    document = yaml.load(path.read_text())
    changes: dict[str, Any] = {}
    for dotted, value in overrides.items():
        node = document
        *parents, last = str(dotted).split(".")
        for key in parents:
            if not isinstance(node, dict) or key not in node:
                raise ConfigError(f"{PARAMS_FILE}: no key {dotted} to override")
            node = node[key]
        if not isinstance(node, dict) or last not in node:
            raise ConfigError(f"{PARAMS_FILE}: no key {dotted} to override")
        if node[last] != value:
            changes[str(dotted)] = [_plain(node[last]), value]
            node[last] = value
    if not changes:
        return {}
    if not write:
        with tempfile.TemporaryDirectory(prefix="songrec-params-") as folder:
            checked = Path(folder) / PARAMS_FILE
            with checked.open("w") as handle:
                yaml.dump(document, handle)
            ConfigurationManager(root, params_file=checked)  # raises ConfigError naming the bad key
        return changes
    with atomic_path(path, suffix=".yaml") as tmp:
        with tmp.open("w") as handle:
            yaml.dump(document, handle)
        ConfigurationManager(root, params_file=tmp)  # raises ConfigError naming the bad key
    log.info("params.yaml overrides for this run: %s", changes)
    return changes


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
