"""Cron schedules: expressions, the schedules in the database, the thread that fires them.

- `cron`: parsing cron expressions and computing ticks (time zones, DST).
- `schedules`: the schedule rows and the calls that manage them.
- `scheduler`: the per-context thread that fires due ticks.
"""

from __future__ import annotations
