"""Memory: what sleeping, queued and finished workflows cost the process that holds them.

Usage: python -m benchmarks.memory [--url postgresql://...] [--sleeping N] [--queued N]
       [--finished N]

One process, one fresh Postgres database. Resident set size (VmRSS) is read from /proc:

- sleeping: `--sleeping` workflows started at once, each in a durable `sleep` of a minute
  (each holds a worker thread); measured once all of them sleep, then they are cancelled;
- queued: `--queued` workflows enqueued on a queue this process does not serve, so they
  stay ENQUEUED in the database; nothing of them should stay in memory;
- finished: `--finished` one-step workflows run to the end after a warm-up; the RSS and
  the count of live Python objects (after a collection) before and after tell whether
  anything is held per finished workflow.
"""

from __future__ import annotations

import gc
import threading
import time
from datetime import timedelta

import dbos_typed as dbos
from benchmarks._harness import as_url, base_parser, drop_database, fresh_database

_asleep = threading.Semaphore(0)


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _noop() -> None:
    return None


def one_step(ctx: dbos.WorkflowContext, n: int) -> int:
    dbos.run_as_step(ctx, _noop, name="noop")
    return n


def sleeper(ctx: dbos.WorkflowContext, n: int) -> int:
    _asleep.release()
    dbos.sleep(ctx, timedelta(minutes=1))
    return n


def _settled() -> tuple[float, int]:
    gc.collect()
    time.sleep(0.2)
    gc.collect()
    return _rss_mib(), len(gc.get_objects())


def measure(url: str, sleeping: int, queued: int, finished: int) -> None:
    ctx = dbos.new_context(
        dbos.Config(app_name="bench", database_url=url, application_version="memory-v1")
    )
    for workflow in (one_step, sleeper):
        dbos.register_workflow(ctx, workflow)
    dbos.register_queue(ctx, "served")
    parked = dbos.register_queue(ctx, "parked")
    dbos.listen_queues(ctx, ["served"])
    ctx.launch()
    try:
        for n in range(200):
            dbos.run_workflow(ctx, one_step, n).get_result()
        base, _ = _settled()
        print(f"after launch and 200 workflows: {base:.1f} MiB")

        handles = [dbos.run_workflow(ctx, sleeper, n) for n in range(sleeping)]
        for _ in range(sleeping):
            _asleep.acquire()
        time.sleep(0.5)  # every one is past its sleep's checkpoint and waiting
        held = _rss_mib()
        print(
            f"{sleeping} sleeping workflows: {held:.1f} MiB, {held - base:+.1f} MiB, "
            f"{(held - base) * 1024 / sleeping:.1f} KiB each"
        )
        dbos.cancel_workflows(ctx, [h.workflow_id for h in handles])
        for h in handles:
            try:
                h.get_result(timeout=timedelta(seconds=30))
            except dbos.DBOSError:
                pass
        del handles
        after_sleep, _ = _settled()

        for n in range(queued):
            dbos.run_workflow(ctx, one_step, n, queue=parked)
        parked_rss, _ = _settled()
        print(
            f"{queued} queued workflows (not served here): {parked_rss:.1f} MiB, "
            f"{parked_rss - after_sleep:+.1f} MiB against before enqueueing"
        )

        for n in range(2000):  # warm-up: allocator pools, caches, threads
            dbos.run_workflow(ctx, one_step, n).get_result()
        before, objects_before = _settled()
        for n in range(finished):
            dbos.run_workflow(ctx, one_step, n).get_result()
        after, objects_after = _settled()
        print(
            f"{finished} finished workflows: RSS {before:.1f} -> {after:.1f} MiB "
            f"({(after - before) * 1024 * 1024 / finished:.0f} bytes each); live objects "
            f"{objects_before} -> {objects_after} ({objects_after - objects_before:+d})"
        )
    finally:
        ctx.shutdown()


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--sleeping", type=int, default=1000)
    parser.add_argument("--queued", type=int, default=10_000)
    parser.add_argument("--finished", type=int, default=10_000)
    args = parser.parse_args()
    target = fresh_database(args.url)
    try:
        measure(as_url(target), args.sleeping, args.queued, args.finished)
    finally:
        drop_database(args.url, target)


if __name__ == "__main__":
    main()
