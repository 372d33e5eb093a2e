"""Prometheus in the production topology: its configuration is valid and wired into
docker-compose.yaml and Grafana, and a real Prometheus (Debian's package) scraping a real
`songrec serve` answers every query of the `songrec service` dashboard with data.

Debian's `prometheus` package provides /usr/bin/prometheus and /usr/bin/promtool; .ci/run installs
it. Without it these tests fail (they do not skip): `apt-get install -y prometheus`.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import BIN, ROOT, free_port
from tests.services import process_group, wait_http
from tests.topology.conftest import ENTRYPOINT, GRAFANA, load_compose, service_environment, wait_for

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
CONFIG = ROOT / "monitoring" / "prometheus" / "prometheus.yml"
DATASOURCE = GRAFANA / "provisioning" / "datasources" / "songrec-prometheus.yaml"
DASHBOARD = GRAFANA / "dashboards" / "songrec-service.json"
# Grafana's interval macros, expanded as Grafana would for a short range on a 1 s scrape interval.
MACROS = {"$__rate_interval": "30s", "$__range": "5m", "$__interval": "1s"}
# What the dashboard must show (issue 17), as the metric each of those panels reads.
SHOWN = (
    "songrec_requests_total",
    "songrec_request_duration_seconds_bucket",
    "songrec_model_info",
    "songrec_model_swaps_total",
    "songrec_event_queue_depth",
    "songrec_events_dropped_by_reason_total",
    "songrec_event_store_up",
)


def needs(tool: Path) -> Path:
    if not tool.is_file():
        pytest.fail(
            f"{tool} is missing: install Debian's prometheus package "
            "(apt-get install -y prometheus; .ci/run installs it)"
        )
    return tool


def dashboard_queries() -> dict[str, str]:
    """Every target's PromQL, keyed by panel title and refId."""
    board = json.loads(DASHBOARD.read_text())
    return {
        f"{panel['title']} [{target['refId']}]": target["expr"]
        for panel in board["panels"]
        for target in panel["targets"]
    }


def expand(expr: str) -> str:
    for macro, value in MACROS.items():
        expr = expr.replace(macro, value)
    assert "$" not in expr, f"a Grafana variable the test does not expand: {expr}"
    return expr


