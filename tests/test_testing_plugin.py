"""The pytest plugin installed with the package: its fixtures, run in a pytest of their own.

Each case runs an inner test session (pytester) whose only setup is the installed
package, so what is checked is what a project using dbos_typed gets: the entry point
loads the plugin, and the fixtures give each test a database and clean up after it.
"""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from dbos_typed.testing.pytest_plugin import URL_VARIABLE

pytest_plugins = ["pytester"]

INNER_TESTS = """
from __future__ import annotations

import pytest

import dbos_typed as dbos
from dbos_typed import testing

made: list[dbos.DBOSContext] = []
charges: list[int] = []


def charge(n: int) -> int:
    charges.append(n)
    return n


def pay(ctx: dbos.WorkflowContext, n: int) -> int:
    return dbos.run_as_step(ctx, lambda: charge(n), name="charge") * 2


def test_a_context_from_the_factory(dbos_context, dbos_database_url):
    print()  # after the progress output of -s
    print("URL", dbos_database_url)
    ctx = dbos_context(pay)
    made.append(ctx)
    with testing.crash_at(ctx, "charge", when="after"):
        handle = dbos.run_workflow(ctx, pay, 21, workflow_id="pay-21")
        with pytest.raises(testing.SimulatedCrash):
            handle.get_result()
    again = dbos_context.restart(ctx)
    made.append(again)
    assert dbos.retrieve_workflow[int](again, "pay-21").get_result() == 42
    assert charges == [21, 21]


def test_every_context_was_shut_down_and_the_next_database_is_new(dbos_context):
    assert made and all(ctx._runtime.shutting_down.is_set() for ctx in made)
    ctx = dbos_context(launch=False)
    dbos.register_workflow(ctx, pay)
    ctx.launch()
    assert dbos.list_workflows(ctx) == []
"""


def _run_inner_tests(pytester: pytest.Pytester) -> str:
    """Run the inner tests with the plugin; the system-database URL they saw."""
    pytester.makepyfile(test_inner=INNER_TESTS)
    # In a subprocess, so that the plugin loads through its entry point as for a user.
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    match = re.search(r"^URL (\S+)$", result.stdout.str(), re.MULTILINE)
    assert match is not None
    return match.group(1)


def test_the_plugin_gives_each_test_a_sqlite_file_by_default(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(URL_VARIABLE, raising=False)
    url = _run_inner_tests(pytester)
    assert url.startswith("sqlite:///") and url.endswith("dbos-system.sqlite")


def test_the_plugin_gives_each_test_a_postgres_database_and_drops_it(
    postgres_url: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `postgres_url` comes first: the server must start before pytester snapshots modules.
    monkeypatch.setenv(URL_VARIABLE, postgres_url)
    url = _run_inner_tests(pytester)
    # The server's URL may carry a socket directory (`?host=...`) after the name.
    name = str(conninfo_to_dict(url)["dbname"])
    assert name.startswith("dbos_test_")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchall()
    assert left == []  # dropped after the test
