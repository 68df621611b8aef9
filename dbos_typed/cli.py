"""`dbos-typed`: inspect and steer workflows in a system database from the shell.

```
dbos-typed [--db-url URL] [--schema NAME] [--json] COMMAND
  workflow list [--status S ...] [--name N] [--queue Q] [--limit N] ...
  workflow get ID | steps ID | cancel ID [--children] | resume ID
  workflow fork ID [--step N] [--new-id ID] [--app-version V] [--queue Q] [--partition-key K]
  workflow delete ID ... [--children]
  workflow stats --group-by status,name [--bucket 1h] [--status S ...] [--name N] ...
  workflow step-stats --group-by name,status [--bucket 15m] [--workflow ID ...]
  queue list [--queue Q]
  versions list [--app NAME] | set-latest NAME [--app NAME]
  queues list [--app NAME ...] | get NAME | delete NAME
  rename --to NAME [--from NAME] [--adopt-unclaimed] [--batch-size N]
  dashboard [--host 127.0.0.1] [--port 8090] [--allow-actions] [--require-token]
  migrate | reset --yes
```

The database comes from `--db-url`, else `DBOS_SYSTEM_DATABASE_URL`. Output is a table, or
JSON with `--json`. Errors are one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from pydantic_core import to_jsonable_python

from dbos_typed._app.dashboard.server import DEFAULT_PORT, DashboardServer
from dbos_typed._app.lifecycle import connect, new_context
from dbos_typed._core.config import Config, parse_database_url
from dbos_typed._core.context import DBOSContext
from dbos_typed._core.status import WorkflowStatus
from dbos_typed._management.aggregates import (
    StepAggregate,
    WorkflowAggregate,
    get_step_aggregates,
    get_workflow_aggregates,
)
from dbos_typed._management.listing import get_workflow_steps, list_workflows
from dbos_typed._management.rename import DEFAULT_RENAME_BATCH_SIZE, rename_application
from dbos_typed._management.steering import (
    cancel_workflow,
    delete_workflows,
    fork_workflow,
    resume_workflow,
)
from dbos_typed._management.versions import (
    VersionInfo,
    list_application_versions,
    set_latest_application_version,
)
from dbos_typed._queues.management import delete_queue, list_queues, retrieve_queue
from dbos_typed._queues.queues import WorkflowQueue
from dbos_typed._sysdb._rows import INTERNAL_QUEUE, StatusName
from dbos_typed.errors import ApplicationVersionNotFoundError, DBOSError

URL_VARIABLE = "DBOS_SYSTEM_DATABASE_URL"
_APP = "dbos-typed-cli"


class UsageError(Exception):
    """A command line that cannot be carried out as given."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dbos-typed", description=__doc__.split("\n")[0])
    parser.add_argument("--db-url", help=f"system database URL (default: ${URL_VARIABLE})")
    parser.add_argument("--schema", default="dbos", help="Postgres schema (default: dbos)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    commands = parser.add_subparsers(dest="command", required=True)

    workflow = commands.add_parser("workflow", help="list and steer workflows")
    actions = workflow.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list workflows")
    listing.add_argument("--status", action="append", help="repeatable")
    listing.add_argument("--name", action="append", help="workflow name; repeatable")
    listing.add_argument("--queue", action="append", help="queue name; repeatable")
    listing.add_argument("--app-version", action="append", help="repeatable")
    listing.add_argument("--user", action="append", help="authenticated user; repeatable")
    listing.add_argument("--prefix", help="workflow ID prefix")
    listing.add_argument("--limit", type=int, default=10)
    listing.add_argument("--offset", type=int)
    listing.add_argument("--sort-desc", action="store_true", help="newest first")
    for name, help_text in (
        ("get", "show one workflow"),
        ("steps", "list the recorded steps of one workflow"),
        ("resume", "resume a cancelled, dead-lettered or stuck workflow"),
    ):
        actions.add_parser(name, help=help_text).add_argument("workflow_id")
    cancel = actions.add_parser("cancel", help="cancel a workflow that has not finished")
    cancel.add_argument("workflow_id")
    cancel.add_argument("--children", action="store_true", help="also cancel descendants")
    fork = actions.add_parser("fork", help="re-run a workflow from a step")
    fork.add_argument("workflow_id")
    fork.add_argument("--step", type=int, default=0, help="first step to run again (0-based)")
    fork.add_argument("--new-id", help="ID of the copy")
    fork.add_argument("--app-version", help="application version to run it on")
    fork.add_argument("--queue", help="queue to put the copy on (default: the internal one)")
    fork.add_argument("--partition-key", help="partition of that queue, for a partitioned one")
    delete = actions.add_parser("delete", help="delete workflows")
    delete.add_argument("workflow_ids", nargs="+")
    delete.add_argument("--children", action="store_true", help="also delete descendants")
    stats = actions.add_parser("stats", help="count workflows per group and time bucket")
    stats.add_argument(
        "--group-by",
        default="",
        help="comma-separated columns: status, name, queue_name, executor_id, "
        "application_version, application_name",
    )
    stats.add_argument("--bucket", help="also group by creation time, e.g. 15m, 1h, 1d")
    stats.add_argument("--status", action="append", help="repeatable")
    stats.add_argument("--name", action="append", help="workflow name; repeatable")
    stats.add_argument("--queue", action="append", help="queue name; repeatable")
    stats.add_argument("--app-version", action="append", help="repeatable")
    step_stats = actions.add_parser("step-stats", help="count recorded steps per group")
    step_stats.add_argument("--group-by", default="", help="comma-separated: name, status")
    step_stats.add_argument("--bucket", help="also group by completion time, e.g. 15m, 1h")
    step_stats.add_argument("--workflow", action="append", help="workflow ID; repeatable")

    queue = commands.add_parser("queue", help="queued workflows")
    queue_actions = queue.add_subparsers(dest="action", required=True)
    queue_list = queue_actions.add_parser(
        "list", help="list queued workflows, of every application and the internal queue"
    )
    queue_list.add_argument("--queue", action="append", help="queue name; repeatable")
    queue_list.add_argument("--limit", type=int, default=50)

    versions = commands.add_parser("versions", help="application versions")
    version_actions = versions.add_subparsers(dest="action", required=True)
    version_list = version_actions.add_parser("list", help="list versions, the latest first")
    version_list.add_argument("--app", help="only this application's (default: all)")
    set_latest = version_actions.add_parser("set-latest", help="make a version the latest")
    set_latest.add_argument("name")
    set_latest.add_argument("--app", help="its application (default: the one that recorded it)")

    queues = commands.add_parser("queues", help="declared queues and their settings")
    queues_actions = queues.add_subparsers(dest="action", required=True)
    queues_list = queues_actions.add_parser("list", help="list declared queues")
    queues_list.add_argument(
        "--app", action="append", help="owning application; repeatable (default: all)"
    )
    queues_actions.add_parser("get", help="one queue's settings").add_argument("name")
    queues_delete = queues_actions.add_parser(
        "delete", help="delete a queue (its enqueued workflows stay)"
    )
    queues_delete.add_argument("name")

    rename = commands.add_parser(
        "rename", help="give an application the rows another name (or none) holds"
    )
    rename.add_argument("--to", required=True, help="the application that ends up owning them")
    rename.add_argument("--from", dest="old_name", help="the name to take the rows from")
    rename.add_argument(
        "--adopt-unclaimed", action="store_true", help="also take rows no application owns"
    )
    rename.add_argument("--batch-size", type=int, default=DEFAULT_RENAME_BATCH_SIZE)

    dashboard = commands.add_parser("dashboard", help="serve the web dashboard")
    dashboard.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free one")
    dashboard.add_argument(
        "--allow-actions",
        action="store_true",
        help="offer cancel, resume and fork; each needs the token printed at start",
    )
    dashboard.add_argument(
        "--require-token",
        action="store_true",
        help="require the token on every request (needed to listen beyond loopback)",
    )

    commands.add_parser("migrate", help="create or check the system database schema")
    reset = commands.add_parser("reset", help="delete every table of the system database")
    reset.add_argument("--yes", action="store_true", help="confirm")
    return parser


def _config(args: argparse.Namespace) -> Config:
    url = args.db_url or os.environ.get(URL_VARIABLE)
    if not url:
        raise UsageError(f"no database: pass --db-url or set {URL_VARIABLE}")
    # Version calls act for one application; the others read every application's rows.
    app = (args.app if args.command == "versions" else None) or _APP
    return Config(app_name=app, database_url=url, database_schema=args.schema)


def _cut(text: str, width: int) -> str:
    """`text` in at most `width` characters, ending in an ellipsis where it was cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _queue_label(queue_name: str | None) -> str:
    if queue_name == INTERNAL_QUEUE:
        return f"{INTERNAL_QUEUE} (internal)"
    return queue_name or ""


def _status_row(status: WorkflowStatus) -> dict[str, Any]:
    return {
        "id": status.workflow_id,
        "status": status.status.value,
        "name": status.name,
        "created": status.created_at.isoformat(timespec="seconds"),
        "queue": _queue_label(status.queue_name),
        "executor": status.executor_id or "",
        "version": _cut(status.application_version or "", 13),
    }


def _json_cell(value: Any, width: int) -> str:
    return _cut(json.dumps(to_jsonable_python(value), ensure_ascii=False), width)


_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_DURATION_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}


def _duration(text: str | None) -> timedelta | None:
    if text is None:
        return None
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"bad duration {text!r}: expected e.g. 500ms, 30s, 15m, 1h30m or 1d")
    return sum((int(n) * _DURATION_UNITS[u] for n, u in parts), timedelta())


def _columns(text: str) -> list[Any]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _seconds(value: timedelta | None) -> str:
    return "" if value is None else f"{value.total_seconds():.3f}s"


def _aggregate_row(row: WorkflowAggregate | StepAggregate, bucketed: bool) -> dict[str, Any]:
    cells: dict[str, Any] = {}
    if bucketed:
        start = row.bucket_start
        cells["bucket"] = "" if start is None else start.isoformat(timespec="seconds")
    cells.update({column: value or "" for column, value in row.group.items()})
    cells["count"] = row.count
    if isinstance(row, WorkflowAggregate):
        cells["first_created"] = row.first_created_at.isoformat(timespec="seconds")
        cells["max_queue_wait"] = _seconds(row.max_queue_wait)
        cells["max_latency"] = _seconds(row.max_latency)
    else:
        cells["max_duration"] = _seconds(row.max_duration)
    return cells


def _print_table(rows: Sequence[dict[str, Any]], out: TextIO) -> None:
    if not rows:
        print("(none)", file=out)
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip(), file=out)
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip(), file=out)


def _emit(
    args: argparse.Namespace, value: Any, rows: Sequence[dict[str, Any]], out: TextIO
) -> None:
    if args.json:
        print(json.dumps(to_jsonable_python(value), indent=2, ensure_ascii=False), file=out)
    else:
        _print_table(rows, out)


def _workflow(args: argparse.Namespace, ctx: DBOSContext, out: TextIO) -> None:
    action: str = args.action
    if action == "list":
        found = list_workflows(
            ctx,
            status=args.status,
            name=args.name,
            queue_name=args.queue,
            application_version=args.app_version,
            user=args.user,
            workflow_id_prefix=args.prefix,
            limit=args.limit,
            offset=args.offset,
            sort_desc=args.sort_desc,
            all_applications=True,
        )
        _emit(args, found, [_status_row(s) for s in found], out)
    elif action == "get":
        status = _existing(ctx, args.workflow_id)
        row = _status_row(status)
        row["output"] = _json_cell(status.output, 60)
        row["error"] = (
            "" if status.error is None else f"{status.error.name}: {status.error.message}"
        )
        _emit(args, status, [row], out)
    elif action == "steps":
        steps = get_workflow_steps(ctx, args.workflow_id)
        rows = [
            {
                "step": s.step_id,
                "name": s.name,
                "output": _json_cell(s.output, 50) if s.error is None else "",
                "error": "" if s.error is None else _cut(f"{s.error.name}: {s.error.message}", 50),
                "child": s.child_workflow_id or "",
            }
            for s in steps
        ]
        _emit(args, steps, rows, out)
    elif action == "cancel":
        before = _existing(ctx, args.workflow_id).status
        cancel_workflow(ctx, args.workflow_id, cancel_children=args.children)
        if before in _FINISHED:
            _unchanged(args, out, before, "a finished workflow cannot be cancelled")
        else:
            _done(args, out, {"cancelled": args.workflow_id})
    elif action == "resume":
        before = _existing(ctx, args.workflow_id).status
        handle = resume_workflow(ctx, args.workflow_id)
        if before in (StatusName.SUCCESS, StatusName.ERROR):
            _unchanged(
                args, out, before, "only an unfinished workflow resumes; fork it to run it again"
            )
        else:
            _done(args, out, {"resumed": handle.workflow_id})
    elif action == "fork":
        handle = fork_workflow(
            ctx,
            args.workflow_id,
            args.step,
            new_workflow_id=args.new_id,
            application_version=args.app_version,
            queue_name=args.queue,
            queue_partition_key=args.partition_key,
        )
        _done(args, out, {"forked": args.workflow_id, "workflow_id": handle.workflow_id})
    elif action == "delete":
        delete_workflows(ctx, args.workflow_ids, delete_children=args.children)
        _done(args, out, {"deleted": args.workflow_ids})
    elif action == "stats":
        bucket = _duration(args.bucket)
        groups = get_workflow_aggregates(
            ctx,
            group_by=_columns(args.group_by),
            bucket=bucket,
            status=args.status,
            name=args.name,
            queue_name=args.queue,
            application_version=args.app_version,
            all_applications=True,
        )
        _emit(args, groups, [_aggregate_row(g, bucket is not None) for g in groups], out)
    elif action == "step-stats":
        bucket = _duration(args.bucket)
        step_groups = get_step_aggregates(
            ctx,
            group_by=_columns(args.group_by),
            bucket=bucket,
            workflow_ids=args.workflow,
            all_applications=True,
        )
        _emit(args, step_groups, [_aggregate_row(g, bucket is not None) for g in step_groups], out)


def _done(args: argparse.Namespace, out: TextIO, result: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(result), file=out)
    else:
        print(
            " ".join(f"{k} {v if isinstance(v, str) else ' '.join(v)}" for k, v in result.items()),
            file=out,
        )


def _reset(args: argparse.Namespace, config: Config, out: TextIO) -> None:
    if not args.yes:
        raise UsageError("reset deletes every workflow; pass --yes to confirm")
    target = parse_database_url(config.database_url or "")
    if target.backend == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(target.location + suffix).unlink(missing_ok=True)
    else:
        import psycopg
        from psycopg import sql

        with psycopg.connect(target.location, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(config.database_schema)
                )
            )
    _done(
        args,
        out,
        {"reset": config.database_schema if target.backend == "postgres" else target.location},
    )


def main(
    argv: Sequence[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        config = _config(args)
        if args.command == "reset":
            _reset(args, config, out)
            return 0
        if args.command == "migrate":
            new_context(config).shutdown()
            _done(args, out, {"migrated": config.database_schema})
            return 0
        ctx = connect(config, migrate=False)
        try:
            commands: dict[str, Callable[[argparse.Namespace, DBOSContext, TextIO], None]] = {
                "workflow": _workflow,
                "queue": _queue,
                "queues": _queues,
                "versions": _versions,
                "rename": _rename,
                "dashboard": _dashboard,
            }
            commands[args.command](args, ctx, out)
        finally:
            ctx.shutdown()
    except (DBOSError, UsageError) as exc:
        print(f"dbos-typed: error: {exc}", file=err)
        return 1
    return 0


def _queue(args: argparse.Namespace, ctx: DBOSContext, out: TextIO) -> None:
    found = list_workflows(
        ctx, queue_name=args.queue, queues_only=True, limit=args.limit, all_applications=True
    )
    never_run = {name for name in {s.name for s in found} if not _ever_ran(ctx, name)}
    notes = [_NEVER_RUN if s.name in never_run else "" for s in found]
    rows = [{**_status_row(s), "note": note} for s, note in zip(found, notes, strict=True)]
    value = [
        {**to_jsonable_python(s), "note": note or None}
        for s, note in zip(found, notes, strict=True)
    ]
    _emit(args, value, rows, out)


# Said of a queued workflow whose name no executor has ever run: maybe none registers it.
_NEVER_RUN = "no executor has run this name"


def _ever_ran(ctx: DBOSContext, name: str) -> bool:
    """Whether any workflow of this name ever left the queue (was started by an executor)."""
    started = [s for s in StatusName if s not in (StatusName.ENQUEUED, StatusName.DELAYED)]
    return bool(
        list_workflows(
            ctx,
            name=name,
            status=started,
            limit=1,
            load_input=False,
            load_output=False,
            all_applications=True,
        )
    )


# Statuses a cancel leaves as they are.
_FINISHED = frozenset({StatusName.SUCCESS, StatusName.ERROR, StatusName.CANCELLED})


def _existing(ctx: DBOSContext, workflow_id: str) -> WorkflowStatus:
    found = list_workflows(ctx, workflow_ids=[workflow_id], all_applications=True)
    if not found:
        raise UsageError(f"workflow {workflow_id!r} does not exist")
    return found[0]


def _unchanged(args: argparse.Namespace, out: TextIO, status: StatusName, why: str) -> None:
    """Report a request that changed nothing, and why; it is not an error."""
    if args.json:
        report = {"unchanged": args.workflow_id, "status": status.value, "reason": why}
        print(json.dumps(report), file=out)
    else:
        print(f"workflow {args.workflow_id} is {status.value}: nothing changed ({why})", file=out)


def _version_row(version: VersionInfo) -> dict[str, Any]:
    return {
        "name": version.name,
        "latest_since": version.timestamp.isoformat(timespec="milliseconds"),
        "created": version.created_at.isoformat(timespec="seconds"),
        "application": version.application_name or "",
    }


def _versions(args: argparse.Namespace, ctx: DBOSContext, out: TextIO) -> None:
    if args.action == "list":
        found = list_application_versions(ctx, all_applications=args.app is None)
        _emit(args, found, [_version_row(v) for v in found], out)
        return
    owner = args.app
    if owner is None:
        # The version's own application decides what "latest" means for it.
        known = {v.name: v for v in list_application_versions(ctx, all_applications=True)}
        if args.name not in known:
            raise ApplicationVersionNotFoundError(args.name)
        owner = known[args.name].application_name
    if owner is None or owner == ctx.app_name:
        set_latest_application_version(ctx, args.name)
    else:
        acting = connect(dataclasses.replace(_config(args), app_name=owner), migrate=False)
        try:
            set_latest_application_version(acting, args.name)
        finally:
            acting.shutdown()
    _done(args, out, {"latest": args.name})


def _queues(args: argparse.Namespace, ctx: DBOSContext, out: TextIO) -> None:
    action: str = args.action
    if action == "list":
        if args.app:
            found = list_queues(ctx, application_names=args.app)
        else:
            found = list_queues(ctx, all_applications=True)
        _emit(args, found, [_queue_row(q) for q in found], out)
    elif action == "get":
        queue = retrieve_queue(ctx, args.name)
        _emit(args, queue, [_queue_row(queue)], out)
    elif action == "delete":
        delete_queue(ctx, args.name)
        _done(args, out, {"deleted": args.name})


def _rename(args: argparse.Namespace, ctx: DBOSContext, out: TextIO) -> None:
    moved = rename_application(
        ctx,
        args.old_name,
        args.to,
        adopt_unclaimed=args.adopt_unclaimed,
        batch_size=args.batch_size,
    )
    _emit(args, moved, [dataclasses.asdict(moved)], out)


def _dashboard(args: argparse.Namespace, ctx: DBOSContext, out: TextIO) -> None:
    if not 0 <= args.port <= 65535:
        raise UsageError(f"bad --port {args.port}: expected 0 to 65535")
    server = DashboardServer(
        ctx,
        args.host,
        args.port,
        allow_actions=args.allow_actions,
        require_token=args.require_token,
    )
    print(f"dashboard: {server.url}/dashboard/", file=out)
    if args.allow_actions:
        print("actions: on (cancel, resume, fork; each request needs the token)", file=out)
    else:
        print("actions: off (read-only; --allow-actions turns them on)", file=out)
    if server.token is not None:
        print(f"token: {server.token}", file=out)
        print(f"open: {server.page_url}", file=out)
    out.flush()
    if threading.current_thread() is threading.main_thread():
        # SIGTERM stops it as Ctrl-C does: the port is released and the context closed.
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _queue_row(queue: WorkflowQueue) -> dict[str, Any]:
    limiter = queue.limiter
    return {
        "name": queue.name,
        "workers": "" if queue.worker_concurrency is None else queue.worker_concurrency,
        "global": "" if queue.concurrency is None else queue.concurrency,
        "rate": "" if limiter is None else f"{limiter.limit}/{limiter.period.total_seconds():g}s",
        "priority": "yes" if queue.priority_enabled else "",
        "partitioned": "yes" if queue.partitioned else "",
        "polling": f"{queue.polling_interval.total_seconds():g}s",
        "app": queue.application_name or "",
    }


# The status of a process killed by SIGPIPE, as a shell reports it (128 + 13).
_BROKEN_PIPE_STATUS = 141


def main_entry() -> None:
    """Console-script entry point."""
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do. stdout now
        # points at /dev/null so that the interpreter's last flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = _BROKEN_PIPE_STATUS
    sys.exit(status)
