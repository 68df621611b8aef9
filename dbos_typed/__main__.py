"""`python -m dbos_typed`: the command line."""

from __future__ import annotations

import sys

from dbos_typed.cli import main

sys.exit(main())
