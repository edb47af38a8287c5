import dataclasses

import pytest

from attribution.config import ConfigError, Settings, describe
from attribution.models import MODELS


def test_defaults_match_the_documented_contract() -> None:
    s = Settings.from_env({})
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert (s.postgres_host, s.postgres_port, s.postgres_db) == ("127.0.0.1", 5432, "postgres")
    assert (s.postgres_user, s.postgres_password) == ("postgres", "postgres")
    assert s.flink_rest_url == "http://127.0.0.1:8081"
    assert s.job_name == "checkout-attribution-job"
    assert s.out_of_orderness_seconds == 15
    assert s.attribution_window_seconds == 3600


def test_environment_overrides_are_typed() -> None:
    s = Settings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "broker:29092", "POSTGRES_PORT": "6543", "POSTGRES_PASSWORD": "s3cr'et"}
    )
    assert s.kafka_bootstrap_servers == "broker:29092"
    assert s.kafka_port == 29092
    assert s.postgres_port == 6543
    assert "port=6543" in s.psycopg_dsn()
    assert s.jdbc_url.startswith("jdbc:postgresql://127.0.0.1:6543/postgres?")


def test_keyword_overrides_win_over_environment() -> None:
    assert Settings.from_env({"CLICKS_TOPIC": "a"}, clicks_topic="b").clicks_topic == "b"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"POSTGRES_PORT": "five"}, "POSTGRES_PORT='five' is not a valid int"),
        ({"FLINK_PARALLELISM": "0"}, "FLINK_PARALLELISM must be a whole number above 0"),
        ({"JOB_SUBMISSION": "yarn"}, "JOB_SUBMISSION must be remote or application"),
        ({"KAFKA_SCAN_STARTUP_MODE": "sometimes"}, "unknown mode"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "localhost"}, "host:port"),
        ({"STATE_BACKEND": "memory"}, "rocksdb or hashmap"),
        ({"ATTRIBUTION_MODELS": "first_click,u_shaped"}, "ATTRIBUTION_MODELS must list one or more of"),
        ({"ATTRIBUTION_MODELS": "linear,linear"}, "once each"),
        ({"ATTRIBUTION_MODELS": " , "}, "ATTRIBUTION_MODELS"),
        ({"USERS_TABLE": f"commerce.{MODELS['linear'].table}"}, "USERS_TABLE and the linear table"),
        # Each kind of value is checked when it is read (what a security review found accepted).
        ({"EVENT_TIME_ZONE": "Mars/Base"}, "EVENT_TIME_ZONE must be a time zone"),
        ({"POSTGRES_PORT": "99999"}, "POSTGRES_PORT must hold ports from 1 to 65535, got 99999"),
        ({"FLINK_REST_PORT": "0"}, "FLINK_REST_PORT must hold ports from 1 to 65535"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "localhost:70000"}, "KAFKA_BOOTSTRAP_SERVERS must hold ports"),
        ({"FLINK_METRICS_PORTS": "9260-9249"}, "FLINK_METRICS_PORTS must be a port or a range"),
        ({"LOOKUP_CACHE_ROWS": "-5"}, "LOOKUP_CACHE_ROWS must be a whole number above 0, got -5"),
        ({"SINK_MAX_RETRIES": "-1"}, "SINK_MAX_RETRIES must be a whole number, 0 or more"),
        ({"FLINK_TASKMANAGER_MEMORY": "lots"}, "FLINK_TASKMANAGER_MEMORY must be a memory size"),
        ({"SINK_TABLE": "commerce.x; DROP TABLE commerce.users"}, "SINK_TABLE must be a table name"),
        ({"DEAD_LETTER_TABLE": "a.b.c"}, "DEAD_LETTER_TABLE must be a table name"),
        ({"CLICKS_TOPIC": "clicks'"}, "CLICKS_TOPIC must be a Kafka topic name"),
    ],
)
def test_bad_values_fail_with_the_variable_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ({"EVENT_TIME_ZONE": "Europe/Berlin"}, "Europe/Berlin"),
        ({"EVENT_TIME_ZONE": "GMT+02:00"}, "GMT+02:00"),
        ({"FLINK_TASKMANAGER_MEMORY": "2g"}, "2g"),
        ({"FLINK_TASKMANAGER_MEMORY": "1024 mb"}, "1024 mb"),
        ({"SINK_TABLE": "results"}, "results"),
    ],
)
def test_good_values_of_each_kind_are_taken(env: dict[str, str], value: str) -> None:
    assert value in Settings.from_env(env).to_env().values()


