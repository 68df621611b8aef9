"""Durable queues, from declaring one to running what it holds.

- `queues`: `register_queue` and which queues a process serves.
- `enqueue`: queue option checks and the insert, for contexts and clients.
- `runner`: the loop that claims queued workflows and runs them.
- `management`: retrieving, updating and deleting queues; delaying workflows.
- `debouncer`: one run per burst of calls with the same key.
- `heartbeat`: taking over the workflows of a process that died and stays down.
"""

from __future__ import annotations
