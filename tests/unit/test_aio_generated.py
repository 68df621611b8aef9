"""The typed signatures of `dbos_typed.aio` are current copies of the blocking ones."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scripts import generate_aio


def test_every_generated_region_matches_its_blocking_source() -> None:
    assert generate_aio.stale_targets() == []  # else: python -m scripts.generate_aio


def test_a_region_that_differs_from_its_source_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (first, *_) = generate_aio.REGIONS
    monkeypatch.setattr(generate_aio, "REGIONS", (replace(first, returns=generate_aio.unchanged),))
    assert generate_aio.stale_targets() == [first.target]


def test_generated_returns_are_awaitable_forms() -> None:
    assert generate_aio.awaited("WorkflowHandle[OutT]") == (
        "Coroutine[None, None, AsyncWorkflowHandle[OutT]]"
    )
    assert generate_aio.awaited("T_co") == "Coroutine[None, None, T_co]"
    assert generate_aio.async_iterated("Iterator[T_co]") == "AsyncIterator[T_co]"
