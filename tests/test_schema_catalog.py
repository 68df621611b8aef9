"""The baseline DDL produces the same system database as dbos 3.4.0's own migrations.

DBOS tools read our system database directly, so "compatible" means an identical catalog:
each test builds one database with the reference package (`dbos==3.4.0`, a dev-only
dependency) and one with our baseline, dumps both and compares them. A missing or
different reference package fails the tests instead of skipping them.

Postgres is the suite's server (see `conftest.py`); the tests create and drop scratch
databases of their own there.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import LiteralString
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from dbos_typed._sysdb._schema_postgres import SCHEMA_VERSION, baseline_statements
from dbos_typed._sysdb._schema_sqlite import SQLITE_BASELINE

REFERENCE_VERSION = "3.4.0"
SCHEMA = "dbos"
ODD_SCHEMA = 'my "odd" schema'


# --- the reference -------------------------------------------------------------------


def reference_migrate(url: str, schema: str = SCHEMA) -> None:
    """Build a system database with the reference package's own migrations."""
    try:
        installed = importlib.metadata.version("dbos")
        from dbos import DBOS
    except ImportError as exc:
        pytest.fail(f"the reference package dbos=={REFERENCE_VERSION} is required: {exc}")
    if installed != REFERENCE_VERSION:
        pytest.fail(f"the reference must be dbos=={REFERENCE_VERSION}, found {installed}")
    DBOS.migrate(url, schema=schema)


def compare(expected: list[str], actual: list[str], what: str) -> None:
    """Fail with a unified diff (reference → ours) unless the two dumps are equal."""
    if expected != actual:
        diff = difflib.unified_diff(
            expected, actual, f"{what}: dbos {REFERENCE_VERSION}", f"{what}: ours", lineterm=""
        )
        pytest.fail("\n".join(diff), pytrace=False)


def render(section: str, row: tuple[object, ...]) -> str:
    return " | ".join([section, *(str(value) for value in row)])


# --- Postgres --------------------------------------------------------------------------


@dataclass(frozen=True)
class Databases:
    reference: str
    ours: str


def database_url(server_url: str, name: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path="/" + name))


def apply_baseline(url: str, schema: str) -> None:
    """Run the baseline the way the runtime does: every statement in one transaction."""
    with psycopg.connect(url) as conn, conn.transaction():
        for statement in baseline_statements(schema):
            conn.execute(statement)


@pytest.fixture(scope="module")
def databases(postgres_url: str) -> Iterator[Databases]:
    """One scratch database migrated by dbos, one built from our baseline."""
    server_url = postgres_url
    suffix = uuid.uuid4().hex[:12]
    names = (f"dbos_typed_ref_{suffix}", f"dbos_typed_ours_{suffix}")
    with psycopg.connect(server_url, autocommit=True) as admin:
        for name in names:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            found = Databases(*(database_url(server_url, name) for name in names))
            reference_migrate(found.reference)
            apply_baseline(found.ours, SCHEMA)
            yield found
        finally:
            for name in names:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


