"""One statement straight through libpq: prepared once per connection, text parameters.

A checkpoint's statement is short and its parameters are text, integers, booleans and
NULLs. For those, the driver's general machinery (parsing named parameters, choosing a
dumper per value, its prepared-statement bookkeeping) costs more Python than the
statement's round trip leaves idle. Here each statement is converted to positional
parameters once, prepared once per connection and parameter types, and sent with its
values as text; the rows come back through the driver's own loaders, so they are the
values a cursor would return. A statement with any other kind of value returns None and
the caller uses a cursor instead.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import psycopg
import psycopg.errors
from psycopg import pq
from psycopg.adapt import Transformer
from psycopg.generators import execute

Row = tuple[Any, ...]

_PLACEHOLDER = re.compile(rb"%\((\w+)\)s|%%|%")
_INT2, _INT4, _INT8, _BOOL, _UNKNOWN = 21, 23, 20, 16, 0
_names = itertools.count()


class Positional:
    """A statement with `$n` parameters, and the name behind each."""

    __slots__ = ("names", "text")

    def __init__(self, text: bytes, names: tuple[str, ...]) -> None:
        self.text = text
        self.names = names


def positional(compiled: bytes) -> Positional | None:
    """`compiled` with `%(name)s` placeholders made positional; None if it has others."""
    order: dict[str, int] = {}
    other = False

    def replace(match: re.Match[bytes]) -> bytes:
        nonlocal other
        if match.group(0) == b"%%":
            return b"%"
        if match.group(1) is None:
            other = True
            return match.group(0)
        name = match.group(1).decode()
        number = order.setdefault(name, len(order) + 1)
        return b"$%d" % number

    text = _PLACEHOLDER.sub(replace, compiled)
    return None if other else Positional(text, tuple(order))


class Direct:
    """The statements prepared on one connection, and the loaders of its results."""

    __slots__ = ("_conn", "_prepared", "_transformer")

    def __init__(self, conn: psycopg.Connection[Row]) -> None:
        self._conn = conn
        self._prepared: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self._transformer = Transformer(conn)

    def run(self, statement: Positional, params: Any) -> list[Row] | None:
        """The statement's rows, or None when a value is not one this path sends."""
        values: list[bytes | None] = []
        types: list[int] = []
        for name in statement.names:
            value = params[name]
            kind = type(value)
            if value is None:
                values.append(None)
                types.append(_UNKNOWN)
            elif kind is str:
                values.append(value.encode())
                types.append(_UNKNOWN)  # as the driver sends text: the server infers
            elif kind is bool:
                values.append(b"t" if value else b"f")
                types.append(_BOOL)
            elif kind is int and -(2**63) <= value < 2**63:
                # The smallest type that holds it, as the driver chooses: the server then
                # resolves functions and operators exactly as for a cursor's statement.
                values.append(b"%d" % value)
                types.append(
                    _INT2
                    if -(2**15) <= value < 2**15
                    else _INT4
                    if -(2**31) <= value < 2**31
                    else _INT8
                )
            else:
                return None
        key = (statement.text, tuple(types))
        pgconn = self._conn.pgconn
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = b"dbos_typed_%d" % next(_names)
            pgconn.send_prepare(prepared, statement.text, param_types=types)
            self._check(self._conn.wait(execute(pgconn))[-1])
            self._prepared[key] = prepared
        pgconn.send_query_prepared(prepared, values)
        result = self._check(self._conn.wait(execute(pgconn))[-1])
        if result.status != pq.ExecStatus.TUPLES_OK or not result.ntuples:
            return []
        self._transformer.set_pgresult(result)
        return self._transformer.load_rows(0, result.ntuples, tuple)

    def _check(self, result: pq.abc.PGresult) -> pq.abc.PGresult:
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise psycopg.errors.error_from_result(result, encoding=self._conn.info.encoding)
        return result
