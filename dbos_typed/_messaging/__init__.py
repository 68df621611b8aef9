"""Messages, events, streams and durable sleep, and the waits behind them.

- `messages`: `send` and `recv[T]`.
- `events`: `set_event` and `get_event[T]`.
- `streams`: `write_stream`, `close_stream` and `read_stream[T]`.
- `sleep`: durable `sleep`, and the recorded deadlines waits use.
- `durable_waits`: the waits a workflow body records (`recv`, `get_event`).
- `database_waits`: waking up when a row appears (notifications or polling).
"""

from __future__ import annotations
