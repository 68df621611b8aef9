"""Managing workflows from outside their bodies.

- `steering`: cancel, resume, fork, delete, attributes and retention.
- `listing`: `list_workflows`, `list_queued_workflows`, `get_workflow_steps`.
- `aggregates`: counts, waits and latencies per group and time bucket.
- `versions`: application versions and the latest one.
- `rename`: moving an application's rows to a new name.
"""

from __future__ import annotations
