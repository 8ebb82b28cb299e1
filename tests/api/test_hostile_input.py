"""Hostile input gets a 4xx that says what is wrong, never a 500 or a sync (issue 12, points 6, 7 and 9)."""

from __future__ import annotations

import pytest

from tests.api.conftest import bearer

NOT_JSON_BODIES = {
    "full NaN": b'{"full": NaN}',
    "dateFrom Infinity": b'{"dateFrom": Infinity}',
    "a list with NaN": b"[NaN]",
    "types [NaN]": b'{"types": [NaN]}',
    "-Infinity": b"-Infinity",
}


@pytest.mark.parametrize("name", list(NOT_JSON_BODIES))
async def test_nan_and_infinity_in_a_body_are_422_not_500(http, mongo, new_vendor, name):
    vendor = new_vendor("nan")
    response = await http.post("/api/ledger/sync-data", content=NOT_JSON_BODIES[name],
                               headers={**bearer(vendor), "Content-Type": "application/json"})
    assert response.status_code == 422, (name, response.status_code, response.text)
    [error] = response.json()["detail"]
    assert error["type"] == "json_invalid" and "are not JSON numbers" in error["msg"], error
    assert mongo.ledger_sync_runs.count_documents({"vendorId": vendor}) == 0  # nothing was started


@pytest.mark.parametrize("body, reason", [(b'{"full": 1e999}', "out of range"), (b"[" * 100_000 + b"]" * 100_000,
                                                                                 "nested too deeply")],
                         ids=["1e999", "deep"])
async def test_numbers_out_of_range_and_deep_nesting_are_422(http, new_vendor, body, reason):
    """Python's json makes 1e999 Infinity and gives up on deep nesting with RecursionError (a 400)."""
    response = await http.post("/api/ledger/sync-data", content=body,
                               headers={**bearer(new_vendor("deep")), "Content-Type": "application/json"})
    assert response.status_code == 422, response.text[:500]
    assert reason in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
async def test_a_body_that_is_not_utf8_is_422(http, mongo, new_vendor, content_type):
    """FastAPI answers an undecodable JSON body with an undocumented 400, and a non-JSON one could not be
    written back in the 422 (its bytes are not text)."""
    vendor = new_vendor("utf")
    response = await http.post("/api/ledger/sync-data", content=b'{"full": "\xff\xfe"}',
                               headers={**bearer(vendor), "Content-Type": content_type})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "body"
    assert mongo.ledger_sync_runs.count_documents({"vendorId": vendor}) == 0


@pytest.mark.parametrize("body, field", [
    ({"full": 0}, "full"),
    ({"full": 1}, "full"),
    ({"full": "true"}, "full"),
    ({"types": [""]}, "types"),
    ({"types": ["sales_invoices", 7]}, "types"),
    ({"dateFrom": 0}, "dateFrom"),
    ({"dateTo": "2026-01-01T00:00:00"}, "dateTo"),
])
async def test_values_that_are_not_what_the_schema_says_are_refused(http, mongo, new_vendor, body, field):
    """No guessing: 0 is not false, a timestamp is not a date, "" is not a step."""
    vendor = new_vendor("strict")
    response = await http.post("/api/ledger/sync-data", json=body, headers=bearer(vendor))
    assert response.status_code == 422, (body, response.text)
    assert any(field in entry["loc"] for entry in response.json()["detail"]), response.json()
    assert mongo.ledger_sync_runs.count_documents({"vendorId": vendor}) == 0


async def test_openapi_declares_what_the_server_checks(http):
    spec = (await http.get("/openapi.json")).json()
    request = spec["components"]["schemas"]["SyncDataRequest"]["properties"]
    types = next(option for option in request["types"]["anyOf"] if option.get("type") == "array")
    assert types["items"]["enum"] == ["sales_invoices", "purchase_invoices", "expenses"] and types["minItems"] == 1
    assert request["full"]["type"] == "boolean"
    operation = spec["paths"]["/api/ledger/sync-data"]["post"]
    assert {"202", "401", "403", "409", "422", "503"} <= set(operation["responses"])
    assert operation["security"] and spec["components"]["securitySchemes"]
    source_type = spec["paths"]["/api/ledger/entries"]["get"]["parameters"]
    assert any("enum" in str(parameter["schema"]) for parameter in source_type if parameter["name"] == "sourceType")


async def test_a_vendor_or_sync_id_with_a_trailing_newline_is_refused(http, api, new_vendor):
    dev = await http.get("/api/dev/token", params={"vendor": "a\n"})
    assert dev.status_code == 422 and dev.json()["detail"][0]["loc"] == ["query", "vendor"], dev.text
    assert (await http.get("/api/dev/token", params={"vendor": "a"})).status_code == 200
    vendor = new_vendor("nl")
    status = await http.get(f"/api/ledger/sync-status/sync_{vendor}_1%0A", headers=bearer(vendor))
    assert status.status_code == 422 and status.json()["detail"][0]["loc"] == ["path", "syncId"], status.text
    assert (await http.get(f"/api/ledger/sync-status/sync_{vendor}_1", headers=bearer(vendor))).status_code == 404


async def test_unknown_paths_and_methods_answer_in_the_error_shape(http, new_vendor):
    missing = await http.get("/api/ledger/nothing-here", headers=bearer(new_vendor()))
    assert missing.status_code == 404 and missing.json()["detail"]["code"] == "not_found"
    wrong = await http.delete("/api/ledger/sync-data", headers=bearer(new_vendor()))
    assert wrong.status_code == 405 and wrong.json()["detail"]["code"] == "method_not_allowed"
    assert "POST" in wrong.headers["allow"]
