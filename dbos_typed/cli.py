"""`dbos-typed`: inspect and steer workflows in a system database from the shell.

```
dbos-typed [--db-url URL] [--schema NAME] [--json] COMMAND
  workflow list [--status S ...] [--name N] [--queue Q] [--limit N] ...
  workflow get ID | steps ID | cancel ID [--children] | resume ID
  workflow fork ID [--step N] [--new-id ID] [--app-version V]
  workflow delete ID ... [--children]
  queue list [--queue Q]
  queues list [--app NAME ...] | get NAME | delete NAME
  migrate | reset --yes
```

The database comes from `--db-url`, else `DBOS_SYSTEM_DATABASE_URL`. Output is a table, or
JSON with `--json`. Errors are one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from pydantic_core import to_jsonable_python

from dbos_typed._config import Config, parse_database_url
from dbos_typed._context import DBOSContext
from dbos_typed._lifecycle import connect, new_context
from dbos_typed._listing import get_workflow_steps, list_queued_workflows, list_workflows
from dbos_typed._management import cancel_workflow, delete_workflows, fork_workflow, resume_workflow
from dbos_typed._queue import WorkflowQueue
from dbos_typed._queue_management import delete_queue, list_queues, retrieve_queue
from dbos_typed._status import WorkflowStatus
from dbos_typed.errors import DBOSError

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
    for name in ("get", "steps", "resume"):
        actions.add_parser(name, help=f"{name} one workflow").add_argument("workflow_id")
    cancel = actions.add_parser("cancel", help="cancel a workflow")
    cancel.add_argument("workflow_id")
    cancel.add_argument("--children", action="store_true", help="also cancel descendants")
    fork = actions.add_parser("fork", help="re-run a workflow from a step")
    fork.add_argument("workflow_id")
    fork.add_argument("--step", type=int, default=0, help="first step to run again (0-based)")
    fork.add_argument("--new-id", help="ID of the copy")
    fork.add_argument("--app-version", help="application version to run it on")
    delete = actions.add_parser("delete", help="delete workflows")
    delete.add_argument("workflow_ids", nargs="+")
    delete.add_argument("--children", action="store_true", help="also delete descendants")

    queue = commands.add_parser("queue", help="queued workflows")
    queue_actions = queue.add_subparsers(dest="action", required=True)
    queue_list = queue_actions.add_parser("list", help="list queued workflows")
    queue_list.add_argument("--queue", action="append", help="queue name; repeatable")
    queue_list.add_argument("--limit", type=int, default=50)

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

    commands.add_parser("migrate", help="create or check the system database schema")
    reset = commands.add_parser("reset", help="delete every table of the system database")
    reset.add_argument("--yes", action="store_true", help="confirm")
    return parser


def _config(args: argparse.Namespace) -> Config:
    url = args.db_url or os.environ.get(URL_VARIABLE)
    if not url:
        raise UsageError(f"no database: pass --db-url or set {URL_VARIABLE}")
    return Config(app_name=_APP, database_url=url, database_schema=args.schema)


def _status_row(status: WorkflowStatus) -> dict[str, Any]:
    return {
        "id": status.workflow_id,
        "status": status.status.value,
        "name": status.name,
        "created": status.created_at.isoformat(timespec="seconds"),
        "queue": status.queue_name or "",
        "executor": status.executor_id or "",
        "version": (status.application_version or "")[:12],
    }


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
        found = list_workflows(ctx, workflow_ids=[args.workflow_id], all_applications=True)
        if not found:
            raise UsageError(f"workflow {args.workflow_id!r} does not exist")
        status = found[0]
        row = _status_row(status)
        row["output"] = json.dumps(to_jsonable_python(status.output))[:60]
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
                "output": json.dumps(to_jsonable_python(s.output))[:50] if s.error is None else "",
                "error": "" if s.error is None else f"{s.error.name}: {s.error.message}"[:50],
                "child": s.child_workflow_id or "",
            }
            for s in steps
        ]
        _emit(args, steps, rows, out)
    elif action == "cancel":
        cancel_workflow(ctx, args.workflow_id, cancel_children=args.children)
        _done(args, out, {"cancelled": args.workflow_id})
    elif action == "resume":
        handle = resume_workflow(ctx, args.workflow_id)
        _done(args, out, {"resumed": handle.workflow_id})
    elif action == "fork":
        handle = fork_workflow(
            ctx,
            args.workflow_id,
            args.step,
            new_workflow_id=args.new_id,
            application_version=args.app_version,
        )
        _done(args, out, {"forked": args.workflow_id, "workflow_id": handle.workflow_id})
    elif action == "delete":
        delete_workflows(ctx, args.workflow_ids, delete_children=args.children)
        _done(args, out, {"deleted": args.workflow_ids})


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
            run: Callable[[argparse.Namespace, DBOSContext, TextIO], None] = {
                "workflow": _workflow,
                "queue": _queue,
                "queues": _queues,
            }[args.command]
            run(args, ctx, out)
        finally:
            ctx.shutdown()
    except (DBOSError, UsageError) as exc:
        print(f"dbos-typed: error: {exc}", file=err)
        return 1
    return 0


def _queue(args: argparse.Namespace, ctx: DBOSContext, out: TextIO) -> None:
    found = list_queued_workflows(ctx, queue_name=args.queue, limit=args.limit)
    _emit(args, found, [_status_row(s) for s in found], out)


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


def main_entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
