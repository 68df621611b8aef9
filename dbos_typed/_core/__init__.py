"""Foundations every feature builds on; imports nothing above `errors` and `_sysdb`.

- `version`: the package version.
- `validate`: the argument checks every public call shares.
- `config`: `Config`, validated before anything connects.
- `serialization`: the `portable_json` format and the codecs pydantic builds.
- `identity`: who a workflow runs for, and its attributes.
- `registry`: registered workflows, their signatures and codecs.
- `runtime`: the state a context owns (store, registry, threads, timers).
- `context`: `DBOSContext` and `WorkflowContext`.
- `durable`: the checkpoint protocol every durable call inside a workflow follows.
- `status`: `WorkflowStatus`, a typed view of one workflow's row.
- `handle`: `WorkflowHandle[R]` and `retrieve_workflow[R]`.
- `execution`: running a workflow in this process, on a worker thread.
"""

from __future__ import annotations
