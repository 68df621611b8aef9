"""Write the typed signatures of `dbos_typed.aio` from their blocking originals.

An awaitable call has the signature of its blocking twin with another return type
(`R` becomes `Coroutine[None, None, R]`, a handle its awaitable handle). Python's types
cannot say that once for every call, so the `@overload` families and the Protocols of
typed calls (`recv[T]`, `enqueue[R]`, ...) are copied here from the blocking modules,
their return types rewritten, between `# <generated: NAME>` and `# </generated: NAME>`
markers. Run `python -m scripts.generate_aio` after changing a blocking signature;
`--check` (run by the unit tests) fails when a region is stale.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dbos_typed"


def awaited(annotation: str) -> str:
    """What awaiting the call gives: the blocking result, a handle made awaitable."""
    handle = re.sub(r"\bWorkflowHandle\[", "AsyncWorkflowHandle[", annotation)
    return f"Coroutine[None, None, {handle}]"


def async_iterated(annotation: str) -> str:
    """An iterator read with `async for`."""
    return re.sub(r"\bIterator\[", "AsyncIterator[", annotation)


@dataclass(frozen=True)
class Region:
    """One generated region: what it copies, from where, and how returns change."""

    name: str  # the marker's name, unique in its target file
    target: str  # the aio module, relative to the package
    source: str  # the blocking module, relative to the package
    symbol: str  # a function (its overloads), a Protocol class, or `Class.method` (overloads)
    returns: Callable[[str], str] = awaited


def unchanged(annotation: str) -> str:
    """The same type: a method whose twin returns a Protocol of the same name."""
    return annotation


REGIONS = (
    Region("run_workflow overloads", "aio/_workflow.py", "_workflows/start.py", "run_workflow"),
    Region("Enqueue", "aio/_workflow.py", "_app/client.py", "Enqueue"),
    Region("run_as_step overloads", "aio/_step.py", "_workflows/step.py", "run_as_step"),
    Region("Receive", "aio/_messaging.py", "_messaging/messages.py", "Receive"),
    Region("GetEvent", "aio/_events.py", "_messaging/events.py", "GetEvent"),
    Region("ReadStream", "aio/_streams.py", "_messaging/streams.py", "ReadStream", async_iterated),
    # The typed forms `name[T]` of each typed call: the same Protocol names in both.
    Region(
        "recv[T]", "aio/_messaging.py", "_messaging/messages.py", "_Receiver.__getitem__", unchanged
    ),
    Region(
        "get_event[T]",
        "aio/_events.py",
        "_messaging/events.py",
        "_EventReader.__getitem__",
        unchanged,
    ),
    Region(
        "read_stream[T]",
        "aio/_streams.py",
        "_messaging/streams.py",
        "_StreamReader.__getitem__",
        unchanged,
    ),
    Region("enqueue[R]", "aio/_workflow.py", "_app/client.py", "_Enqueuer.__getitem__", unchanged),
    Region("Debounce", "aio/_workflow.py", "_app/client.py", "Debounce"),
    Region("debounce[R]", "aio/_workflow.py", "_app/client.py", "_Debounce.__getitem__", unchanged),
    Region("TriggerSchedule", "aio/_schedules.py", "_schedules/schedules.py", "TriggerSchedule"),
    Region(
        "trigger_schedule[R]",
        "aio/_schedules.py",
        "_schedules/schedules.py",
        "_Trigger.__getitem__",
        unchanged,
    ),
    Region(
        "new_debouncer overloads",
        "aio/_debounce.py",
        "_workflows/debounce.py",
        "new_debouncer",
        lambda annotation: re.sub(r"\bDebouncer\[", "AsyncDebouncer[", annotation),
    ),
)


def _rewritten(lines: list[str], node: ast.FunctionDef, returns: Callable[[str], str]) -> None:
    """Replace the return annotation of `node` in `lines` (the source, 0-based lines)."""
    ret = node.returns
    assert ret is not None and ret.end_lineno is not None and ret.end_col_offset is not None
    assert ret.lineno == ret.end_lineno, "a return annotation on one line"
    row = lines[ret.lineno - 1]
    text = row[ret.col_offset : ret.end_col_offset]
    lines[ret.lineno - 1] = row[: ret.col_offset] + returns(text) + row[ret.end_col_offset :]


def _segment(lines: list[str], node: ast.stmt) -> str:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    assert node.end_lineno is not None
    return "\n".join(lines[first - 1 : node.end_lineno])


def _is_overload(node: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "overload" for d in node.decorator_list)


def region_text(region: Region) -> str:
    """The region's code, as copied and rewritten from its source."""
    text = (PACKAGE / region.source).read_text()
    module = ast.parse(text)
    lines = text.splitlines()
    pieces: list[str] = []
    owner, _, method = region.symbol.rpartition(".")
    body = module.body
    if owner:
        (cls,) = [n for n in body if isinstance(n, ast.ClassDef) and n.name == owner]
        body = cls.body
    for node in body:
        if (
            isinstance(node, ast.FunctionDef)
            and node.name == method
            and (owner or _is_overload(node))
        ):
            _rewritten(lines, node, region.returns)
            pieces.append(_segment(lines, node))
        elif isinstance(node, ast.ClassDef) and node.name == method:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__call__":
                    _rewritten(lines, item, region.returns)
            pieces.append(_segment(lines, node))
    if not pieces:
        raise SystemExit(f"{region.source} has no {region.symbol} to copy")
    return ("\n\n" if owner else "\n\n\n").join(pieces)


def _markers(name: str) -> tuple[str, str]:
    return f"# <generated: {name}>", f"# </generated: {name}>"


def generated_file(target: str) -> str:
    """The target module's text with every region written afresh (formatted)."""
    text = (PACKAGE / target).read_text()
    for region in REGIONS:
        if region.target != target:
            continue
        begin, end = _markers(region.name)
        start, stop = text.find(begin), text.find(end)
        if start < 0 or stop < start:
            raise SystemExit(f"{target} lacks the markers of region {region.name!r}")
        indent = " " * 4 if "." in region.symbol else ""
        note = f"{indent}# Copied from dbos_typed/{region.source} by scripts/generate_aio.py.\n"
        gap = "\n\n" if indent else "\n\n\n"
        code = region_text(region) + gap + indent
        text = text[:start] + begin + "\n" + note + code + text[stop:]
    return _formatted(text, target)


def _formatted(text: str, target: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", target, "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout


def stale_targets() -> list[str]:
    """The aio modules whose generated regions differ from what their sources give."""
    targets = sorted({r.target for r in REGIONS})
    return [t for t in targets if generated_file(t) != (PACKAGE / t).read_text()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a region is stale")
    args = parser.parse_args()
    stale = stale_targets()
    if args.check:
        for target in stale:
            print(f"dbos_typed/{target} is stale: run python -m scripts.generate_aio")
        return 1 if stale else 0
    for target in stale:
        (PACKAGE / target).write_text(generated_file(target))
        print(f"wrote dbos_typed/{target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
