"""Closing, reopening and verifying the books over REST: refused with the reason, a vendor's own only."""

from __future__ import annotations

from tests.api.conftest import bearer
from tests.factories import expense


async def test_close_reopen_and_list_periods_with_the_reasons_for_refusals(http, mongo, new_vendor):
    vendor, other = new_vendor("books"), new_vendor("other")
    mongo.expenses.insert_many([expense("E1", vendor=vendor, amount="100.00"),
                                expense("E2", vendor=other, amount="7.00")])
    headers = bearer(vendor)

    closed = await http.post("/api/ledger/periods/close", headers=headers, json={"through": "2026-03-31"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["action"] == "close" and closed.json()["through"] == "2026-03-31"
    assert closed.json()["trialBalance"]["vendorId"] == vendor

    for body, words in [({"through": "2026-02-28"}, "closed through 2026-03-31 already"),
                        ({"through": "2999-01-01"}, "after today")]:
        refused = await http.post("/api/ledger/periods/close", headers=headers, json=body)
        assert refused.status_code == 422 and words in refused.json()["detail"]["message"], refused.text
    no_reason = await http.post("/api/ledger/periods/reopen", headers=headers,
                                json={"through": "2026-01-31", "reason": " "})
    assert no_reason.status_code == 422 and "reason" in no_reason.text
    later = await http.post("/api/ledger/periods/reopen", headers=headers, json={"through": "2026-04-30",
                                                                                 "reason": "x"})
    assert later.status_code == 422 and "not before the current close date" in later.text
    missing = await http.post("/api/ledger/periods/reopen", headers=headers, json={"through": "2026-01-31"})
    assert missing.status_code == 422 and "reason" in missing.text
    bad_day = await http.post("/api/ledger/periods/close", headers=headers, json={"through": "2026-02-30"})
    assert bad_day.status_code == 422 and "through" in bad_day.text

    reopened = await http.post("/api/ledger/periods/reopen", headers=headers,
                               json={"through": "2026-01-31", "reason": "a late supplier bill"})
    assert reopened.status_code == 200 and reopened.json()["reason"] == "a late supplier bill"
    listed = (await http.get("/api/ledger/periods", headers=headers)).json()
    assert listed["closedThrough"] == "2026-01-31"
    assert [(p["action"], p["through"]) for p in listed["periods"]] == [("close", "2026-03-31"),
                                                                       ("reopen", "2026-01-31")]
    # Another vendor's books are untouched and its periods its own.
    theirs = (await http.get("/api/ledger/periods", headers=bearer(other))).json()
    assert theirs == {"vendorId": other, "closedThrough": None, "periods": []}

    verified = (await http.get("/api/ledger/verify", headers=headers)).json()
    assert verified["vendorId"] == vendor and verified["ok"] is True and verified["firstBad"] is None
