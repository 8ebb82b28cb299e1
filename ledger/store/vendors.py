"""What the ledger keeps per vendor (`ledger_vendor_state`) and reads of the app's `vendors`."""

from __future__ import annotations

from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError


class VendorStore:
    def __init__(self, state: Collection, vendors: Collection):
        self.state = state
        self.vendors = vendors

    def base_currency(self, vendor_id: str, default: str) -> str:
        """`baseCurrency` of the vendor's document in the app (matched on `vendorId` or `_id`)."""
        vendor = self.vendors.find_one({"$or": [{"vendorId": vendor_id}, {"_id": vendor_id}]}, {"baseCurrency": 1})
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

    def note_id_types(self, vendor_id: str, source_type: str, kinds: set[str]) -> None:
        """Remember new id types before posting entries with them (rare: once per new type)."""
        self.state.update_one({"_id": vendor_id},
                              {"$addToSet": {f"idTypes.{source_type}": {"$each": sorted(kinds)}}}, upsert=True)
