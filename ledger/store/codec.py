"""Ledger records as stored: journal entries, balances and run records to and from BSON documents."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128

from ledger.clock import as_utc
from ledger.entries import ZERO, JournalEntry, Line, ReversalReason, SourceRef
from ledger.parsing import to_decimal, to_decimal128
from ledger.sources import Party
from ledger.sync_run import SyncRun
from ledger.verification import Balances


def entry_to_document(entry: JournalEntry, sync_id: str, posted_at: datetime) -> dict[str, Any]:
    source: dict[str, Any] = {"type": entry.source.type, "id": entry.source.id, "number": entry.source.number,
                              "documentDate": entry.source.document_date}
    if entry.source.payment_id is not None:
        source["paymentId"] = entry.source.payment_id
    if entry.source.party is not None:
        source["party"] = entry.source.party.model_dump()
    if entry.source.basis is not None:
        source["basis"] = dict(entry.source.basis)
    document: dict[str, Any] = {
        "_id": entry.id, "vendorId": entry.vendor_id, "date": entry.date, "source": source,
        "lines": [{"account": line.account, "debit": to_decimal128(line.debit), "credit": to_decimal128(line.credit)}
                  for line in entry.lines],
        "fingerprint": entry.fingerprint, "syncId": sync_id, "postedAt": posted_at,
    }
    if entry.reversal_of is not None:
        document["reversalOf"] = entry.reversal_of
        document["reason"] = entry.reason.value if entry.reason else None
        if entry.changed:
            document["changed"] = list(entry.changed)
    if entry.late:
        document["late"] = True
    return document


def entry_from_document(document: dict[str, Any]) -> JournalEntry:
    source = document["source"]
    party = source.get("party")
    return JournalEntry(
        id=document["_id"], vendor_id=document["vendorId"], date=as_utc(document["date"]),
        source=SourceRef(type=source["type"], id=source["id"], number=source.get("number"),
                         payment_id=source.get("paymentId"), document_date=as_utc(source.get("documentDate")),
                         party=Party(**party) if isinstance(party, dict) else None,
                         basis=source.get("basis") if isinstance(source.get("basis"), dict) else None),
        lines=tuple(Line(account=line["account"], debit=decimal(line["debit"]), credit=decimal(line["credit"]))
                    for line in document["lines"]),
        fingerprint=document["fingerprint"], reversal_of=document.get("reversalOf"),
        reason=document.get("reason") if document.get("reason") in _REASONS else None,
        changed=tuple(document.get("changed") or ()), late=bool(document.get("late")), sync_id=document.get("syncId"),
    )


_REASONS = {reason.value for reason in ReversalReason}


def balances_to_document(balances: Balances) -> dict[str, dict[str, str]]:
    return {account: {"debit": str(balances.debits.get(account, ZERO)),
                      "credit": str(balances.credits.get(account, ZERO))}
            for account in sorted(set(balances.debits) | set(balances.credits))}


def balances_from_document(document: dict[str, Any] | None) -> Balances:
    document = document or {}
    return Balances(debits={a: Decimal(v["debit"]) for a, v in document.items()},
                    credits={a: Decimal(v["credit"]) for a, v in document.items()})


def run_to_document(run: SyncRun) -> dict[str, Any]:
    document = run.model_dump(by_alias=True)
    document["_id"] = run.sync_id
    if not run.active:
        document.pop("active")  # the partial unique index counts `active: true` runs only
    return document


def run_from_document(document: dict[str, Any] | None) -> SyncRun | None:
    return None if document is None else SyncRun.model_validate(document)


def decimal(value: Any) -> Decimal:
    return to_decimal(value) if isinstance(value, Decimal128) else Decimal(str(value))


def cents(value: Any) -> Decimal:
    return decimal(value).quantize(Decimal("0.01"))
