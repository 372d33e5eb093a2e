"""What the commands share: the project's configuration, read when a command runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command starts fast: configuration loads when a command runs
    from songrec.config.manager import ConfigurationManager


def load_config(root: Path | None = None) -> ConfigurationManager:
    from songrec.config.manager import ConfigurationManager

    return ConfigurationManager(root)
