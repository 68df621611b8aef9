"""A DBOS Python (3.4) application, for the interop tests: serves a queue until killed.

Usage: python -m tests.interop_dbos_app <database_url>
"""

from __future__ import annotations

import sys
import threading

from dbos import DBOS, WorkflowSerializationFormat  # the official package


def main() -> None:
    DBOS(config={"name": "pyapp", "system_database_url": sys.argv[1], "log_level": "WARNING"})

    @DBOS.workflow(name="py_double", serialization_type=WorkflowSerializationFormat.PORTABLE)
    def py_double(n: int) -> int:
        return n * 2

    DBOS.launch()
    DBOS.register_queue("pyq", polling_interval_sec=0.05)
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
