"""Group commit: checkpoints written at the same moment share one transaction.

Every checkpoint a workflow writes (its start, each step, its outcome) is a commit, and a
commit costs the server a WAL flush and the client a round trip and the Python around a
statement. When many workflows run at once, their checkpoints arrive together; writing
them as one statement per kind, in one transaction, makes that cost once per batch.

The scheme is leader and followers, with no timer: a caller that finds fewer than
`leaders` batches in flight writes at once (alone, it is the plain one-statement path, so
a single workflow is not slowed at all); one that finds them all busy waits, and when a
batch ends its leader hands the lead to the first waiter, who takes everyone waiting with
it. So batches grow exactly as fast as checkpoints queue up behind the database.

Each caller still returns only after its own row is committed. A batch that fails for any
reason (one bad row, a lost connection, a deadlock) has written nothing, and each of its
callers then writes its own checkpoint alone, on its own thread, with the single path's
own retries and errors: one bad row cannot fail its neighbours.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar, cast

R = TypeVar("R")
Params = Mapping[str, Any]


class BatchKind(Generic[R]):
    """One kind of checkpoint, and how to write one alone.

    `alone(params)` is the single-statement path with its retries. `key(params)` tells
    two writes of the same row apart from two different rows: a batch holds a row once,
    and a second write of it waits for a later batch, so each write's result stays its
    own. How a batch of each kind is written is the store's (`GroupCommit`'s `run`).
    """

    __slots__ = ("alone", "key", "name")

    def __init__(
        self, name: str, *, alone: Callable[[Params], R], key: Callable[[Params], Hashable]
    ) -> None:
        self.name = name
        self.alone = alone
        self.key = key


_NOT_WRITTEN: Any = object()


class _Write:
    """One caller's checkpoint waiting in, or led through, a batch."""

    __slots__ = ("kind", "leads", "params", "result", "wake")

    def __init__(self, kind: BatchKind[Any], params: Params) -> None:
        self.kind = kind
        self.params = params
        self.result: Any = _NOT_WRITTEN
        self.leads = False
        self.wake: Any = None


class GroupCommit:
    """Batches concurrent checkpoints of one store (see the module's docstring).

    `run(batch_by_kind)` writes the given writes atomically, returning their results by
    kind, in order, or raises having written nothing.
    """

    def __init__(
        self,
        run: Callable[[list[tuple[BatchKind[Any], list[Params]]]], list[Sequence[Any]]],
        *,
        leaders: int,
    ) -> None:
        self._run = run
        self._leaders = leaders
        self._lock = threading.Lock()
        self._active = 0
        self._waiting: list[_Write] = []

    def write(self, kind: BatchKind[R], params: Params) -> R:
        """Write one checkpoint, alone or in a batch; return what `kind` writes return."""
        own = _Write(kind, params)
        with self._lock:
            if self._active < self._leaders:
                self._active += 1
                leads = True
            else:
                own.wake = threading.Lock()
                own.wake.acquire()
                self._waiting.append(own)
                leads = False
        if not leads:
            own.wake.acquire()  # released by the leader that wrote it or handed the lead on
            if not own.leads:
                return cast(R, self._outcome(own))
        self._lead(own)
        return cast(R, self._outcome(own))

    @staticmethod
    def _outcome(write: _Write) -> Any:
        if write.result is _NOT_WRITTEN:
            # The batch failed as a whole: write this one alone, with its own retries.
            return write.kind.alone(write.params)
        return write.result

    def _lead(self, own: _Write) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, []
        later: list[_Write] = []
        try:
            if batch:
                batch.insert(0, own)
                batch, later = _one_write_per_row(batch)
            if len(batch) <= 1:
                own.result = own.kind.alone(own.params)
            else:
                self._write_together(batch)
        finally:
            self._hand_on(own, batch, later)

    def _hand_on(self, own: _Write, batch: list[_Write], later: list[_Write]) -> None:
        """Wake the batch's callers, and pass the lead to the first caller still waiting."""
        with self._lock:
            # Repeats of a row go first in the next batch, behind its first write.
            if later:
                self._waiting[:0] = later
            successor = self._waiting.pop(0) if self._waiting else None
            if successor is None:
                self._active -= 1
        for write in batch:
            if write is not own:
                write.wake.release()
        if successor is not None:
            successor.leads = True
            successor.wake.release()

    def _write_together(self, batch: list[_Write]) -> None:
        by_kind: dict[BatchKind[Any], list[_Write]] = {}
        for write in batch:
            by_kind.setdefault(write.kind, []).append(write)
        groups = list(by_kind.items())
        try:
            results = self._run([(kind, [w.params for w in writes]) for kind, writes in groups])
        except Exception:
            return  # nothing was written; each caller writes its own (see `_outcome`)
        for (_, writes), outcome in zip(groups, results, strict=True):
            for write, result in zip(writes, outcome, strict=True):
                write.result = result


def _one_write_per_row(batch: list[_Write]) -> tuple[list[_Write], list[_Write]]:
    """Split `batch` into first writes of each row and the repeats that must wait."""
    seen: set[tuple[str, Hashable]] = set()
    first: list[_Write] = []
    repeats: list[_Write] = []
    for write in batch:
        key = (write.kind.name, write.kind.key(write.params))
        if key in seen:
            repeats.append(write)
        else:
            seen.add(key)
            first.append(write)
    return first, repeats
