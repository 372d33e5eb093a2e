"""DVC runs the registry's pipeline: repro, no-op, targeted reruns, metrics, params, exps, remotes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import edit_yaml, free_port, git_commit, git_init, make_project, run_cli

pytestmark = pytest.mark.slow


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([a-z_]+)'", output)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame) -> Path:
    """A git + DVC copy of the project on sampled data, reproduced once."""
    folder = make_project(tmp_path_factory.mktemp("dvc") / "project", sample_frame)
    git_init(folder)
    (folder / ".gitignore").write_text("/mlruns/\n/.dvc-storage/\n")
    run_cli("dvc", "init", "-q", cwd=folder)
    run_cli("dvc", "remote", "add", "-d", "local", ".dvc-storage", cwd=folder)
    git_commit(folder, "project")
    first = run_cli("dvc", "repro", cwd=folder)
    assert stages_run(first.stdout) == [
        "ingest",
        "validate",
        "transform",
        "train_reference",
        "train",
        "evaluate",
    ]
    git_commit(folder, "first run")
    return folder


def test_second_repro_reruns_nothing(repo: Path) -> None:
    again = run_cli("dvc", "repro", cwd=repo)
    assert stages_run(again.stdout) == []
    assert "Data and pipelines are up to date" in again.stdout
    assert run_cli("dvc", "status", "-q", cwd=repo, check=False).returncode == 0


def changed_stages(repo: Path) -> set[str]:
    status = json.loads(run_cli("dvc", "status", "--json", cwd=repo).stdout or "{}")
    return {name.split(":")[-1] for name in status}


def test_editing_any_module_a_stage_imports_makes_it_stale(repo: Path) -> None:
    """For every stage, a module it reaches only through others (the kind a hand-written list
    forgets): editing it makes exactly the stages that run it stale, and no other."""
    from songrec.orchestration.registry import STAGES

    source = repo / "src"
    code = {stage.name: {p.relative_to(repo) for p in stage.code(source)} for stage in STAGES}
    for stage in STAGES:
        own = Path("src/songrec/stages") / f"{stage.name}.py"
        # the module the fewest other stages run, so that the check tells stages apart
        module = min(
            sorted(code[stage.name] - {own}),
            key=lambda m: (sum(m in files for files in code.values()), -len(m.parts)),
        )
        path = repo / module
        original = path.read_bytes()
        try:
            path.write_bytes(original + b"\n# edited\n")
            expected = {name for name, files in code.items() if module in files}
            assert changed_stages(repo) == expected, f"editing {module}"
        finally:
            path.write_bytes(original)
    assert changed_stages(repo) == set()


def test_a_params_key_reruns_only_the_stages_that_read_it(repo: Path) -> None:
    edit_yaml(repo / "params.yaml", {"evaluate.promotion.tolerances.popularity_r2": 0.02})
    assert stages_run(run_cli("dvc", "repro", cwd=repo).stdout) == ["evaluate"]
    edit_yaml(repo / "params.yaml", {"train.genre.max_iter": 120})
    assert stages_run(run_cli("dvc", "repro", cwd=repo).stdout) == ["train", "evaluate"]
    diff = run_cli("dvc", "params", "diff", "--json", cwd=repo)
    changed = json.loads(diff.stdout)["params.yaml"]
    assert set(changed) == {"evaluate.promotion.tolerances.popularity_r2", "train.genre.max_iter"}
    metrics = json.loads(run_cli("dvc", "metrics", "show", "--json", cwd=repo).stdout)
    workspace = metrics[""]["data"] if "" in metrics else next(iter(metrics.values()))["data"]
    assert 0 <= workspace["metrics/genre.json"]["data"]["macro_f1"] <= 1
    git_commit(repo, "tuned")


def test_exp_run_with_set_param(repo: Path) -> None:
    result = run_cli("dvc", "exp", "run", "--set-param", "train.popularity.max_iter=60", cwd=repo)
    assert stages_run(result.stdout) == ["train", "evaluate"]
    shown = json.loads(run_cli("dvc", "exp", "show", "--json", cwd=repo).stdout)
    experiments = [exp for row in shown for group in row.get("experiments") or [] for exp in group["revs"]]
    values = [
        exp["data"]["params"]["params.yaml"]["data"]["train"]["popularity"]["max_iter"] for exp in experiments
    ]
    assert 60 in values


def test_invalid_data_stops_before_training_and_keeps_the_champion(
    repo: Path, sample_frame: pd.DataFrame
) -> None:
    import mlflow

    store = f"sqlite:///{repo / 'mlruns' / 'mlflow.db'}"
    registry = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)  # not the process's globals
    champion = registry.get_model_version_by_alias("songrec", "champion").version
    bundle = (repo / "models/bundle/bundle.pkl").read_bytes()
    source = repo / "data/source/spotify_songs.csv.gz"
    good = source.read_bytes()
    broken = sample_frame.drop(columns=["tempo"])
    broken.to_csv(source, index=False, compression="gzip")
    failed = run_cli("dvc", "repro", cwd=repo, check=False)
    assert failed.returncode != 0
    assert stages_run(failed.stdout) == ["ingest", "validate"]
    assert "tempo: required column is missing" in failed.stderr + failed.stdout
    assert (repo / "models/bundle/bundle.pkl").read_bytes() == bundle
    assert registry.get_model_version_by_alias("songrec", "champion").version == champion
    source.write_bytes(good)
    fixed = run_cli("dvc", "repro", cwd=repo)
    assert "validate" in stages_run(fixed.stdout)
    assert run_cli("dvc", "status", "-q", cwd=repo, check=False).returncode == 0


def test_push_to_s3_wipe_the_cache_and_pull(repo: Path, tmp_path: Path) -> None:
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        env = {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "SONGREC_DVC_REMOTE_URL": "s3://songrec-dvc/store",
        }
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        ).create_bucket(Bucket="songrec-dvc")
        configured = run_cli("songrec", "remote", cwd=repo, env=env)
        assert "s3://songrec-dvc/store" in configured.stdout
        run_cli("dvc", "push", cwd=repo, env=env)
        listed = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        ).list_objects_v2(Bucket="songrec-dvc", Prefix="store/")
        assert listed.get("KeyCount", 0) > 5
        catalog = repo / "data/processed/catalog.parquet"
        expected = catalog.read_bytes()
        shutil.rmtree(repo / ".dvc" / "cache")
        catalog.unlink()
        run_cli("dvc", "pull", cwd=repo, env=env)
        assert catalog.read_bytes() == expected
    finally:
        run_cli("songrec", "remote", cwd=repo)  # back to the committed local default
        server.stop()
