"""Where a run comes from: its readable name, and the tags that tie it to code, experiment and data.

An MLflow run is named after what made it ("pipeline <git short sha or DVC experiment> <UTC
time>") and tagged with the git commit and whether the work tree had uncommitted changes, the
DVC experiment (when `dvc exp run` ran it), and the data's sha256 (tagged by the evaluate stage);
the registered version's description says which run and params made it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from songrec.config.stage_configs import EvaluateConfig

CODE_AND_CONFIG = ("src", "config", "params.yaml", "dvc.yaml", "dags")


@dataclass(frozen=True)
class GitState:
    commit: str | None  # None: not a git work tree, or no git
    dirty: bool | None

    @property
    def short(self) -> str | None:
        return None if self.commit is None else self.commit[:7]


@dataclass(frozen=True)
class Lineage:
    git: GitState
    dvc_experiment: str | None
    started: datetime

    @property
    def run_name(self) -> str:
        if self.dvc_experiment:
            made_by = f"exp {self.dvc_experiment}"
        elif self.git.short:
            made_by = self.git.short + ("+changes" if self.git.dirty else "")
        else:
            made_by = "no git"
        return f"pipeline {made_by} {self.started:%Y-%m-%d %H:%M} UTC"

    @property
    def tags(self) -> dict[str, str]:
        return {
            "git.commit": self.git.commit or "",
            "git.dirty": "" if self.git.dirty is None else str(self.git.dirty).lower(),
            "dvc.experiment": self.dvc_experiment or "",
        }

    def describe(self, run_id: str, params: dict[str, Any]) -> str:
        """The registered version's description: which run, which code and which params."""
        train = params.get("train", {})
        recommender = train.get("recommender", {}).get("name", "?")
        code = self.git.short or "an unversioned tree"
        if self.git.dirty:
            code += " with uncommitted changes"
        experiment = f", DVC experiment {self.dvc_experiment}" if self.dvc_experiment else ""
        return (
            f"Made by MLflow run {run_id} ({self.run_name}) from commit {code}{experiment}; "
            f"recommender {recommender}, seed {params.get('seed')}. "
            "Its params, metrics, data sha256 and plots are in that run."
        )


def run_lineage(config: EvaluateConfig) -> Lineage:
    return Lineage(git_state(config.project_root), config.dvc_experiment, datetime.now(UTC))


def git_state(folder: Path) -> GitState:
    """The commit checked out in `folder` and whether its code or configuration differ from it
    (dvc.lock and DVC's outputs change during every run: they do not count)."""
    try:
        commit = _git(folder, "rev-parse", "HEAD")
        changes = _git(folder, "status", "--porcelain", "--untracked-files=no", "--", *CODE_AND_CONFIG)
    except (OSError, subprocess.CalledProcessError):
        return GitState(None, None)
    return GitState(commit, bool(changes))


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=folder, capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