def promtool_check(config: Path) -> None:
    result = subprocess.run(
        [str(needs(PROMTOOL)), "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def test_promtool_accepts_the_configuration() -> None:
    promtool_check(CONFIG)


def test_the_compose_service_scrapes_the_api_where_compose_runs_it(compose: dict[str, Any]) -> None:
    services = compose["services"]
    prometheus = services["prometheus"]
    # A pinned image of the release the test below runs (Debian's package).
    tag = re.fullmatch(r"prom/prometheus:v(\d+)\.(\d+)\.\d+", prometheus["image"])
    assert tag, prometheus["image"]
    version = subprocess.run(
        [str(needs(PROMTOOL)), "--version"], capture_output=True, text=True, timeout=30
    ).stdout
    tested = re.search(r"version (\d+)\.(\d+)\.", version)
    assert tested and tested.groups() == tag.groups(), f"image {prometheus['image']}, tested {version}"
    flags = dict(argument.split("=", 1) for argument in prometheus["command"])
    mounts = dict(volume.split(":")[:2] for volume in prometheus["volumes"])
    assert mounts["./monitoring/prometheus/prometheus.yml"] == flags["--config.file"]
    assert prometheus["volumes"][0].endswith(":ro")
    assert mounts["prometheus-data"] == flags["--storage.tsdb.path"]
    assert "prometheus-data" in compose["volumes"]
    # Started, not healthy: the API stays unhealthy until the first champion.
    assert prometheus["depends_on"] == {"songrec-api": {"condition": "service_started"}}
    port = flags["--web.listen-address"].rsplit(":", 1)[1]
    assert prometheus["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f"http://localhost:{port}/-/ready" in prometheus["healthcheck"]["test"]

    # Its scrape target is the API as its container runs it: `songrec serve` on the port that
    # docker/entrypoint.sh uses by default and that compose publishes; the app serves /metrics.
    config = yaml.safe_load(CONFIG.read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "songrec-api"]
    (static,) = job["static_configs"]
    api = services["songrec-api"]
    api_port = api["ports"][0].rsplit(":", 1)[1]
    assert static["targets"] == [f"songrec-api:{api_port}"]
    assert f"SONGREC_API_PORT:-{api_port}" in ENTRYPOINT.read_text()
    assert "SONGREC_API_PORT" not in service_environment(compose, "songrec-api")
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert '"/metrics"' in (ROOT / "src" / "songrec" / "serving" / "routes.py").read_text()
    assert config["global"]["scrape_interval"] in {"5s", "10s", "15s"}

    # Grafana reaches it where it listens, once it is up.
    grafana = services["grafana"]
    assert service_environment(compose, "grafana")["SONGREC_PROMETHEUS_URL"] == f"http://prometheus:{port}"
    assert grafana["depends_on"]["prometheus"] == {"condition": "service_healthy"}


def test_the_service_dashboard_reads_the_provisioned_prometheus_datasource(compose: dict[str, Any]) -> None:
    (source,) = yaml.safe_load(DATASOURCE.read_text())["datasources"]
    assert (source["uid"], source["type"], source["access"]) == ("songrec-prometheus", "prometheus", "proxy")
    used = set(re.findall(r"\$\{([A-Z_]+)\}", json.dumps(source)))
    assert used and used <= set(service_environment(compose, "grafana")), used
    # Grafana's $__rate_interval assumes this scrape interval.
    config = yaml.safe_load(CONFIG.read_text())
    assert source["jsonData"]["timeInterval"] == config["global"]["scrape_interval"]
    # The event store stays the default datasource; the two differ.
    (events,) = yaml.safe_load((DATASOURCE.parent / "songrec-events.yaml").read_text())["datasources"]
    assert events["isDefault"] and not source.get("isDefault")
    assert events["uid"] != source["uid"]

    board = json.loads(DASHBOARD.read_text())
    assert (board["title"], board["uid"]) == ("songrec service", "songrec-service")
    others = [json.loads(path.read_text()) for path in DASHBOARD.parent.glob("*.json") if path != DASHBOARD]
    assert board["uid"] not in {other["uid"] for other in others}
    assert board["title"] not in {other["title"] for other in others}
    wanted = {"type": "prometheus", "uid": source["uid"]}
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"] == wanted, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == wanted, panel["title"]
            assert target["expr"].strip() and "rawSql" not in target, panel["title"]
    queries = "\n".join(dashboard_queries().values())
    for metric in SHOWN:
        assert metric in queries, f"no panel reads {metric}"
    for quantile in ("0.5", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (endpoint, le) (rate(" in queries


def scrape_config(folder: Path, api_port: int, prometheus_port: int) -> Path:
    """monitoring/prometheus/prometheus.yml with a 1 s interval and its targets on this machine."""
    config = yaml.safe_load(CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    targets = {"songrec-api": f"127.0.0.1:{api_port}", "prometheus": f"127.0.0.1:{prometheus_port}"}
    # No stream scorer runs here (its /metrics are tested in tests/serving/test_stream.py); its
    # job discovers containers by DNS, which only the compose network answers.
    config["scrape_configs"] = [
        job for job in config["scrape_configs"] if job["job_name"] != "songrec-stream"
    ]
    for job in config["scrape_configs"]:
        assert job["job_name"] in targets, f"the test has no stand-in for job {job['job_name']}"
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def query(url: str, promql: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10)
    assert answer.status_code == 200, f"{promql}: {answer.status_code} {answer.text}"
    body = answer.json()
    assert body["status"] == "success" and body["data"]["resultType"] == "vector", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def load(api: str, seconds: float = 4.0) -> Counter[tuple[str, int]]:
    """Real requests for a few scrape intervals: recommendations, some 422s, health checks."""
    sent: Counter[tuple[str, int]] = Counter()
    with requests.Session() as session:
        found = session.get(f"{api}/tracks", params={"q": "a"}, timeout=10)
        assert found.status_code == 200, found.text
        sent["/tracks", 200] += 1
        ids = [track["track_id"] for track in found.json()["tracks"]]
        assert len(ids) >= 6
        deadline = time.monotonic() + seconds
        turn = 0
        while time.monotonic() < deadline:
            answer = session.post(
                f"{api}/recommend", json={"track_ids": ids[turn % 4 : turn % 4 + 3], "k": 5}, timeout=10
            )
            assert answer.status_code == 200, answer.text
            sent["/recommend", 200] += 1
            if turn % 3 == 0:
                refused = session.post(
                    f"{api}/recommend", json={"track_ids": ids[:2], "k": "many"}, timeout=10
                )
                assert refused.status_code == 422, refused.text
                sent["/recommend", 422] += 1
            assert session.get(f"{api}/health", timeout=10).status_code == 200
            sent["/health", 200] += 1
            turn += 1
            time.sleep(0.05)
    return sent


def by(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {series["metric"].get(label, ""): float(series["value"][1]) for series in result}


@pytest.mark.slow
def test_a_real_prometheus_scraping_songrec_serve_answers_every_panel_of_the_dashboard(
    trained_project: Path, tmp_path: Path
) -> None:
    prometheus_bin = needs(PROMETHEUS)
    project = tmp_path / "project"
    shutil.copytree(trained_project, project, ignore=shutil.ignore_patterns("mlruns", "var"))
    api_port, prometheus_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    prometheus = f"http://127.0.0.1:{prometheus_port}"
    serve = [str(BIN / "songrec"), "serve", "--host", "127.0.0.1", "--port", str(api_port)]
    api_log = tmp_path / "serve.log"
    with process_group(serve, api_log, cwd=project) as server:
        wait_http(f"{api}/ready", server, api_log, timeout=60)
        served = requests.get(f"{api}/ready", timeout=5).json()

        config = scrape_config(tmp_path, api_port, prometheus_port)
        promtool_check(config)
        command = [
            str(prometheus_bin),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--log.level=warn",
        ]
        prometheus_log = tmp_path / "prometheus.log"
        with process_group(command, prometheus_log, cwd=tmp_path) as process:
            wait_http(f"{prometheus}/-/ready", process, prometheus_log, timeout=60)
            wait_for(
                "Prometheus scraping the API",
                lambda: by(query(prometheus, 'up{job="songrec-api"}'), "job") == {"songrec-api": 1.0},
                timeout=30,
                interval=0.5,
            )
            sent = load(api)
            recommends = sent["/recommend", 200] + sent["/recommend", 422]
            wait_for(
                f"Prometheus holding all {recommends} /recommend requests",
                lambda: (
                    by(query(prometheus, 'sum(songrec_requests_total{endpoint="/recommend"})'), "endpoint")
                    == {"": float(recommends)}
                ),
                timeout=30,
                interval=0.5,
            )

            answers = {title: query(prometheus, expand(expr)) for title, expr in dashboard_queries().items()}
            assert process.poll() is None, prometheus_log.read_text()[-3000:]

    empty = [title for title, result in answers.items() if not result]
    assert not empty, f"panels without data: {empty}"
    for result in answers.values():
        for series in result:
            float(series["value"][1])  # a number (NaN included), as Grafana would plot it
    print(f"{len(answers)} panel queries answered; requests sent: {dict(sent)}")

    # What the panels show is what happened.
    rates = by(answers["Requests per second by route [A]"], "endpoint")
    assert {"/recommend", "/health", "/tracks", "/metrics"} <= set(rates), rates
    assert rates["/recommend"] > 0 and rates["/health"] > 0
    client_errors = by(answers["4xx and 5xx per second by route [A]"], "endpoint")
    assert client_errors["/recommend"] > 0 and client_errors["/health"] == 0, client_errors
    server_errors = by(answers["4xx and 5xx per second by route [B]"], "endpoint")
    assert set(server_errors) == set(rates) and not any(server_errors.values()), server_errors
    for quantile in ("p50", "p99"):
        latency = by(answers[f"{quantile} latency by route [A]"], "endpoint")["/recommend"]
        assert math.isfinite(latency) and 0 < latency < 10, (quantile, latency)
    (model,) = answers["Model serving [A]"]
    assert model["metric"]["version"] == served["model_version"]
    assert model["metric"]["source"] == served["model_source"]
    assert float(answers["Model swaps in the range [A]"][0]["value"][1]) == 0
    assert float(answers["Event store up [A]"][0]["value"][1]) == 1
    assert float(answers["API instances up [A]"][0]["value"][1]) == 1
    assert by(answers["Event log queue depth [A]"], "instance").keys() == {f"127.0.0.1:{api_port}"}
    assert by(answers["Dropped events per second by reason [A]"], "reason") == {
        "queue_full": 0.0,
        "shutdown": 0.0,
    }
    assert float(answers["Events logged per second [A]"][0]["value"][1]) > 0
    assert by(answers["Model version served over time [A]"], "version") == {served["model_version"]: 1.0}
