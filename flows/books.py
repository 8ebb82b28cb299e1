"""Reading a vendor's books (SPEC §8), for the API and the CLI alike: each function reads the
store by index and the monthly balances, and returns the route's JSON shape."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from ledger.accounts import ACCOUNTS_PAYABLE, ACCOUNTS_RECEIVABLE
from ledger.balances import day_end
from ledger.clock import as_utc
from ledger.export import beancount_lines, csv_lines
from ledger.kinds import Side
from ledger.reports import (
    OpenDocument,
    account_views,
    aging_document,
    balance_sheet,
    balance_sheet_document,
    history_document,
    ledger_document,
    ledger_lines,
    money,
    profit_and_loss,
    profit_and_loss_document,
)
from ledger.sources import Party
from ledger.store import Store
from ledger.store.codec import cents
from ledger.verification import Balances

EVER = datetime(1, 1, 1, tzinfo=UTC)
FOREVER = datetime(9999, 12, 31, tzinfo=UTC)
MAX_LIMIT = 1000


class BadCursor(ValueError):
    """A ledger cursor this server did not hand out."""


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _views(store: Store, vendor_id: str, keys: Any) -> dict[str, dict[str, str]]:
    return account_views(keys, store.accounts.chart(vendor_id))


def _books(store: Store, vendor_id: str, as_of: date | None) -> Balances:
    return store.books.current(vendor_id) if as_of is None else store.books.as_of(vendor_id, as_of)


def accounts_view(store: Store, vendor_id: str) -> dict[str, Any]:
    """The chart with each account's current balance (an account the chart lacks but entries use, too)."""
    balances = store.books.current(vendor_id)
    chart = store.accounts.chart(vendor_id)
    keys = sorted({row["key"] for row in chart} | set(balances.debits) | set(balances.credits))
    views = account_views(keys, chart)
    return {"vendorId": vendor_id, "accounts": [
        {"key": key, **views[key], "balance": money(balances.balance(key))}
        for key in sorted(keys, key=lambda key: (views[key]["code"] or "~", key))]}


def encode_cursor(moment: datetime, entry_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([moment.isoformat(), entry_id]).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, str]:
    try:
        moment, entry_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        parsed = as_utc(datetime.fromisoformat(moment))
        if isinstance(entry_id, str) and parsed is not None:
            return parsed, entry_id
    except (ValueError, TypeError, binascii.Error):
        pass
    raise BadCursor(f"not a cursor this server handed out: {text[:40]!r}")


def ledger_view(store: Store, vendor_id: str, account: str, day_from: date | None, day_to: date | None,
                limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
    """One page of an account's lines in (date, id) order with the running balance; the opening and
    closing balances of the whole period come from the monthly balances."""
    start = EVER if day_from is None else day_start(day_from)
    end = FOREVER if day_to is None else day_end(day_to)
    opening = cents(0) if day_from is None else store.books.account_balance(vendor_id, account, start)
    closing = store.books.current(vendor_id).balance(account) if day_to is None else \
        store.books.account_balance(vendor_id, account, end)
    after = None if cursor is None else decode_cursor(cursor)
    running = opening if after is None else store.books.account_balance(vendor_id, account, after[0], after[1])
    entries = store.books.account_page(vendor_id, account, start, end, after, limit + 1)
    more = len(entries) > limit
    entries = entries[:limit]
    next_cursor = encode_cursor(entries[-1].date, entries[-1].id) if more else None
    return ledger_document(vendor_id, account, day_from, day_to, opening, closing,
                           ledger_lines(account, running, entries), next_cursor)


def profit_and_loss_view(store: Store, vendor_id: str, day_from: date | None, day_to: date | None) -> dict[str, Any]:
    """The movements of [from, to]: the books as of `to` less those before `from`."""
    through = _books(store, vendor_id, day_to)
    movements = through if day_from is None else \
        through.minus(store.books.as_of(vendor_id, day_from - timedelta(days=1)))
    views = _views(store, vendor_id, set(movements.debits) | set(movements.credits))
    return profit_and_loss_document(vendor_id, day_from, day_to, profit_and_loss(movements, views))


def balance_sheet_view(store: Store, vendor_id: str, as_of: date | None) -> dict[str, Any]:
    balances = _books(store, vendor_id, as_of)
    views = _views(store, vendor_id, set(balances.debits) | set(balances.credits))
    return balance_sheet_document(vendor_id, as_of, balance_sheet(balances, views))


def aging_view(store: Store, vendor_id: str, side: Side, as_of: date) -> dict[str, Any]:
    """Every document open on the day on the side's control account, as the ledger says."""
    account = ACCOUNTS_RECEIVABLE if side is Side.RECEIVABLE else ACCOUNTS_PAYABLE
    documents = []
    for row in store.entries.open_on_account(vendor_id, account, day_end(as_of)):
        dated = as_utc(row.get("documentDate")) or as_utc(row["firstDate"])
        party = row.get("party")
        documents.append(OpenDocument(
            type=row["_id"]["type"], id=row["_id"]["id"], party=Party(**party) if isinstance(party, dict) else None,
            document_date=dated.date() if dated is not None else as_of,
            amount=side.open_balance(cents(row["debit"]) - cents(row["credit"]))))
    return aging_document(vendor_id, side.value, as_of, documents)


def history_view(store: Store, vendor_id: str, source_type: str, source_id: Any) -> dict[str, Any]:
    return history_document(vendor_id, source_type, source_id, store.entries.history(vendor_id, source_type, source_id))


def export_chunks(store: Store, vendor_id: str, file_format: str, day_from: date | None,
                  day_to: date | None) -> Iterator[str]:
    """The export, a piece at a time: entries are read by a cursor, never all held at once."""
    entries = store.entries.stream(vendor_id, EVER if day_from is None else day_start(day_from),
                                   FOREVER if day_to is None else day_end(day_to))
    if file_format == "csv":
        return csv_lines(entries)
    from flows.settings import get_settings

    chart = store.accounts.chart(vendor_id)
    views = account_views([row["key"] for row in chart], chart)
    currency = store.vendors.base_currency(vendor_id, get_settings().ledger_base_currency)
    return beancount_lines(entries, views, currency)
