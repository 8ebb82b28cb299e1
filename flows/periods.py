"""Closing and reopening a vendor's books (SPEC §9), for the API and the CLI alike.

A close or reopen is refused while a sync of the vendor runs (it would post by the old
close date). Each is kept with the trial balance as of its date and the chain head;
every sync's `complete` checks that the trial balance as of each close still in force
has not moved.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flows.verify import prepare_ledger
from ledger.clock import iso, utc_now
from ledger.periods import PeriodRefused, check_close, check_reopen, effective_closes
from ledger.reports import trial_balance_document
from ledger.store import Store
from ledger.verification import trial_balance


class VendorBusy(PeriodRefused):
    """A sync of the vendor is running."""


def close_books(store: Store, vendor_id: str, through: date, today: date | None = None) -> dict[str, Any]:
    current = store.vendors.closed_through(vendor_id)
    check_close(through, current, today or utc_now().date())
    return _record(store, vendor_id, "close", through, current, None)


def reopen_books(store: Store, vendor_id: str, through: date, reason: str) -> dict[str, Any]:
    current = store.vendors.closed_through(vendor_id)
    check_reopen(through, current, reason)
    return _record(store, vendor_id, "reopen", through, current, reason.strip())


def _record(store: Store, vendor_id: str, action: str, through: date, current: date | None,
            reason: str | None) -> dict[str, Any]:
    running = store.runs.running(vendor_id)
    if running is not None:
        raise VendorBusy(f"a sync of this vendor is running ({running.sync_id}); {action} the books once it ends")
    head = prepare_ledger(store, vendor_id)
    figures = trial_balance_document(vendor_id, trial_balance(store.books.as_of(vendor_id, through)))
    if not store.vendors.set_closed_through(vendor_id, through, current):
        raise PeriodRefused("the close date changed meanwhile; look at the periods again and retry")
    return period_view(store.periods.record(vendor_id, action, through, utc_now(), reason, figures, head))


def periods_view(store: Store, vendor_id: str) -> dict[str, Any]:
    events = store.periods.events(vendor_id)
    closed = store.vendors.closed_through(vendor_id)
    return {"vendorId": vendor_id, "closedThrough": closed.isoformat() if closed else None,
            "periods": [period_view(record) for _, record in events]}


def period_view(record: dict[str, Any]) -> dict[str, Any]:
    return {"action": record["action"], "through": record["through"], "at": iso(record["at"]),
            "reason": record.get("reason"), "trialBalance": record["trialBalance"], "chainHead": record["chainHead"]}


def moved_closes(store: Store, vendor_id: str) -> list[str]:
    """Closes still in force whose trial balance is not what was stored (a message for each)."""
    events = store.periods.events(vendor_id)
    stored = {}
    for event, record in events:  # the latest record that set a date holds its figures
        stored[event.through] = record["trialBalance"]
    problems = []
    for through in effective_closes(event for event, _ in events):
        now = trial_balance_document(vendor_id, trial_balance(store.books.as_of(vendor_id, through)))
        if now["balances"] != stored[through]["balances"]:
            changed = sorted(set(now["balances"]) ^ set(stored[through]["balances"]) | {
                key for key in now["balances"] if now["balances"].get(key) != stored[through]["balances"].get(key)})
            problems.append(f"the books closed through {through} changed: {', '.join(changed)} "
                            f"(now {now['balances']}, closed at {stored[through]['balances']})")
    return problems
