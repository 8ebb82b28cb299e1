"""Reports on the books, as people and programs read them: amounts as decimal strings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from ledger.accounts import AccountType, account_for
from ledger.entries import ZERO, JournalEntry, SourceRef
from ledger.ids import display_id, id_key
from ledger.sources import Party
from ledger.verification import Balances, TrialBalance


def money(amount: Decimal) -> str:
    return str(amount.quantize(Decimal("0.01")))


def trial_balance_document(vendor_id: str, tb: TrialBalance) -> dict[str, Any]:
    """SPEC §6: balance = debits − credits per account (zero balances left out); the totals of
    the debit and of the credit balances, both positive."""
    return {"vendorId": vendor_id, "balances": {key: money(amount) for key, amount in tb.balances.items()},
            "totalDebit": money(tb.total_debit), "totalCredit": money(tb.total_credit)}


def account_views(keys: Iterable[str], opened: Iterable[Mapping[str, Any]] = ()) -> dict[str, dict[str, str]]:
    """Code, name and type of each account key: as the vendor's chart opened it, else the
    standard chart; a key neither knows (written by something else) shows as itself, type unknown."""
    known = {row["key"]: {"code": str(row.get("code", "")), "name": str(row.get("name", row["key"])),
                          "type": str(row.get("type", "unknown"))} for row in opened}
    views: dict[str, dict[str, str]] = {}
    for key in keys:
        if key in known:
            views[key] = known[key]
            continue
        try:
            account = account_for(key)
        except KeyError:
            views[key] = {"code": "", "name": key, "type": "unknown"}
        else:
            views[key] = {"code": account.code, "name": account.name, "type": account.type.value}
    return views


def account_type(key: str, views: Mapping[str, Mapping[str, str]]) -> str:
    """asset, liability, income, expense, or unknown (a key no chart knows)."""
    view = views.get(key)
    return view["type"] if view is not None else account_views([key])[key]["type"]


# ---- an account's ledger ---------------------------------------------------------------

class LedgerLine(BaseModel):
    """One entry's movement on one account, with the balance after it."""

    model_config = ConfigDict(frozen=True)

    entry: JournalEntry
    debit: Decimal
    credit: Decimal
    balance: Decimal


def ledger_lines(account: str, opening: Decimal, entries: Iterable[JournalEntry]) -> list[LedgerLine]:
    """The account's lines of these entries (in their order), each with the running debits − credits
    from `opening`; an entry with two lines on the account shows once, summed."""
    result: list[LedgerLine] = []
    balance = opening
    for entry in entries:
        mine = [line for line in entry.lines if line.account == account]
        if not mine:
            continue
        debit = sum((line.debit for line in mine), ZERO)
        credit = sum((line.credit for line in mine), ZERO)
        balance += debit - credit
        result.append(LedgerLine(entry=entry, debit=debit, credit=credit, balance=balance))
    return result


def source_view(source: SourceRef) -> dict[str, Any]:
    return {"type": source.type, "id": display_id(source.id), "key": id_key(source.id), "number": source.number,
            "paymentId": None if source.payment_id is None else display_id(source.payment_id)}


def ledger_document(vendor_id: str, account: str, day_from: date | None, day_to: date | None, opening: Decimal,
                    closing: Decimal, lines: Iterable[LedgerLine], next_cursor: str | None) -> dict[str, Any]:
    """SPEC §8's account ledger."""
    return {"vendorId": vendor_id, "account": account, "from": _day(day_from), "to": _day(day_to),
            "openingBalance": money(opening), "closingBalance": money(closing),
            "lines": [{"entryId": line.entry.id, "date": line.entry.date.date().isoformat(), "debit": money(line.debit),
                       "credit": money(line.credit), "balance": money(line.balance),
                       "source": source_view(line.entry.source), "reversalOf": line.entry.reversal_of}
                      for line in lines],
            "nextCursor": next_cursor}


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


# ---- profit and loss, balance sheet ------------------------------------------------------

class ProfitAndLoss(BaseModel):
    model_config = ConfigDict(frozen=True)

    income: dict[str, Decimal]
    expenses: dict[str, Decimal]

    @property
    def total_income(self) -> Decimal:
        return sum(self.income.values(), ZERO)

    @property
    def total_expenses(self) -> Decimal:
        return sum(self.expenses.values(), ZERO)

    @property
    def net_profit(self) -> Decimal:
        return self.total_income - self.total_expenses


def profit_and_loss(movements: Balances, views: Mapping[str, Mapping[str, str]]) -> ProfitAndLoss:
    """Income (credits − debits) and expenses (debits − credits, `round_off` among them) of these
    movements, zero accounts left out."""
    net = movements.net_balances()
    return ProfitAndLoss(
        income={key: -amount for key, amount in net.items() if account_type(key, views) == AccountType.INCOME},
        expenses={key: amount for key, amount in net.items() if account_type(key, views) == AccountType.EXPENSE})


