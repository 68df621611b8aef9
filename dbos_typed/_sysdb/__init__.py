"""System database access: the only package that speaks SQL."""

from __future__ import annotations
