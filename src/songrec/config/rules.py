"""The YAML rule library: read a configuration file, and typed, rule-checked access to its keys.

Every broken rule raises ConfigError naming the file, the key, the value and the rule.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from box import Box

from songrec.core.errors import ConfigError

CONFIG_FILE = "config/config.yaml"
SCHEMA_FILE = "config/schema.yaml"
PARAMS_FILE = "params.yaml"

T = TypeVar("T")
_MISSING = object()


def find_project_root(start: Path | None = None) -> Path:
    """The folder holding config/config.yaml: `start` (SONGREC_ROOT, say) or cwd, and upwards."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise ConfigError(
        f"{CONFIG_FILE} not found in {here} or any parent folder: "
        "run songrec from the project folder or set SONGREC_ROOT"
    )


def load_yaml(path: Path, label: str) -> Box:
    """Read one YAML mapping; a missing file or bad syntax is a ConfigError naming the file."""
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"{label}: file not found ({path})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{label}: malformed YAML{where}: {problem}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping at the top level, got {type(data).__name__}")
    return Box(data, frozen_box=True)


class Section:
    """Typed, rule-checked access to one YAML file; errors name file, key, value and rule."""

    def __init__(self, label: str, data: Box | Mapping[str, Any], prefix: str = "") -> None:
        self.label = label
        self.data = data
        self.prefix = prefix
        self._read: set[str] = set()  # the keys some reader asked for: the rest are unknown
        self._children: dict[str, list[Section]] = {}

    def fail(self, key: str, value: Any, rule: str) -> ConfigError:
        return ConfigError(f"{self.label}: {self.prefix}{key} = {value!r}: {rule}")

    def section(self, key: str) -> Section:
        value = self.get(key, dict)
        child = Section(self.label, value, f"{self.prefix}{key}.")
        self._children.setdefault(key, []).append(child)
        return child

    def reject_unknown_keys(self) -> None:
        """A ConfigError for the first key no reader asked for (a misspelt key would be ignored
        silently otherwise), with the nearest known key as a suggestion."""
        for key, known in self._unknown_keys():
            near = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=1, cutoff=0.6)
            hint = (
                f"; did you mean {key.rsplit('.', 1)[0] + '.' if '.' in key else ''}{near[0]}?"
                if near
                else ""
            )
            raise ConfigError(
                f"{self.label}: unknown key {key}{hint} (known here: {', '.join(sorted(known))})"
            )

    def _unknown_keys(self) -> Iterator[tuple[str, list[str]]]:
        for key in self.data:
            if key not in self._read and key not in self._children:
                yield f"{self.prefix}{key}", sorted(self._read)
        for children in self._children.values():
            merged = Section(self.label, children[0].data, children[0].prefix)
            for child in children:
                merged._read |= child._read
                for name, grandchildren in child._children.items():
                    merged._children.setdefault(name, []).extend(grandchildren)
            yield from merged._unknown_keys()

    def get(
        self,
        key: str,
        kind: type[T] | tuple[type, ...],
        *,
        check: Callable[[Any], bool] | None = None,
        rule: str = "",
        default: Any = _MISSING,
    ) -> T:
        self._read.add(key)
        if key not in self.data:
            if default is not _MISSING:
                return default  # type: ignore[no-any-return,unused-ignore]
            raise ConfigError(f"{self.label}: missing key {self.prefix}{key}")
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if list in kinds:  # a frozen Box holds YAML lists as tuples
            kinds = (*kinds, tuple)
        # YAML reads 1 as int where a float is wanted; bool is an int to Python but never here.
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(key, value, f"must be of type {names}")
        if check is not None and not check(value):
            raise self.fail(key, value, rule)
        return value  # type: ignore[return-value]

    def share(self, key: str, *, allow_zero: bool = False) -> float:
        low = "[0" if allow_zero else "(0"
        return self.get(
            key,
            float,
            check=lambda v: (0 <= v < 1) if allow_zero else (0 < v < 1),
            rule=f"must be a share in {low}, 1)",
        )

    def fraction(self, key: str) -> float:
        return self.get(key, float, check=lambda v: 0 <= v <= 1, rule="must be in [0, 1]")

    def positive_int(self, key: str) -> int:
        return self.get(key, int, check=lambda v: v > 0, rule="must be a positive integer")

    def non_negative(self, key: str, kind: type[T]) -> T:
        return self.get(key, kind, check=lambda v: v >= 0, rule="must be 0 or more")

    def limit(self, key: str) -> int | None:
        """A positive integer, or null for no limit."""
        return self.get(
            key,
            (int, type(None)),
            check=lambda v: v is None or v > 0,
            rule="must be a positive integer, or null for no limit",
        )

    def positive_float(self, key: str) -> float:
        return self.get(key, float, check=lambda v: v > 0, rule="must be positive")

    def text(self, key: str) -> str:
        return self.get(key, str, check=lambda v: v.strip() != "", rule="must not be empty")

    def route_rates(self, key: str) -> dict[str, float]:
        """A mapping of routes (paths like /recommend) to rates of 0 or more."""
        rates = self.section(key)
        checked: dict[str, float] = {}
        for route in list(rates.data):
            if not str(route).startswith("/"):
                raise rates.fail(str(route), rates.data[route], "must be a route, like /recommend")
            checked[str(route)] = rates.get(
                str(route), float, check=lambda v: v >= 0, rule="must be 0 or more"
            )
        return checked

    def string_list(self, key: str) -> tuple[str, ...]:
        values: Any = self.get(key, (list, tuple), check=lambda v: len(v) > 0, rule="must not be empty")
        for value in values:
            if not isinstance(value, str):
                raise self.fail(key, list(values), "must be a list of names")
        return tuple(values)
