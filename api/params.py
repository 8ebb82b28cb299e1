"""Query parameters the read routes share, validated the same way everywhere."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import HTTPException, Query

AsOfDay = Annotated[str | None, Query(json_schema_extra={"format": "date"},
                                      description="A day (YYYY-MM-DD, UTC, inclusive); default: everything")]


def day(text: str, name: str = "asOf") -> date:
    """A YYYY-MM-DD day, or a 422 naming the parameter (nothing else passes for a date)."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise HTTPException(422, detail=[{"loc": ["query", name], "type": "date", "input": text,
                                      "msg": f"not a day: {text!r}; use YYYY-MM-DD"}])


FromDay = Annotated[str | None, Query(alias="from", json_schema_extra={"format": "date"},
                                      description="First day (YYYY-MM-DD, UTC, inclusive); default: the beginning")]
ToDay = Annotated[str | None, Query(alias="to", json_schema_extra={"format": "date"},
                                    description="Last day (YYYY-MM-DD, UTC, inclusive); default: everything")]


def optional_day(text: str | None, name: str) -> date | None:
    return None if text is None else day(text, name)
