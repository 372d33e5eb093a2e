"""Airflow in the tests: a fresh SQLite metadata DB in a temporary AIRFLOW_HOME.

Airflow reads its configuration when it is first imported, so the environment is set here, at
collection time, before any test module imports it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, make_project, run_cli

_HOME = Path(tempfile.mkdtemp(prefix="songrec-airflow-tests-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    }
)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    from airflow.utils import db

    db.initdb()


def fresh_dagbag():  # type: ignore[no-untyped-def]
    """A newly parsed DagBag: dag.test() keeps a run's params on the DAG object, so each run
    that passes run_conf gets DAGs of its own."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture
def dagbag(airflow_db: None):  # type: ignore[no-untyped-def]
    return fresh_dagbag()


def dvc_project(folder: Path, tracks: pd.DataFrame | None) -> Path:
    """A sampled project that DVC can run (no git needed)."""
    project = make_project(folder, tracks)
    run_cli("dvc", "init", "--no-scm", "-q", cwd=project)
    return project


def task_states(run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
