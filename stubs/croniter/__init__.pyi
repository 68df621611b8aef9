# Type stubs for the parts of croniter (7.x) that dbos_typed uses; croniter ships none.
from datetime import datetime
from typing import Any, overload

class CroniterError(ValueError): ...
class CroniterBadCronError(CroniterError): ...
class CroniterBadDateError(CroniterError): ...
class CroniterNotAlphaError(CroniterBadCronError): ...
class CroniterUnsupportedSyntaxError(CroniterBadCronError): ...
class CroniterBadTypeRangeError(TypeError): ...

class croniter:
    expanded: list[list[int | str]]
    def __init__(
        self,
        expr_format: str,
        start_time: datetime | float | None = None,
        ret_type: type = ...,
        day_or: bool = True,
        max_years_between_matches: int | None = None,
        is_prev: bool = False,
        hash_id: bytes | str | None = None,
        implement_cron_bug: bool = False,
        second_at_beginning: bool = False,
        expand_from_start_time: bool = False,
    ) -> None: ...
    @overload
    def get_next(
        self,
        ret_type: type[datetime],
        start_time: datetime | float | None = None,
        update_current: bool = True,
    ) -> datetime: ...
    @overload
    def get_next(
        self,
        ret_type: type[float] | None = None,
        start_time: datetime | float | None = None,
        update_current: bool = True,
    ) -> float: ...
    @overload
    def get_prev(
        self,
        ret_type: type[datetime],
        start_time: datetime | float | None = None,
        update_current: bool = True,
    ) -> datetime: ...
    @overload
    def get_prev(
        self,
        ret_type: type[float] | None = None,
        start_time: datetime | float | None = None,
        update_current: bool = True,
    ) -> float: ...
    @classmethod
    def is_valid(
        cls,
        expression: str,
        hash_id: bytes | str | None = None,
        encoding: str = "UTF-8",
        second_at_beginning: bool = False,
        strict: bool = False,
        strict_year: Any = None,
    ) -> bool: ...

__all__ = [
    "CroniterBadCronError",
    "CroniterBadDateError",
    "CroniterBadTypeRangeError",
    "CroniterError",
    "CroniterNotAlphaError",
    "CroniterUnsupportedSyntaxError",
    "croniter",
]
