"""The errors mypy prints for common mistakes stay short and name the right signature.

The files beside this one pin what mypy accepts and refuses; this test pins what a user
reads when a call is refused, by running mypy on small programs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEADER = """
from __future__ import annotations

import dbos_typed as dbos
from dbos_typed import aio


def greet(ctx: dbos.WorkflowContext, name: str) -> str:
    return name


async def greet_later(ctx: dbos.WorkflowContext, name: str) -> str:
    return name


def tick(ctx: dbos.WorkflowContext) -> int:
    return 1
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the module: the package is analysed once, not per test."""
    return tmp_path_factory.mktemp("mypy-cache")


def _errors(tmp_path: Path, cache: Path, body: str) -> list[str]:
    """The error lines mypy prints for `body` (after HEADER), without file and line."""
    program = tmp_path / "program.py"
    program.write_text(HEADER + body)
    options = ["--strict", "--no-error-summary", "--config-file", "", "--cache-dir", str(cache)]
    done = subprocess.run(
        [sys.executable, "-m", "mypy", *options, str(program)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    lines = done.stdout.splitlines()
    return [line.split(": ", 1)[1] for line in lines if ": error: " in line or ": note: " in line]


BLOCKING = (
    'error: Argument 2 to "run_workflow" has incompatible type '
    '"Callable[[WorkflowContext, str], str]"; '
    'expected "Callable[[WorkflowContext, int], Never]"  [arg-type]'
)


@pytest.mark.parametrize(
    "call",
    [
        "handle = dbos.run_workflow(ctx, greet, 123)",
        "dbos.run_workflow(ctx, greet, 123, workflow_id='w')",
        "handle = await aio.run_workflow(ctx, greet, 123)",
    ],
)
def test_a_wrong_input_names_the_blocking_signature(tmp_path: Path, cache: Path, call: str) -> None:
    body = f"\n\nasync def main(ctx: dbos.DBOSContext) -> None:\n    {call}\n"
    # One error, about the argument, with no async overload's coroutine and no request
    # for a variable annotation.
    assert _errors(tmp_path, cache, body) == [BLOCKING]


def test_a_wrong_input_to_an_async_workflow_shows_its_coroutine(
    tmp_path: Path, cache: Path
) -> None:
    body = (
        "\n\ndef main(ctx: dbos.DBOSContext) -> None:\n    dbos.run_workflow(ctx, greet_later, 1)\n"
    )
    assert _errors(tmp_path, cache, body) == [
        'error: Argument 2 to "run_workflow" has incompatible type '
        '"Callable[[WorkflowContext, str], Coroutine[Any, Any, str]]"; '
        'expected "Callable[[WorkflowContext, int], Never]"  [arg-type]'
    ]


def test_an_input_to_a_workflow_without_one_is_refused_plainly(tmp_path: Path, cache: Path) -> None:
    body = "\n\ndef main(ctx: dbos.DBOSContext) -> None:\n    dbos.run_workflow(ctx, tick, 1)\n"
    assert _errors(tmp_path, cache, body) == [
        'error: Argument 2 to "run_workflow" has incompatible type '
        '"Callable[[WorkflowContext], int]"; '
        'expected "Callable[[WorkflowContext, int], Never]"  [arg-type]'
    ]


def test_a_misspelt_option_is_named(tmp_path: Path, cache: Path) -> None:
    body = (
        "\n\ndef main(ctx: dbos.DBOSContext) -> None:\n"
        "    dbos.run_workflow(ctx, greet, 'x', workflow_idd='w')\n"
    )
    errors = _errors(tmp_path, cache, body)
    assert errors[0] == (
        'error: Unexpected keyword argument "workflow_idd" for overloaded function '
        '"run_workflow"; did you mean "workflow_id"?  [call-overload]'
    )


def test_an_untyped_message_is_json_that_strict_code_must_narrow(
    tmp_path: Path, cache: Path
) -> None:
    body = (
        "\n\ndef main(ctx: dbos.WorkflowContext) -> None:\n"
        "    raw = dbos.recv(ctx, 'topic')\n"
        "    reveal_type(raw)\n"
        "    text: str = raw\n"
        "    if isinstance(raw, str):\n"
        "        narrowed: str = raw\n"
    )
    errors = _errors(tmp_path, cache, body)
    # mypy spells the alias out: the JSON scalars, then lists and dicts of JSON, and None
    # (bool is shown inside int).
    revealed = errors[0]
    assert revealed.startswith('note: Revealed type is "int | float | str | list['), revealed
    assert "] | dict[str, " in revealed and revealed.endswith('] | None"'), revealed
    assert len(errors) == 2, errors
    assert errors[1].startswith("error: Incompatible types in assignment")
    assert 'variable has type "str"' in errors[1] and errors[1].endswith("[assignment]")
