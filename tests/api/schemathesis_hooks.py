"""Schemathesis hooks for tests/api/test_openapi_conformance.py (loaded through SCHEMATHESIS_HOOKS).

`dateFrom` after `dateTo` is a rule of the API that JSON Schema cannot express (the schema's
description says so, and the API answers 422 naming both dates). A generated body with both dates in that
order is therefore put in order: every other value is sent as generated.
"""

from __future__ import annotations

import re
from typing import Any

import schemathesis

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    if context.operation is None or context.operation.path != "/api/ledger/sync-data" or not isinstance(body, dict):
        return body
    start, end = body.get("dateFrom"), body.get("dateTo")
    both_dates = (isinstance(start, str) and isinstance(end, str) and _ISO_DATE.fullmatch(start)
                  and _ISO_DATE.fullmatch(end))
    return {**body, "dateFrom": end, "dateTo": start} if both_dates and start > end else body


@schemathesis.hook
def map_query(context: Any, query: Any) -> Any:
    """The reading routes (SPEC §8) have two such rules: `from` after `to` is refused (so the dates are
    put in order), and a ledger `cursor` is only one the server handed out (so none is generated)."""
    if context.operation is None or not isinstance(query, dict):
        return query
    query = {key: value for key, value in query.items() if key != "cursor"}
    start, end = query.get("from"), query.get("to")
    if isinstance(start, str) and isinstance(end, str) and _ISO_DATE.fullmatch(start) and _ISO_DATE.fullmatch(end) \
            and start > end:
        query.update({"from": end, "to": start})
    return query
