"""The workflow IDs and owner tokens a start makes are random (version 4) UUIDs."""

from __future__ import annotations

import uuid

from dbos_typed._workflows.start import random_uuid


def test_random_uuid_is_a_version_4_uuid_in_canonical_text() -> None:
    seen = set()
    for _ in range(2000):
        text = random_uuid()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        seen.add(text)
    assert len(seen) == 2000
