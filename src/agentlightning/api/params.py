"""Path and query parameter types shared by the routes, built on :mod:`agentlightning.validation`.

Each type bounds what the database can hold, so an out-of-range id, a page past any sensible end,
or a NUL character is a 422 naming the parameter, never a database error:

- :data:`IdPath`: a numeric row id in the path (1 .. 2**31-1).
- :data:`RefPath`: an id-or-name in the path (at most 255 characters, no NUL).
- :data:`PageQuery` / :data:`PageSizeQuery`: 1-based pages, bounded.
- :data:`OffsetQuery` / :data:`AfterIdQuery`: offsets and cursors within ``INTEGER``.
- :data:`OptText` / :data:`ReqText` / :data:`OptTextList`: text in the query string without NUL
  (give the length bound with ``= Query(..., max_length=...)``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator

from agentlightning.validation import DB_INT_MAX, no_nul

__all__ = [
    "AfterIdQuery",
    "IdPath",
    "MAX_OFFSET",
    "MAX_PAGE",
    "OffsetQuery",
    "PageQuery",
    "PageSizeQuery",
    "OptText",
    "OptTextList",
    "RefPath",
    "ReqText",
]

#: The highest page number accepted (pages further out are answered with a 422, not a slow scan).
MAX_PAGE = 100_000
#: The largest offset accepted.
MAX_OFFSET = 1_000_000

IdPath = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="Numeric id")]
RefPath = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.\-]+$", description="Id or name")]
PageQuery = Annotated[int, Query(ge=1, le=MAX_PAGE, description="1-based page number")]
PageSizeQuery = Annotated[int, Query(ge=1, le=500, description="Items per page")]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")]
AfterIdQuery = Annotated[int, Query(ge=0, le=DB_INT_MAX, description="Return items after this id")]


def _optional_no_nul(value: str | None) -> str | None:
    return value if value is None else no_nul(value)


#: An optional text parameter without NUL; add the length bound with ``= Query(None, max_length=...)``.
OptText = Annotated[str | None, AfterValidator(_optional_no_nul)]
#: A required text parameter without NUL; add ``= Query(..., max_length=...)``.
ReqText = Annotated[str, AfterValidator(no_nul)]
#: A list of text parameters without NUL (``?tags=a&tags=b``).
OptTextList = Annotated[list[str] | None, AfterValidator(lambda v: v if v is None else [no_nul(x) for x in v])]
