"""Checking a vendor's books against their hash chain (SPEC §9): `ledger-sync verify`,
`GET /verify`, and what every sync checks before it writes.

A ledger written before the chain existed is chained once, in the order its entries
were written (nothing about them changes), and its monthly balances are built once from
its entries; from then on both are kept with every batch.
"""

from __future__ import annotations

import logging
from typing import Any

from ledger.chain import ChainReport, Head, Problem, walk
from ledger.store import Store

log = logging.getLogger("ledger_sync.verify")


def prepare_ledger(store: Store, vendor_id: str) -> Head:
    """The head of the vendor's chain, chaining (once) a ledger from before it; monthly balances
    and unique expense-account codes are brought in too, once."""
    head = store.vendors.head(vendor_id)
    if head is None:
        head = store.chain.chain_unchained(vendor_id) if store.entries.count(vendor_id) else Head()
        if not store.vendors.start_chain(vendor_id, head):  # another process chained it meanwhile
            head = store.vendors.head(vendor_id) or head
        elif head.seq:
            log.warning("vendor %s: chained %d entries written before the hash chain, without changing any",
                        vendor_id, head.seq)
    if not store.vendors.balances_built(vendor_id):
        store.balances.replace(vendor_id, *store.entries.daily_movements(vendor_id))
        store.vendors.mark_balances_built(vendor_id)
    legacy = store.accounts.legacy_expense_keys(vendor_id)
    if legacy:
        codes = store.vendors.next_expense_codes(vendor_id, len(legacy))
        store.accounts.renumber(vendor_id, dict(zip(legacy, codes, strict=True)))
    return head


def head_problem(store: Store, vendor_id: str, head: Head) -> str | None:
    """What is wrong at the end of the chain, in two index reads: the head's entry is there with its
    hash, and nothing is placed after it."""
    if head.seq > store.chain.legacy_length(vendor_id):
        entry = store.entries.at_seq(vendor_id, head.seq)
        if entry is None or entry.get("hash") != head.hash:
            return f"the entry at the head of the chain (place {head.seq}) is missing or was changed"
    beyond = store.entries.any_after(vendor_id, head.seq)
    if beyond is not None:
        return f"entry {beyond['_id']!r} is placed after the head of the chain ({beyond['seq']} > {head.seq})"
    return None


def verify_chain(store: Store, vendor_id: str, after: Head | None = None, through: int | None = None) -> ChainReport:
    """Walk the chain after `after` (from its start by default) through `through` (its head)."""
    start = after or Head()
    return walk(store.chain.links(vendor_id, start.seq, through), start)


def link_head(store: Store, vendor_id: str, seq: int) -> Head | None:
    """The chain as it stood at place `seq` (to walk on from there); None if that place is gone."""
    if seq == 0:
        return Head()
    for link in store.chain.links(vendor_id, seq - 1, seq):
        if link.hash is not None:
            return Head(seq=link.seq, hash=link.hash, entry_id=link.entry_id)
    return None


def verify_vendor(store: Store, vendor_id: str) -> dict[str, Any]:
    """SPEC §9's `verify`: `{vendorId, ok, entries, head, firstBad}`, walking the whole chain (streams)."""
    head = prepare_ledger(store, vendor_id)
    report = verify_chain(store, vendor_id)
    first_bad = report.first_bad
    if first_bad is None and report.head.seq != head.seq:  # the walk ended before the recorded head
        first_bad_document = {"seq": report.head.seq + 1, "entryId": None, "problem": Problem.MISSING.value}
    elif first_bad is None and store.entries.count(vendor_id) != head.seq:  # an entry outside the chain
        stray = store.entries.unchained(vendor_id, store.chain.legacy_ids(vendor_id))
        first_bad_document = {"seq": None, "entryId": stray, "problem": Problem.OUT_OF_ORDER.value}
    elif first_bad is None:
        first_bad_document = None
    else:
        first_bad_document = {"seq": first_bad.seq, "entryId": first_bad.entry_id, "problem": first_bad.problem.value}
    return {"vendorId": vendor_id, "ok": first_bad_document is None, "entries": report.entries,
            "head": {"seq": head.seq, "hash": head.hash, "entryId": head.entry_id}, "firstBad": first_bad_document}


def describe(report: ChainReport) -> str:
    """The first problem of a chain walk, in words."""
    bad = report.first_bad
    if bad is None:
        return "the chain verifies"
    where = f"place {bad.seq} of the chain"
    return {
        Problem.UNBALANCED: f"entry {bad.entry_id!r} does not balance ({where})",
        Problem.MISSING: f"the entry at {where} is missing",
        Problem.OUT_OF_ORDER: f"entry {bad.entry_id!r} is out of order ({where})",
        Problem.HASH_MISMATCH: f"entry {bad.entry_id!r} was changed after it was written: hash mismatch at {where}",
    }[bad.problem]
