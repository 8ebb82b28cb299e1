"""The hash chain as stored: each new entry carries its `seq` and `hash`; entries written
before the chain existed are chained once, in the order written, in `ledger_chain`
(`{_id: "<vendor>|<seq>", vendorId, seq, entryId, hash}`), and the chain goes on from there.
The head (`seq`, `hash`, entry id) is kept with the vendor's state (`ledger.store.vendors`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pymongo import ASCENDING
from pymongo.collection import Collection

from ledger.chain import Head, Link, entry_hash
from ledger.store.bulk import insert_new


class ChainStore:
    def __init__(self, chain: Collection, entries: Collection, batch_size: int):
        self.chain = chain
        self.entries = entries
        self.batch_size = batch_size

    def ensure_indexes(self) -> None:
        self.chain.create_index([("vendorId", ASCENDING), ("seq", ASCENDING)], name="by_vendor_seq", unique=True)

    def chain_unchained(self, vendor_id: str) -> Head:
        """Chain, once, the entries a vendor had before the chain existed, in the order they were
        written (posted, then id); nothing about them changes. The head it ends at."""
        head = Head()
        pending: list[dict[str, Any]] = []
        cursor = self.entries.find({"vendorId": vendor_id, "seq": {"$exists": False}},
                                   sort=[("postedAt", ASCENDING), ("_id", ASCENDING)], batch_size=self.batch_size)
        for entry in cursor:
            seq = head.seq + 1
            head = Head(seq=seq, hash=entry_hash(head.hash, entry, seq), entry_id=entry["_id"])
            pending.append({"_id": f"{vendor_id}|{seq}", "vendorId": vendor_id, "seq": seq, "entryId": entry["_id"],
                            "hash": head.hash})
            if len(pending) == self.batch_size:
                insert_new(self.chain, pending)
                pending = []
        insert_new(self.chain, pending)
        return head

    def legacy_ids(self, vendor_id: str) -> set[str]:
        return {doc["entryId"] for doc in self.chain.find({"vendorId": vendor_id}, {"entryId": 1})}

    def legacy_length(self, vendor_id: str) -> int:
        last = self.chain.find_one({"vendorId": vendor_id}, {"seq": 1}, sort=[("seq", -1)])
        return int(last["seq"]) if last else 0

    def links(self, vendor_id: str, after_seq: int = 0, through_seq: int | None = None) -> Iterator[Link]:
        """Every place in the chain after `after_seq` (through `through_seq`), in order: the
        chained-once entries first, then the entries that carry their place."""
        seq_range: dict[str, int] = {"$gt": after_seq}
        if through_seq is not None:
            # `$lt` the next place, not `$lte`: SecantusDB drops the upper bound itself from an
            # inclusive range on a field that is not the index's last (`by_chain_order`).
            seq_range["$lt"] = through_seq + 1
        batch: list[dict[str, Any]] = []
        for link in self.chain.find({"vendorId": vendor_id, "seq": seq_range}, sort=[("seq", ASCENDING)],
                                    batch_size=self.batch_size):
            batch.append(link)
            if len(batch) == self.batch_size:
                yield from self._joined(batch)
                batch = []
        yield from self._joined(batch)
        for entry in self.entries.find({"vendorId": vendor_id, "seq": seq_range}, sort=[("seq", ASCENDING)],
                                       batch_size=self.batch_size):
            yield Link(seq=int(entry["seq"]), entry_id=entry["_id"], hash=entry.get("hash"), entry=entry)

    def _joined(self, links: list[dict[str, Any]]) -> Iterator[Link]:
        if not links:
            return
        entries = {doc["_id"]: doc for doc in self.entries.find({"_id": {"$in": [link["entryId"] for link in links]}})}
        for link in links:
            yield Link(seq=int(link["seq"]), entry_id=link["entryId"], hash=link["hash"],
                       entry=entries.get(link["entryId"]))
