"""Registering and starting workflows, and what their bodies run.

- `start`: `register_workflow` and `run_workflow` (direct starts, children, queues).
- `step`: `run_as_step`, with retries.
- `transaction`: data sources and `run_as_transaction`.
- `patch`: `patch` and `deprecate_patch`.
"""

from __future__ import annotations
