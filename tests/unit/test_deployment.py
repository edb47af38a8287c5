"""Offline checks of the Compose stack, its images, Prometheus configs and the Grafana dashboard.
No Docker engine runs here: Debian's docker-compose and promtool validate the files (.ci/run
installs them); metric names on the dashboard are checked against a real run in
tests/integration/test_attribution.py."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from attribution import stack
from attribution.config import PROJECT_ROOT, Settings

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DASHBOARD = PROJECT_ROOT / "grafana" / "dashboards" / "checkout-attribution.json"
DOCKERFILES = sorted((PROJECT_ROOT / "container").glob("*/Dockerfile"))


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: apt install docker-compose prometheus; .ci/run does)")
    return path


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_is_valid() -> None:
    result = subprocess.run(
        [tool("docker-compose"), "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_compose_uses_the_embedded_stacks_settings(compose: dict) -> None:
    known = {f.metadata["env"] for f in dataclasses.fields(Settings)}
    shared = compose["x-settings"]
    assert set(shared) <= known, set(shared) - known
    # Values must parse as the settings module parses them.
    env = {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for k, v in shared.items()}
    settings = Settings.from_env(env)
    assert settings.kafka_bootstrap_servers == "kafka:19092" and settings.flink_rest_host == "jobmanager"


def test_services_wait_for_healthy_dependencies(compose: dict) -> None:
    services = compose["services"]
    for name in ("kafka", "postgres", "jobmanager", "prometheus"):
        assert "healthcheck" in services[name], name
    assert services["init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["job"]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert services["job"]["depends_on"]["jobmanager"]["condition"] == "service_healthy"
    # --scale taskmanager=N: no fixed name or host port on the TaskManager.
    assert "container_name" not in services["taskmanager"] and "ports" not in services["taskmanager"]


def test_images_are_pinned(compose: dict) -> None:
    images = [s["image"] for s in compose["services"].values() if "image" in s and "build" not in s]
    images += [
        line.split()[1]
        for f in DOCKERFILES
        for line in f.read_text().splitlines()
        if line.startswith("FROM ")
    ]
    assert images
    for image in images:
        _, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{image} is not pinned to a version"


def test_flink_image_is_built_like_the_embedded_stack() -> None:
    dockerfile = (PROJECT_ROOT / "container" / "flink" / "Dockerfile").read_text()
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    python = re.search(r"PYTHON \?= python(\d+\.\d+)", makefile)[1]
    assert f"FROM python:{python}." in dockerfile  # the same Python as the venv
    assert "pip install --quiet -r requirements.lock" in dockerfile  # the same apache-flink and packages
    assert "python -m attribution.deps" in dockerfile  # the same connector and UDF jars
    assert "FLINK_TASKMANAGER_HOST=auto" in dockerfile and "FLINK_BIND_HOST=0.0.0.0" in dockerfile


def test_prometheus_configs_are_valid(tmp_path: Path) -> None:
    promtool = tool("promtool")
    embedded = stack.render_prometheus_conf(
        dataclasses.replace(Settings.from_env({}), stack_dir=str(tmp_path))
    )
    for config in (PROJECT_ROOT / "prometheus" / "prometheus.yml", embedded):
        result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def dashboard_metric_names() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return {m for e in exprs for m in re.findall(r"\b(flink_[A-Za-z0-9_]+)", e)}


def test_dashboard_is_provisioned_and_queries_flink_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " ".join(p["title"] for p in dashboard["panels"])
    for topic in (
        "Checkouts",
        "Attributed",
        "Malformed",
        "Late",
        "lag",
        "Backpressure",
        "Checkpoint",
        "Restarts",
        "heap",
    ):
        assert topic.lower() in titles.lower(), topic
    assert dashboard_metric_names()
    provider = yaml.safe_load((PROJECT_ROOT / "grafana/provisioning/dashboards/dashboards.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


K8S = PROJECT_ROOT / "k8s"


def test_flinkdeployment_matches_the_operators_schema() -> None:
    node = tool("node")
    if not (K8S / "validate" / "node_modules").is_dir():
        pytest.skip("k8s/validate/node_modules missing: `make setup` installs it when npm is present")
    objects = list(yaml.safe_load_all((K8S / "flinkdeployment.yaml").read_text()))
    result = subprocess.run(
        [node, str(K8S / "validate" / "validate.mjs")],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "ok FlinkDeployment/" in result.stdout, result.stderr


def test_flinkdeployment_runs_this_job_with_the_same_settings() -> None:
    config_map, deployment = yaml.safe_load_all((K8S / "flinkdeployment.yaml").read_text())
    known = {f.metadata["env"] for f in dataclasses.fields(Settings)}
    assert set(config_map["data"]) <= known, set(config_map["data"]) - known
    assert Settings.from_env(config_map["data"]).job_submission == "application"
    lock = (PROJECT_ROOT / "requirements.lock").read_text()
    flink = re.search(r"^apache-flink==(\d+)\.(\d+)\.(\d+)$", lock, re.MULTILINE)
    job = deployment["spec"]["job"]
    assert job["jarURI"] == f"local:///opt/flink/opt/flink-python-{flink[1]}.{flink[2]}.{flink[3]}.jar"
    assert deployment["spec"]["flinkVersion"] == f"v{flink[1]}_{flink[2]}"
    driver = job["args"][job["args"].index("-py") + 1]
    assert driver.removeprefix("/opt/attribution/") == "code/checkout_attribution.py"
    assert (PROJECT_ROOT / "code" / "checkout_attribution.py").is_file()
    image = (PROJECT_ROOT / "container" / "flink-k8s" / "Dockerfile").read_text()
    assert f"FROM flink:{flink[1]}.{flink[2]}.{flink[3]}-" in image and "JOB_SUBMISSION=application" in image
