"""Error answers that always match the OpenAPI document: 422 for any body that is not JSON, never a 500.

- `StrictJsonRoute` parses request bodies as RFC 8259 JSON: `NaN`, `Infinity` and `-Infinity` (which
  Python's `json` accepts), numbers out of a float's range (`1e999`, which it turns into Infinity), nesting
  too deep for the parser and bytes that are not UTF-8 are a 422 `json_invalid`, like any other malformed
  body, instead of FastAPI's undocumented 400 or a float that cannot be written back in the error answer.
- `validation_error` is FastAPI's 422 answer made safe to serialise whatever the input was (non-finite
  floats, bytes, exceptions in `ctx`).
- `http_error` gives every `HTTPException` with a plain-text detail (FastAPI's own 404/405) the
  `{"detail": {"code", "message"}}` shape of `ErrorResponse`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

NOT_JSON_CONSTANT = "NaN, Infinity and -Infinity are not JSON numbers (RFC 8259): send a number, a string or null"
CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON: {NOT_JSON_CONSTANT}", name, 0)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise json.JSONDecodeError(f"the number {text[:40]} is out of range", text, 0)
    return value


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8 only, finite numbers only. Raises `json.JSONDecodeError` (FastAPI's 422
    `json_invalid`) for anything else."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise json.JSONDecodeError(f"the body is not UTF-8 ({error.reason} at byte {error.start})", "",
                                   0) from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise json.JSONDecodeError("the body is nested too deeply", "", 0) from None


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """An APIRoute whose handler reads JSON bodies with `parse_json`."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler


def json_safe(value: Any) -> Any:
    """`value` with everything JSON cannot carry turned into text (NaN → "nan", bytes, exceptions)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, BaseException):
        return str(value)
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(item) for item in value]
    return value


async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = json_safe(error.errors())
    for entry in errors:
        if entry.get("type") == "json_invalid" and (entry.get("ctx") or {}).get("error"):
            entry["msg"] = f"The body is not valid JSON: {entry['ctx']['error']}"
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})


async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    detail: Any = error.detail
    if not isinstance(detail, dict | list):
        detail = {"code": CODES.get(error.status_code, f"http_{error.status_code}"), "message": str(detail)}
    return JSONResponse(status_code=error.status_code, content={"detail": detail},
                        headers=getattr(error, "headers", None))