# Each query returns one section of the catalog of the schema %(schema)s, ordered so that
# equal catalogs dump to equal lists. Names are ordered with the "C" collation so the
# order does not depend on the databases' locale.
CATALOG_QUERIES: dict[str, LiteralString] = {
    "relation": """
        SELECT c.relname, c.relkind, c.relpersistence,
               coalesce(array_to_string(c.reloptions, ','), '')
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(schema)s AND c.relkind NOT IN ('i', 'I')
        ORDER BY c.relname COLLATE "C"
    """,
    # Position is counted over live columns, so a dropped column would show as a shift.
    "column": """
        SELECT c.relname,
               row_number() OVER (PARTITION BY c.relname ORDER BY a.attnum),
               a.attname,
               format_type(a.atttypid, a.atttypmod),
               CASE WHEN a.attnotnull THEN 'NOT NULL' ELSE 'NULL' END,
               coalesce('DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), 'no default'),
               coalesce(co.collname, ''),
               a.attidentity,
               a.attgenerated
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_collation co ON co.oid = a.attcollation
        WHERE n.nspname = %(schema)s
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND a.attnum > 0
          AND NOT a.attisdropped
        ORDER BY c.relname COLLATE "C", a.attnum
    """,
    "information_schema.column": """
        SELECT table_name, column_name, data_type, udt_name, character_maximum_length,
               numeric_precision, numeric_scale, is_nullable, column_default
        FROM information_schema.columns
        WHERE table_schema = %(schema)s
        ORDER BY table_name COLLATE "C", ordinal_position
    """,
    "constraint": """
        SELECT c.relname, con.conname, con.contype, pg_get_constraintdef(con.oid),
               con.condeferrable, con.condeferred, con.convalidated
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = con.connamespace
        WHERE n.nspname = %(schema)s
        ORDER BY c.relname COLLATE "C", con.conname COLLATE "C"
    """,
    "index": """
        SELECT t.relname, i.relname, am.amname, ix.indisunique, ix.indisprimary,
               ix.indimmediate, ix.indisvalid, ix.indnkeyatts, pg_get_indexdef(ix.indexrelid)
        FROM pg_index ix
        JOIN pg_class i ON i.oid = ix.indexrelid
        JOIN pg_class t ON t.oid = ix.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_am am ON am.oid = i.relam
        WHERE n.nspname = %(schema)s
        ORDER BY t.relname COLLATE "C", i.relname COLLATE "C"
    """,
    # Internal triggers implement foreign keys and carry generated names; the
    # constraints above already cover them.
    "trigger": """
        SELECT c.relname, t.tgname, t.tgenabled, pg_get_triggerdef(t.oid)
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(schema)s AND NOT t.tgisinternal
        ORDER BY c.relname COLLATE "C", t.tgname COLLATE "C"
    """,
    # Bodies are our own, so they are not compared here; behaviour is, further down.
    "function": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid),
               pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
               l.lanname, p.prokind, p.provolatile, p.proparallel, p.proisstrict,
               p.prosecdef, p.proleakproof, p.procost, p.prorows,
               coalesce(array_to_string(p.proconfig, '; '), '')
        FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        JOIN pg_language l ON l.oid = p.prolang
        WHERE n.nspname = %(schema)s
        ORDER BY p.proname COLLATE "C", 2
    """,
    "extension": 'SELECT extname FROM pg_extension ORDER BY extname COLLATE "C"',
}


def postgres_catalog(url: str, schema: str) -> list[str]:
    """Dump the catalog of one system schema, with the schema name replaced by <schema>."""
    with psycopg.connect(url, autocommit=True) as conn:
        quoted = conn.execute("SELECT quote_ident(%s)", [schema]).fetchone()
        assert quoted is not None
        lines: list[str] = []
        for section, query in CATALOG_QUERIES.items():
            for row in conn.execute(query, {"schema": schema}):
                lines.append(render(section, row))
        versions = sql.SQL("SELECT version FROM {}.dbos_migrations ORDER BY version").format(
            sql.Identifier(schema)
        )
        for row in conn.execute(versions):
            lines.append(render("dbos_migrations", row))
    # Definitions qualify names with the schema as quote_ident() spells it.
    return [line.replace(f"{quoted[0]}.", "<schema>.") for line in lines]


def test_postgres_catalog_matches_dbos(databases: Databases) -> None:
    reference = postgres_catalog(databases.reference, SCHEMA)
    ours = postgres_catalog(databases.ours, SCHEMA)
    assert any(line.startswith("function | enqueue_workflow") for line in reference)
    assert f"dbos_migrations | {SCHEMA_VERSION}" in ours
    compare(reference, ours, "postgres catalog")


def test_postgres_baseline_quotes_an_odd_schema_name(databases: Databases) -> None:
    # Twice: a second run over a finished baseline must change nothing.
    apply_baseline(databases.ours, ODD_SCHEMA)
    apply_baseline(databases.ours, ODD_SCHEMA)
    compare(
        postgres_catalog(databases.reference, SCHEMA),
        postgres_catalog(databases.ours, ODD_SCHEMA),
        "postgres catalog under an odd schema name",
    )
    # The function bodies must reach the odd schema's tables, not some other schema's.
    compare(
        run_scenario(databases.reference, SCHEMA),
        run_scenario(databases.ours, ODD_SCHEMA),
        "functions under an odd schema name",
    )


def test_baseline_refuses_a_schema_name_that_would_end_a_function_body() -> None:
    with pytest.raises(ValueError, match="must not contain"):
        baseline_statements("x$body$y")


# --- behaviour of the stored functions and the trigger ---------------------------------

# Calls that clients make through the stored functions, including the error paths whose
# SQLSTATE, message and detail they match on. {s} is the schema; braces are doubled.
SCENARIO: tuple[tuple[str, LiteralString], ...] = (
    (
        "enqueue with every argument",
        """SELECT {s}.enqueue_workflow(
            'wf_name', 'q1', ARRAY['1', '"two"']::json[], '{{"k": [3]}}', 'Cls', 'cfg',
            'wf-1', 'v1', 60000, 99999, NULL, 5, NULL, 'alice', '["admin"]', NULL,
            'app')""",
    ),
    (
        "enqueue the same id again",
        "SELECT {s}.enqueue_workflow('other', 'q2', workflow_id => 'wf-1')",
    ),
    ("enqueue with a generated id", "SELECT {s}.enqueue_workflow('wf_name', 'q1')"),
    (
        "enqueue delayed",
        """SELECT {s}.enqueue_workflow('wf_name', 'q1', workflow_id => 'wf-delayed',
            delay_until_epoch_ms => 42, queue_partition_key => 'p1')""",
    ),
    (
        "enqueue with a deduplication id",
        """SELECT {s}.enqueue_workflow('wf_name', 'q1', workflow_id => 'wf-dedup-1',
            deduplication_id => 'd1')""",
    ),
    (
        "enqueue a duplicate",
        """SELECT {s}.enqueue_workflow('wf_name', 'q1', workflow_id => 'wf-dedup-2',
            deduplication_id => 'd1')""",
    ),
    (
        "enqueue with SQL NULL named args",
        "SELECT {s}.enqueue_workflow('wf_name', 'q1', named_args => NULL, workflow_id => 'wf-n')",
    ),
    ("enqueue without a name", "SELECT {s}.enqueue_workflow('', 'q1')"),
    ("enqueue without a queue", "SELECT {s}.enqueue_workflow('wf_name', NULL)"),
    (
        "enqueue with array named args",
        "SELECT {s}.enqueue_workflow('w', 'q1', named_args => '[1]')",
    ),
    ("enqueue with an empty id", "SELECT {s}.enqueue_workflow('w', 'q1', workflow_id => '')"),
    (
        "enqueue with a negative delay",
        "SELECT {s}.enqueue_workflow('w', 'q1', delay_until_epoch_ms => -1)",
    ),
    (
        "enqueue with an overlong class name",
        "SELECT {s}.enqueue_workflow('w', 'q1', class_name => repeat('c', 256))",
    ),
    ("send", """SELECT {s}.send_message('wf-1', '{{"hello": "world"}}', 'greeting', 'msg-1')"""),
    ("send the same message id again", "SELECT {s}.send_message('wf-1', '2', 'other', 'msg-1')"),
    ("send without a topic", """SELECT {s}.send_message('wf-1', '"x"')"""),
    ("send to a missing workflow", "SELECT {s}.send_message('nope', '1')"),
)

# What the scenario leaves behind, read with SELECT * so that column order counts too.
SCENARIO_TABLES: tuple[LiteralString, ...] = ("workflow_status", "workflow_input", "notifications")

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def mask(value: object) -> object:
    """Hide what differs between any two runs: generated uuids and current timestamps."""
    if isinstance(value, str):
        return _UUID.sub("<uuid>", value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 1_700_000_000_000:
        return "<now ms>"
    return value


def run_scenario(url: str, schema: str) -> list[str]:
    """Run SCENARIO against one schema; describe each outcome, the rows and the NOTIFYs."""
    name = sql.Identifier(schema)
    outcomes: list[str] = []
    with (
        psycopg.connect(url, autocommit=True) as conn,
        psycopg.connect(url, autocommit=True) as listener,
    ):
        # Earlier runs on the same schema must not change this run's outcomes.
        tables = sql.SQL(", ").join(
            sql.SQL("{}.{}").format(name, sql.Identifier(t)) for t in SCENARIO_TABLES
        )
        conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(tables))
        listener.execute("LISTEN dbos_notifications_channel")
        for label, statement in SCENARIO:
            try:
                rows = conn.execute(sql.SQL(statement).format(s=name)).fetchall()
            except psycopg.Error as exc:
                diag = exc.diag
                outcome = f"{diag.sqlstate} {diag.message_primary!r} {diag.message_detail!r}"
            else:
                outcome = f"ok {[tuple(mask(value) for value in row) for row in rows]}"
            outcomes.append(f"{label}: {mask(outcome)}")
        for table in SCENARIO_TABLES:
            query = sql.SQL("SELECT * FROM {}.{}").format(name, sql.Identifier(table))
            rows = conn.execute(query).fetchall()
            outcomes.extend(sorted(f"{table}: {tuple(mask(v) for v in row)}" for row in rows))
        # Two messages are stored, so two wake-ups are due; any more would show up too.
        payloads = [n.payload for n in listener.notifies(timeout=1.0, stop_after=3)]
    assert payloads, "the notifications trigger sent nothing"
    outcomes.extend(f"notify: {payload}" for payload in sorted(payloads))
    return outcomes


def test_postgres_functions_behave_like_dbos(databases: Databases) -> None:
    reference = run_scenario(databases.reference, SCHEMA)
    assert any("DBOS queue duplicated" in line for line in reference)
    compare(reference, run_scenario(databases.ours, SCHEMA), "function behaviour")


# --- SQLite ----------------------------------------------------------------------------


def normalise_sqlite_sql(text: str | None) -> str:
    """Normalise stored DDL text so that only layout differences disappear.

    SQLite stores the CREATE text as written, with columns added later spliced in by
    ALTER TABLE; identifier quotes, line breaks and the spacing around punctuation
    therefore differ between equal schemas and are ironed out.
    """
    if text is None:
        return "<none>"
    text = re.sub(r'"(\w+)"', r"\1", text)
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r" ?([(),]) ?", r"\1", text)


def sqlite_catalog(path: Path) -> list[str]:
    """Dump sqlite_master and the pragmas that describe each table and index."""
    with closing(sqlite3.connect(path)) as conn:
        lines = [
            render("sqlite_master", (kind, name, table, normalise_sqlite_sql(text)))
            for kind, name, table, text in conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
            )
        ]
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        for table in tables:
            for row in conn.execute("SELECT * FROM pragma_table_info(?)", [table]):
                lines.append(render(f"table_info {table}", row))
            for row in conn.execute("SELECT * FROM pragma_foreign_key_list(?)", [table]):
                lines.append(render(f"foreign_key_list {table}", row))
            # index_list's first column numbers indexes by creation order, which is
            # history rather than schema, so it is left out.
            indexes = sorted(
                row[1:] for row in conn.execute("SELECT * FROM pragma_index_list(?)", [table])
            )
            for index in indexes:
                lines.append(render(f"index_list {table}", index))
                for row in conn.execute("SELECT * FROM pragma_index_info(?)", [index[0]]):
                    lines.append(render(f"index_info {index[0]}", row))
                for row in conn.execute("SELECT * FROM pragma_index_xinfo(?)", [index[0]]):
                    lines.append(render(f"index_xinfo {index[0]}", row))
        for row in conn.execute("SELECT version FROM dbos_migrations ORDER BY version"):
            lines.append(render("dbos_migrations", row))
    return lines


def apply_sqlite_baseline(path: Path) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        for statement in SQLITE_BASELINE:
            conn.execute(statement)
        conn.execute("COMMIT")


def test_sqlite_catalog_matches_dbos(tmp_path: Path) -> None:
    reference_path, ours_path = tmp_path / "reference.sqlite", tmp_path / "ours.sqlite"
    reference_migrate(f"sqlite:///{reference_path}")
    # Twice: a second run over a finished baseline must change nothing.
    apply_sqlite_baseline(ours_path)
    apply_sqlite_baseline(ours_path)
    reference = sqlite_catalog(reference_path)
    ours = sqlite_catalog(ours_path)
    assert f"dbos_migrations | {SCHEMA_VERSION}" in ours
    compare(reference, ours, "sqlite catalog")
