"""Reproducible training: the model files are the same bytes from one process to the next.

dvc.lock records every output's md5, so a model file whose bytes change between two runs on the
same inputs (a set pickled in hash order, a time, an address) changes dvc.lock on every
`make run`. Python randomizes str hashes per process: two processes with other hash seeds.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from songrec.config.manager import ConfigurationManager
from tests.conftest import run_cli


def test_training_twice_writes_the_same_model_files(trained_project: Path, tmp_path: Path) -> None:
    project = shutil.copytree(trained_project, tmp_path / "project")
    manager = ConfigurationManager(project)
    models = {"train_reference": manager.train_reference().model, "train": manager.train().bundle}
    digests = []
    for hash_seed in ("1", "2"):
        for stage in models:
            run_cli("songrec", "run", stage, cwd=project, env={"PYTHONHASHSEED": hash_seed})
        digests.append(
            {stage: hashlib.sha256(path.read_bytes()).hexdigest() for stage, path in models.items()}
        )
    assert digests[0] == digests[1]
