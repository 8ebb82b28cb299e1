"""The books as files other tools read: CSV (one row per line) and Beancount (one transaction per
entry). Pure generators over entries, so the export streams whatever the ledger's size."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping

from ledger.entries import JournalEntry
from ledger.ids import display_id
from ledger.reports import account_type, money

CSV_HEADER = ("entryId", "date", "account", "debit", "credit", "sourceType", "sourceId", "number", "paymentId",
              "reversalOf")

_ROOTS = {"asset": "Assets", "liability": "Liabilities", "income": "Income", "expense": "Expenses"}
_NOT_NAME = re.compile(r"[^A-Za-z0-9-]+")


def csv_lines(entries: Iterable[JournalEntry]) -> Iterator[str]:
    """The header, then one row per line of each entry."""
    yield _csv_row(CSV_HEADER)
    for entry in entries:
        source = entry.source
        for line in entry.lines:
            yield _csv_row((entry.id, entry.date.date().isoformat(), line.account, money(line.debit),
                            money(line.credit), source.type, display_id(source.id), source.number or "",
                            "" if source.payment_id is None else display_id(source.payment_id),
                            entry.reversal_of or ""))


def _csv_row(values: Iterable[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def beancount_account(key: str, account_type: str) -> str:
    """`accounts_receivable` (asset) → `Assets:Accounts-Receivable`; `expenses:office-rent` →
    `Expenses:Office-Rent`; a key of unknown type goes under `Equity:Unknown`."""
    root = _ROOTS.get(account_type)
    parts = [part for part in key.split(":") if part]
    if root == "Expenses" and parts and parts[0] == "expenses":
        parts = parts[1:]
    if root is None:
        root, parts = "Equity", ["Unknown", *parts]
    names = []
    for part in parts:
        words = [word for word in _NOT_NAME.sub("-", part.replace("_", "-")).split("-") if word]
        names.append("-".join(word[:1].upper() + word[1:] for word in words) or "X")
    return ":".join([root, *(name if name[0].isalnum() else "X" + name for name in names)])


def beancount_lines(entries: Iterable[JournalEntry], views: Mapping[str, Mapping[str, str]],
                    currency: str) -> Iterator[str]:
    """A Beancount 3 file: the chart opened on 1970-01-01 (accounts it does not name are opened by
    `auto_accounts`), then each entry as a balanced transaction tagged with its ids."""
    yield f'option "operating_currency" "{currency}"\nplugin "beancount.plugins.auto_accounts"\n\n'
    for key in sorted(views):
        yield f"1970-01-01 open {beancount_account(key, views[key]['type'])} {currency}\n"
    for entry in entries:
        postings = [(line.account, line.debit - line.credit) for line in entry.lines if line.debit != line.credit]
        if not postings:
            continue
        title = f"{entry.source.type} {entry.source.number or display_id(entry.source.id)}"
        if entry.reversal_of is not None:
            title += f" reversed ({entry.reason.value if entry.reason else 'reversal'})"
        text = [f'\n{entry.date.date().isoformat()} * "{_quoted(title)}"\n  entry: "{_quoted(entry.id)}"\n']
        for account, amount in postings:
            text.append(f"  {beancount_account(account, account_type(account, views))}  {money(amount)} {currency}\n")
        yield "".join(text)


def _quoted(text: str) -> str:
    """Safe inside a Beancount string: no quote, backslash or line break can end it."""
    return re.sub(r'["\\\r\n]', " ", text)
