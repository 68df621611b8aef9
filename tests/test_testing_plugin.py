"""The pytest plugin installed with the package: its fixtures, run in a pytest of their own.

Each case runs an inner test session (pytester) whose only setup is the installed
package, so what is checked is what a project using dbos_typed gets: the entry point
loads the plugin, and the fixtures give each test a database and clean up after it.
"""

from __future__ import annotations

import re

import psycopg
import pytest

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


@pytest.mark.parametrize("server", ["sqlite", "postgres"])
def test_the_plugin_gives_each_test_a_database_and_cleans_up(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    server: str,
) -> None:
    server_url = ""
    if server == "postgres":
        server_url = request.getfixturevalue("postgres_url")
        monkeypatch.setenv(URL_VARIABLE, server_url)
    else:
        monkeypatch.delenv(URL_VARIABLE, raising=False)
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    match = re.search(r"^URL (\S+)$", result.stdout.str(), re.MULTILINE)
    assert match is not None
    url = match.group(1)
    if server == "sqlite":
        assert url.startswith("sqlite:///") and url.endswith("dbos-system.sqlite")
        return
    name = url.rsplit("/", 1)[1]
    assert name.startswith("dbos_test_")
    with psycopg.connect(server_url, autocommit=True) as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchall()
    assert left == []  # dropped after the test
