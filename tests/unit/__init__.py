"""The unit tier: tests that need no database, no process and no network.

`python -m pytest tests/unit` runs them in seconds: layering, the public surface,
configuration checks, codecs, cron arithmetic, the worker pool.
"""
