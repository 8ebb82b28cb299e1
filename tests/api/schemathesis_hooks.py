"""Schemathesis hooks for tests/api/test_openapi_conformance.py (loaded through SCHEMATHESIS_HOOKS).

`dateFrom` after `dateTo` is the one rule of the API that JSON Schema cannot express (the schema's
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