def profit_and_loss_document(vendor_id: str, day_from: date | None, day_to: date | None,
                             pnl: ProfitAndLoss) -> dict[str, Any]:
    return {"vendorId": vendor_id, "from": _day(day_from), "to": _day(day_to),
            "income": {key: money(amount) for key, amount in pnl.income.items()},
            "expenses": {key: money(amount) for key, amount in pnl.expenses.items()},
            "totalIncome": money(pnl.total_income), "totalExpenses": money(pnl.total_expenses),
            "netProfit": money(pnl.net_profit)}


class BalanceSheet(BaseModel):
    model_config = ConfigDict(frozen=True)

    assets: dict[str, Decimal]
    liabilities: dict[str, Decimal]
    retained_earnings: Decimal

    @property
    def total_assets(self) -> Decimal:
        return sum(self.assets.values(), ZERO)

    @property
    def total_liabilities_and_equity(self) -> Decimal:
        return sum(self.liabilities.values(), ZERO) + self.retained_earnings


def balance_sheet(balances: Balances, views: Mapping[str, Mapping[str, str]]) -> BalanceSheet:
    """Assets (debits − credits), liabilities (credits − debits) and retained earnings (the net profit
    of everything in `balances`). An account of unknown type is shown with the assets, so the two
    totals stay equal whatever wrote it."""
    net = balances.net_balances()
    assets: dict[str, Decimal] = {}
    liabilities: dict[str, Decimal] = {}
    for key, amount in net.items():
        kind = account_type(key, views)
        if kind == AccountType.LIABILITY:
            liabilities[key] = -amount
        elif kind not in (AccountType.INCOME, AccountType.EXPENSE):
            assets[key] = amount
    return BalanceSheet(assets=assets, liabilities=liabilities,
                        retained_earnings=profit_and_loss(balances, views).net_profit)


def balance_sheet_document(vendor_id: str, as_of: date | None, sheet: BalanceSheet) -> dict[str, Any]:
    return {"vendorId": vendor_id, "asOf": _day(as_of),
            "assets": {key: money(amount) for key, amount in sheet.assets.items()},
            "liabilities": {key: money(amount) for key, amount in sheet.liabilities.items()},
            "equity": {"retained_earnings": money(sheet.retained_earnings)},
            "totalAssets": money(sheet.total_assets),
            "totalLiabilitiesAndEquity": money(sheet.total_liabilities_and_equity)}


# ---- aging -------------------------------------------------------------------------------

BUCKETS = ("0-30", "31-60", "61-90", "91+")


class OpenDocument(BaseModel):
    """What one document leaves open on its side's control account on a day, as the ledger says."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    type: str
    id: Any
    party: Party | None
    document_date: date
    amount: Decimal  # a receivable's debit balance, a payable's credit balance


def bucket_of(document_date: date, as_of: date) -> str:
    days = (as_of - document_date).days
    return BUCKETS[0] if days <= 30 else BUCKETS[1] if days <= 60 else BUCKETS[2] if days <= 90 else BUCKETS[3]


def aging_document(vendor_id: str, side: str, as_of: date, documents: Iterable[OpenDocument]) -> dict[str, Any]:
    """Every document with something open, grouped by its party (an expense's category), in buckets
    by days since the document date; the grand total is the control account's balance."""
    parties: dict[tuple[str | None, str], dict[str, Decimal]] = {}
    grand = dict.fromkeys(BUCKETS, ZERO)
    for document in documents:
        if document.amount == ZERO:
            continue
        party = (document.party.id, document.party.name) if document.party is not None else (None, "(none)")
        row = parties.setdefault(party, dict.fromkeys(BUCKETS, ZERO))
        bucket = bucket_of(document.document_date, as_of)
        row[bucket] += document.amount
        grand[bucket] += document.amount
    return {"vendorId": vendor_id, "side": side, "asOf": as_of.isoformat(),
            "parties": [{"party": {"id": party[0], "name": party[1]},
                         "buckets": {name: money(amount) for name, amount in row.items()},
                         "total": money(sum(row.values(), ZERO))}
                        for party, row in sorted(parties.items(), key=lambda item: (item[0][1], item[0][0] or ""))],
            "buckets": {name: money(amount) for name, amount in grand.items()},
            "total": money(sum(grand.values(), ZERO))}


# ---- a document's history ------------------------------------------------------------------

def history_document(vendor_id: str, source_type: str, source_id: Any,
                     entries: Iterable[JournalEntry]) -> dict[str, Any]:
    """Every entry posted for a document and its payments, in the order written, with the sync that
    wrote it and, for a reversal, why (and which posting-relevant fields changed)."""
    return {"vendorId": vendor_id, "sourceType": source_type, "sourceId": display_id(source_id),
            "entries": [{"entryId": entry.id, "date": entry.date.date().isoformat(), "syncId": entry.sync_id,
                         "source": source_view(entry.source),
                         "lines": [{"account": line.account, "debit": money(line.debit), "credit": money(line.credit)}
                                   for line in entry.lines],
                         "reversalOf": entry.reversal_of,
                         "reason": None if entry.reason is None else entry.reason.value,
                         "changed": list(entry.changed), "late": entry.late}
                        for entry in entries]}
