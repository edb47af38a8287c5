import dataclasses

import pytest

from attribution.config import ConfigError, Settings, describe


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
        ({"FLINK_PARALLELISM": "0"}, "FLINK_PARALLELISM must be > 0"),
        ({"JOB_SUBMISSION": "yarn"}, "JOB_SUBMISSION must be remote or application"),
        ({"KAFKA_SCAN_STARTUP_MODE": "sometimes"}, "unknown mode"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "localhost"}, "host:port"),
        ({"STATE_BACKEND": "memory"}, "rocksdb or hashmap"),
        ({"ATTRIBUTION_MODELS": "first_click,time_decay"}, "ATTRIBUTION_MODELS must list one or more of"),
        ({"ATTRIBUTION_MODELS": "linear,linear"}, "once each"),
        ({"ATTRIBUTION_MODELS": " , "}, "ATTRIBUTION_MODELS"),
        ({"LAST_CLICK_SINK_TABLE": "commerce.attributed_checkouts"}, "SINK_TABLE and LAST_CLICK_SINK_TABLE"),
    ],
)
def test_bad_values_fail_with_the_variable_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_attribution_models_are_read_in_order_with_spaces_allowed() -> None:
    assert Settings.from_env({}).models == ("first_click",)
    models = Settings.from_env({"ATTRIBUTION_MODELS": "linear, first_click"}).models
    assert models == ("linear", "first_click")


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
