"""The image, checked without building it (test_engine.py builds and runs it where an engine
answers): the Dockerfile's rules, the build context, the locked versions it installs, and the
entrypoint's roles that need no server."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.conftest import BIN, ROOT, make_project
from tests.topology.conftest import DOCKERFILE, DOCKERIGNORE, ENTRYPOINT, PG_INIT, load_compose, run_role

SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|ACCESS_KEY", re.IGNORECASE)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def ignored(path: str) -> bool:
    """Docker's .dockerignore rule: the last pattern that matches the path or a parent wins."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    result = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            result = not negate
    return result


def test_multi_stage_on_a_pinned_python_as_a_non_root_user() -> None:
    steps = dockerfile_instructions()
    args = dict(arg.split("=", 1) for word, arg in steps if word == "ARG" and "=" in arg)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", args["PYTHON_IMAGE"]), args["PYTHON_IMAGE"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["UV_VERSION"])
    stages = [arg for word, arg in steps if word == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    users = [arg for word, arg in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    runtime = steps[[i for i, (word, arg) in enumerate(steps) if word == "FROM"][-1] :]
    assert not any("build-essential" in arg for word, arg in runtime), "the compiler stays in the build stage"
    assert ("COPY", "--from=build /opt/venv /opt/venv") in runtime


def test_no_secret_is_baked_into_the_image() -> None:
    for word, arg in dockerfile_instructions():
        if word in ("ENV", "ARG", "LABEL"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", arg) or [arg.split()[0]]
            assert not [name for name in names if SECRET.search(name)], f"{word} {arg}"
    for path in (".env", "airflow_home/passwords.json", ".dvc/config.local", "var/events.db"):
        assert ignored(path), f"{path} would be sent to the builder"


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    for path in (".git/config", ".venv/bin/python", "mlruns/mlflow.db", ".dvc/cache/files/md5/ab/cd",
                 "data/raw/tracks.parquet", "models/bundle/bundle.pkl", "tests/conftest.py",
                 "src/songrec/__pycache__/cli.cpython-311.pyc", ".dvc-storage/files/md5/aa"):  # fmt: skip
        assert ignored(path), f"{path} would be sent to the builder"
    sources = []
    for word, arg in dockerfile_instructions():
        if word == "COPY" and not arg.startswith("--from"):
            sources += [part for part in arg.split()[:-1] if not part.startswith("--")]
    assert sources, "no COPY found"
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: no such file"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        kept = [f for f in files if not ignored(f.relative_to(ROOT).as_posix())]
        assert kept, f"COPY {source}: .dockerignore leaves nothing of it"


def test_the_image_installs_the_locked_versions_only(tmp_path: Path) -> None:
    """The Dockerfile's install line (extras and extra packages, the lock as constraint) resolves
    to versions of requirements.lock, each one, with nothing outside it (uv's cache, offline)."""
    (line,) = [
        arg for word, arg in dockerfile_instructions() if word == "RUN" and "-c requirements.lock" in arg
    ]
    extras = re.search(r'"\.\[([a-z,]+)\]"', line)
    assert extras, line
    extra_packages = line.split(extras.group(0), 1)[1].split("&&", 1)[0].split()
    (tmp_path / "extra.in").write_text("\n".join(extra_packages) + "\n")
    command = [str(BIN / "uv"), "pip", "compile", str(ROOT / "pyproject.toml"), str(tmp_path / "extra.in")]
    for extra in extras.group(1).split(","):
        command += ["--extra", extra]
    command += ["-c", str(ROOT / "requirements.lock"), "--python-version", "3.11", "--offline", "-q"]
    command += ["--no-header", "--no-annotate"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 and "offline" in result.stderr.lower():
        pytest.skip(f"uv's cache cannot resolve offline: {result.stderr[-300:]}")
    assert result.returncode == 0, result.stderr
    locked = dict(re.findall(r"^([a-z0-9._-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), re.M))
    resolved = dict(re.findall(r"^([a-z0-9._-]+)==(\S+)", result.stdout, re.M))
    assert {"apache-airflow", "mlflow", "dvc", "boto3", "fastapi", "psycopg", "celery"} <= set(resolved)
    differ = {
        name: (version, locked.get(name)) for name, version in resolved.items() if locked.get(name) != version
    }
    assert not differ, f"not the lock's versions: {differ}"
    for tool in ("pytest", "ruff", "mypy", "selenium", "moto"):
        assert tool not in resolved, f"{tool} (a dev tool) would be in the image"


def test_entrypoint_and_healthchecks_use_the_path_of_the_image() -> None:
    (entrypoint,) = [arg for word, arg in dockerfile_instructions() if word == "ENTRYPOINT"]
    path = json.loads(entrypoint)[-1]
    assert path == "/opt/songrec/release/docker/entrypoint.sh"
    assert ENTRYPOINT.stat().st_mode & stat.S_IXUSR
    for name, spec in load_compose()["services"].items():
        test = spec.get("healthcheck", {}).get("test", [])
        if any("entrypoint.sh" in part for part in test):
            assert test[1] == path, f"{name}: {test}"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck (Debian) not installed")
def test_shell_scripts_pass_shellcheck() -> None:
    standins = sorted(
        str(path) for path in (ROOT / "docker" / "standins").iterdir() if path.suffix in (".sh", "")
    )
    result = subprocess.run(
        ["shellcheck", str(ENTRYPOINT), str(PG_INIT), *standins], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_unknown_health_check_is_a_usage_error() -> None:
    result = run_role("health", "bogus", env={})
    assert result.returncode == 2 and "usage" in result.stderr


def test_the_api_login_file_holds_the_password_from_the_environment(tmp_path: Path) -> None:
    env = {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW_ADMIN_PASSWORD": 'a "quoted" pass',
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
    }
    result = subprocess.run(
        [str(BIN / "python"), str(ENTRYPOINT.parent / "helpers.py"), "passwords-file"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    written = tmp_path / "passwords.json"
    assert json.loads(written.read_text()) == {"admin": 'a "quoted" pass', "viewer": 'a "quoted" pass'}
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert "quoted" not in result.stderr, "the password is printed"


def test_the_workspace_takes_code_from_the_release_and_keeps_pipeline_state(tmp_path: Path) -> None:
    release = make_project(tmp_path / "release", None)
    (release / ".dvc").mkdir()
    shutil.copy(ROOT / ".dvc" / "config", release / ".dvc" / "config")
    (release / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    workspace = tmp_path / "workspace"
    env = {"SONGREC_RELEASE": str(release), "SONGREC_ROOT": str(workspace)}
    first = run_role("workspace", env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert (workspace / "dags" / "songrec_training.py").is_file()
    assert (workspace / "data" / "source" / "spotify_songs.csv.gz").is_file()
    assert "no_scm = true" in (workspace / ".dvc" / "config.local").read_text()
    # A run's state stays; a new release replaces the code (a removed file goes too).
    (workspace / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n# the state of a run\n")
    (workspace / "data" / "raw").mkdir(parents=True)
    (workspace / "data" / "raw" / "tracks.parquet").write_text("output")
    (workspace / "dags" / "old_dag.py").write_text("")
    (release / "params.yaml").write_text((release / "params.yaml").read_text() + "\n# release 2\n")
    second = run_role("workspace", env=env, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "the state of a run" in (workspace / "dvc.lock").read_text()
    assert (workspace / "data" / "raw" / "tracks.parquet").read_text() == "output"
    assert not (workspace / "dags" / "old_dag.py").exists()
    assert "# release 2" in (workspace / "params.yaml").read_text()
    status = subprocess.run(
        [str(BIN / "dvc"), "status"], cwd=workspace, capture_output=True, text=True, env={"PATH": str(BIN)}
    )
    assert status.returncode == 0, status.stderr  # DVC works there without git


def test_the_installed_package_carries_every_file_it_reads(tmp_path: Path) -> None:
    """The image installs songrec as a wheel (not editable): each data file under src/songrec
    (the web page's templates and static files, ...) must be in it, or the API cannot start."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    built = subprocess.run(
        [str(BIN / "uv"), "build", "--wheel", "--offline", "-q", "-o", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if built.returncode != 0 and "offline" in built.stderr.lower():
        pytest.skip(f"uv cannot build offline here: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = set(archive.namelist())
    data = [
        path.relative_to(ROOT / "src").as_posix()
        for path in (ROOT / "src" / "songrec").rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    ]
    missing = sorted(name for name in data if name not in packaged)
    assert not missing, f"not in the wheel (pyproject.toml [tool.setuptools.package-data]): {missing}"
