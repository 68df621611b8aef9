"""Configuration is validated before anything connects, with errors naming the argument."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import dbos_typed as dbos
from dbos_typed._core.validate import LONGEST_WAIT
from dbos_typed._sysdb._create_database import libpq_connect_timeout

SURROGATE = "a\udcffb"  # what os.fsdecode makes of an undecodable byte


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"app_name": ""}, "app_name"),
        ({"app_name": "a\x00b"}, "app_name"),
        ({"app_name": "x", "database_url": "mysql://h/db"}, "database_url"),
        ({"app_name": "x", "database_url": "sqlite://relative"}, "database_url"),
        ({"app_name": "x", "database_url": ""}, "database_url"),
        ({"app_name": "x", "database_schema": ""}, "database_schema"),
        ({"app_name": "x", "database_schema": "s" * 64}, "database_schema"),
        ({"app_name": "x", "executor_id": ""}, "executor_id"),
        ({"app_name": "x", "max_connections": 0}, "max_connections"),
    ],
)
def test_invalid_config_names_the_argument(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(dbos.InvalidOptionError) as info:
        dbos.Config(**kwargs)  # type: ignore[arg-type]
    assert info.value.argument == argument
    assert isinstance(info.value, ValueError)


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    config = dbos.Config(app_name="x", executor_id="mine", application_version="1")
    monkeypatch.setenv("DBOS__VMID", "vm-7")
    monkeypatch.setenv("DBOS__APPVERSION", "2")
    assert config.resolved_executor_id() == "vm-7"
    assert config.pinned_application_version() == "2"


@pytest.mark.parametrize(
    ("overrides", "argument"),
    [
        ({"max_connections": True}, "max_connections"),
        ({"admin_port": False}, "admin_port"),
        ({"admin_server": 1}, "admin_server"),
        ({"connect_timeout": timedelta(0)}, "connect_timeout"),
        ({"connect_timeout": timedelta(seconds=-1)}, "connect_timeout"),
        ({"scheduler_polling_interval": timedelta(seconds=-1)}, "scheduler_polling_interval"),
        ({"app_name": SURROGATE}, "app_name"),
        ({"database_schema": SURROGATE}, "database_schema"),
        ({"executor_id": SURROGATE}, "executor_id"),
        ({"database_url": f"postgresql://postgres@localhost/{SURROGATE}"}, "database_url"),
        ({"database_url": "postgresql://postgres@localhost/db?foo=bar"}, "database_url"),
        ({"database_url": "postgresql://postgres@localhost/db?sslmode"}, "database_url"),
    ],
)
def test_bad_config_values_are_refused_naming_the_option(
    overrides: dict[str, Any], argument: str
) -> None:
    settings: dict[str, Any] = {"app_name": "x", **overrides}
    with pytest.raises(dbos.InvalidOptionError) as info:
        dbos.Config(**settings)
    assert info.value.argument == argument


def test_an_unknown_url_parameter_is_named_and_libpq_parameters_are_accepted() -> None:
    with pytest.raises(dbos.InvalidOptionError, match="'foo'"):
        dbos.Config(app_name="x", database_url="postgresql://h/db?sslmode=disable&foo=bar")
    url = (
        "postgresql://u:p@h1:5432,h2:5433/db?sslmode=disable&connect_timeout=3"
        "&application_name=shop&options=-c%20statement_timeout%3D5000&ssl=true"
        "&target_session_attrs=any"
    )
    assert dbos.Config(app_name="x", database_url=url).database_url == url


def test_sub_second_and_huge_connect_timeouts_become_whole_bounded_seconds() -> None:
    assert [libpq_connect_timeout(s) for s in (0.001, 0.5, 1.0, 1.2, 10.0)] == [
        "1",
        "1",
        "1",
        "2",
        "10",
    ]
    config = dbos.Config(app_name="x", connect_timeout=timedelta.max)
    assert config.connect_timeout == LONGEST_WAIT


def test_the_thread_cap_must_be_a_positive_int() -> None:
    for bad in (0, -1, True, 2.5, "8"):
        with pytest.raises(dbos.InvalidOptionError) as info:
            dbos.Config(app_name="a", max_workflow_threads=bad)  # type: ignore[arg-type]
        assert info.value.argument == "max_workflow_threads"


def test_the_heartbeat_timeout_is_checked() -> None:
    for bad in (timedelta(0), timedelta(milliseconds=10), 5):
        with pytest.raises(dbos.InvalidOptionError) as info:
            dbos.Config(app_name="a", executor_heartbeat_timeout=bad)  # type: ignore[arg-type]
        assert info.value.argument == "executor_heartbeat_timeout"


def test_rate_limit_validation() -> None:
    with pytest.raises(dbos.InvalidOptionError, match=r"limiter\.limit"):
        dbos.RateLimit(0, timedelta(seconds=1))
    with pytest.raises(dbos.InvalidOptionError, match=r"limiter\.period"):
        dbos.RateLimit(1, timedelta(0))


def test_polling_interval_must_be_positive() -> None:
    with pytest.raises(dbos.InvalidOptionError, match="scheduler_polling_interval"):
        dbos.Config(app_name="a", scheduler_polling_interval=timedelta(0))
