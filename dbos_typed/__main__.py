"""`python -m dbos_typed`: the command line."""

from __future__ import annotations

from dbos_typed.cli import main_entry

main_entry()