def test_a_password_with_a_space_a_quote_and_a_backslash_is_quoted_by_the_driver() -> None:
    import psycopg2.extensions

    password = "it's a p\\ss word"
    dsn = Settings.from_env({"POSTGRES_PASSWORD": password}).psycopg_dsn()
    assert psycopg2.extensions.parse_dsn(dsn)["password"] == password


def test_the_env_file_sets_what_the_environment_does_not(tmp_path, monkeypatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("POSTGRES_PORT=6543\nCLICKS_TOPIC=from-file\n# a comment\nJOB_NAME='quoted name'\n")
    monkeypatch.setenv("ATTRIBUTION_ENV_FILE", str(env_file))
    for variable in ("POSTGRES_PORT", "JOB_NAME"):  # the integration tests' conftest sets some
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CLICKS_TOPIC", "from-shell")
    settings = Settings.from_env()
    assert (settings.postgres_port, settings.clicks_topic, settings.job_name) == (
        6543,
        "from-shell",
        "quoted name",
    )
    monkeypatch.setenv("ATTRIBUTION_ENV_FILE", "")  # none
    assert Settings.from_env().job_name == "checkout-attribution-job"


def test_recorded_settings_hold_no_secret() -> None:
    settings = Settings.from_env({"POSTGRES_PASSWORD": "hunter2"})
    assert "POSTGRES_PASSWORD" in settings.to_env()
    assert "POSTGRES_PASSWORD" not in settings.to_env(secrets=False)
    assert "hunter2" not in settings.to_env(secrets=False).values()


def test_attribution_models_are_read_with_spaces_allowed_in_the_registry_order() -> None:
    assert Settings.from_env({}).models == ("first_click",)
    models = Settings.from_env({"ATTRIBUTION_MODELS": "linear, first_click"}).models
    assert models == ("first_click", "linear")


def test_every_model_has_its_own_tables_in_the_results_schema() -> None:
    settings = Settings.from_env({"SINK_TABLE": "results.first"})
    assert settings.model_table("first_click") == "results.first"
    assert settings.model_written_table("first_click") == "results.first"
    tables = [settings.model_written_table(m) for m in MODELS] + settings.model_views
    assert len(set(tables)) == len(tables) and all(t.startswith("results.") for t in tables)


def test_every_setting_has_an_env_var_and_is_described() -> None:
    text = describe()
    for field in dataclasses.fields(Settings):
        assert field.metadata["env"] in text
    envs = [f.metadata["env"] for f in dataclasses.fields(Settings)]
    assert len(envs) == len(set(envs))


def test_checkpoint_dir_defaults_under_the_stack_dir() -> None:
    s = Settings.from_env({"STACK_DIR": "/tmp/x"})
    assert s.checkpoint_uri == "file:///tmp/x/checkpoints"
    assert Settings.from_env({"CHECKPOINT_DIR": "s3://b/cp"}).checkpoint_uri == "s3://b/cp"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EVENT_TIME_ZONE", "Mars/Base"),
        ("POSTGRES_PORT", "99999"),
        ("LOOKUP_CACHE_ROWS", "-5"),
        ("FLINK_TASKMANAGER_MEMORY", "lots"),
        ("SINK_TABLE", "commerce.x; DROP TABLE commerce.users"),
    ],
)
def test_make_up_refuses_a_bad_setting_in_one_line(variable: str, value: str) -> None:
    """`make up` (the CLI behind it) stops before starting anything, with one line naming it."""
    import os
    import subprocess
    import sys

    from attribution.config import PROJECT_ROOT

    result = subprocess.run(
        [sys.executable, "-m", "attribution", "up"],
        env={**os.environ, variable: value, "STACK_DIR": "/nonexistent/stack"},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {variable} "), result.stderr
    assert not os.path.exists("/nonexistent/stack")
