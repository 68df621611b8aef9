"""Testing durable workflows: crashes, restarts, replay checks, a clock, pytest fixtures.

A workflow's promise is what happens when the process dies between two steps. These
tools make that an ordinary test:

```python
import dbos_typed as dbos
from dbos_typed import testing

with testing.crash_at(ctx, "charge", when="after"):  # charged, not yet recorded
    handle = dbos.run_workflow(ctx, checkout, order, workflow_id="order-a1")
    with pytest.raises(testing.SimulatedCrash):
        handle.get_result()
ctx = testing.restart(ctx)  # a new process: recovers order-a1
receipt = dbos.retrieve_workflow[Receipt](ctx, "order-a1").get_result()
testing.check_replay(ctx, "order-a1")  # does today's code replay its history?
```

Installing `dbos_typed` also installs a pytest plugin with the fixtures
`dbos_database_url` and `dbos_context` (see `dbos_typed.testing.pytest_plugin`).
"""

from __future__ import annotations

from dbos_typed._core.clock import VirtualClock
from dbos_typed._core.crash import CrashPoint, SimulatedCrash
from dbos_typed.testing._crash import crash_at
from dbos_typed.testing._replay import check_replay
from dbos_typed.testing._restart import restart

__all__ = [
    "CrashPoint",
    "SimulatedCrash",
    "VirtualClock",
    "check_replay",
    "crash_at",
    "restart",
]

for _cls in (CrashPoint, SimulatedCrash, VirtualClock):
    _cls.__module__ = __name__
del _cls
