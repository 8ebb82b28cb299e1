"""What the ledger keeps per vendor (`ledger_vendor_state`) and reads of the app's `vendors`."""

from __future__ import annotations

from datetime import date
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from ledger.chain import Head

BALANCES_LAYOUT = "days-apart"  # how a vendor's balances are built (older: `true`, then "days" inside the months)


class VendorStore:
    def __init__(self, state: Collection, vendors: Collection):
        self.state = state
        self.vendors = vendors

    def ensure_indexes(self) -> None:
        """The chain head's compare-and-set names `_id` and the head: SecantusDB uses an index only
        when it holds every field a query names."""
        self.state.create_index([("_id", ASCENDING), ("chain.seq", ASCENDING), ("chain.hash", ASCENDING)],
                                name="by_head")
        self.vendors.create_index([("vendorId", ASCENDING)], name="ledger_sync_by_vendor_id")  # the app's collection

    def base_currency(self, vendor_id: str, default: str) -> str:
        """`baseCurrency` of the vendor's document in the app (matched on `vendorId` or `_id`)."""
        # Two reads rather than an `$or` (a collection scan on SecantusDB); `_id` first, on its index.
        vendor = self.vendors.find_one({"_id": vendor_id}, {"baseCurrency": 1}) or self.vendors.find_one(
            {"vendorId": vendor_id}, {"baseCurrency": 1})
        currency = (vendor or {}).get("baseCurrency")
        return currency.strip().upper() if isinstance(currency, str) and currency.strip() else default

    def next_run_number(self, vendor_id: str) -> int:
        """A per-vendor counter, bumped by every run that starts or resumes: the database's
        own order of runs, whatever the clocks of the machines that run them."""
        # Concurrent first upserts of one vendor race on `_id`: MongoDB may raise DuplicateKeyError,
        # SecantusDB 0.7 returns None (seen with ten simultaneous POST /sync-data). The counter
        # document exists by then, so trying again increments it.
        for _ in range(5):
            try:
                state = self.state.find_one_and_update({"_id": vendor_id}, {"$inc": {"runs": 1}}, upsert=True,
                                                       return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:
                continue
            if state is not None:
                return int(state["runs"])
        raise RuntimeError(f"could not number a run of vendor {vendor_id}")

    def posted_id_types(self, vendor_id: str, source_type: str) -> set[str]:
        """The BSON types of the source ids the ledger holds for this type (one read by `_id`)."""
        state = self.state.find_one({"_id": vendor_id}, {f"idTypes.{source_type}": 1}) or {}
        return set(state.get("idTypes", {}).get(source_type, []))

    def note_id_types(self, vendor_id: str, source_type: str, kinds: set[str],
                      session: ClientSession | None = None) -> None:
        """Remember new id types with the entries that first have them (rare: once per new type)."""
        self.state.update_one({"_id": vendor_id}, {"$addToSet": {f"idTypes.{source_type}": {"$each": sorted(kinds)}}},
                              upsert=True, session=session)

    # ---- the chain head, closed periods and what has been built, per vendor ------------

    def state_of(self, vendor_id: str) -> dict[str, Any]:
        return self.state.find_one({"_id": vendor_id}) or {}

    def head(self, vendor_id: str) -> Head | None:
        """The head of the vendor's chain; None if it has not been started (a ledger from before)."""
        chain = self.state_of(vendor_id).get("chain")
        if not isinstance(chain, dict):
            return None
        return Head(seq=int(chain["seq"]), hash=str(chain["hash"]), entry_id=chain.get("entryId"))

    def start_chain(self, vendor_id: str, head: Head) -> bool:
        """Record the head a vendor's chain starts from, once; False if another process did first."""
        result = self.state.update_one({"_id": vendor_id, "chain": {"$exists": False}},
                                       {"$set": {"chain": _head_document(head)}}, upsert=False)
        if result.matched_count:
            return True
        try:
            self.state.insert_one({"_id": vendor_id, "chain": _head_document(head)})
            return True
        except DuplicateKeyError:
            return False

    def advance_head(self, vendor_id: str, expected: Head, new: Head, session: ClientSession | None = None) -> bool:
        """Move the head from `expected` to `new`; False if it is not at `expected` (someone else wrote)."""
        result = self.state.update_one({"_id": vendor_id, "chain.seq": expected.seq, "chain.hash": expected.hash},
                                       {"$set": {"chain": _head_document(new)}}, session=session)
        return result.matched_count == 1

    def closed_through(self, vendor_id: str) -> date | None:
        value = self.state_of(vendor_id).get("closedThrough")
        return date.fromisoformat(value) if isinstance(value, str) else None

    def set_closed_through(self, vendor_id: str, through: date, expected: date | None) -> bool:
        """Move the close date from `expected` to `through`; False if it moved meanwhile."""
        current = None if expected is None else expected.isoformat()
        result = self.state.update_one({"_id": vendor_id, "closedThrough": current},
                                       {"$set": {"closedThrough": through.isoformat()}}, upsert=False)
        if result.matched_count:
            return True
        if expected is None:
            try:
                self.state.insert_one({"_id": vendor_id, "closedThrough": through.isoformat()})
                return True
            except DuplicateKeyError:
                return False
        return False

    def balances_built(self, vendor_id: str) -> bool:
        """Whether the vendor's balances by month and by day are built in this version's layout."""
        return self.state_of(vendor_id).get("balancesBuilt") == BALANCES_LAYOUT

    def mark_balances_built(self, vendor_id: str) -> None:
        self.state.update_one({"_id": vendor_id}, {"$set": {"balancesBuilt": BALANCES_LAYOUT}}, upsert=True)

    def next_expense_codes(self, vendor_id: str, count: int, session: ClientSession | None = None) -> list[int]:
        """`count` new numbers for expense accounts (6001, 6002, … in the order first posted, never reused)."""
        state = self.state.find_one_and_update({"_id": vendor_id}, {"$inc": {"expenseAccounts": count}}, upsert=True,
                                               return_document=ReturnDocument.AFTER, session=session)
        last = int((state or {}).get("expenseAccounts", count))
        return list(range(6000 + last - count + 1, 6000 + last + 1))


def _head_document(head: Head) -> dict[str, Any]:
    return {"seq": head.seq, "hash": head.hash, "entryId": head.entry_id}
